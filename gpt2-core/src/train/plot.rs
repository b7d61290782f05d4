//! The loss curve as a small self-contained SVG (no plotting dependency): train loss as a
//! line, validation loss as a line with dots, both against the step, with labelled axes.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// About five round tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|v| *v <= hi + 1e-9 * step)
        .collect()
}

/// An SVG document plotting `train` and `val` losses, `(step, loss)` pairs.
pub fn loss_svg(title: &str, train: &[(u64, f32)], val: &[(u64, f32)]) -> String {
    let all = train.iter().chain(val);
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(s, l) in all {
        x_max = x_max.max(s as f64);
        if l.is_finite() {
            y_min = y_min.min(f64::from(l));
            y_max = y_max.max(f64::from(l));
        }
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    let (y_lo, y_hi) = (y_min - pad, y_max + pad);
    let px = |s: f64| LEFT + s / x_max * (W - LEFT - RIGHT);
    let py = |l: f64| TOP + (y_hi - l) / (y_hi - y_lo) * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    let (x0, x1, y0, y1) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let _ = writeln!(
        svg,
        r#"<path d="M{x0},{y0} V{y1} H{x1}" stroke="black" fill="none"/>"#
    );
    for t in ticks(0.0, x_max) {
        let x = px(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{y1}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{t}</text>"##,
            y1 + 5.0,
            y1 + 18.0
        );
    }
    for t in ticks(y_lo, y_hi) {
        let y = py(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{t:.2}</text>"##,
            x0,
            x0 - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">step</text>"#,
        (x0 + x1) / 2.0,
        H - 12.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">loss (nats/token)</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0
    );
    for (points, color, dots) in [(train, "#1f77b4", false), (val, "#d62728", true)] {
        let pts: Vec<String> = points
            .iter()
            .filter(|(_, l)| l.is_finite())
            .map(|&(s, l)| format!("{:.1},{:.1}", px(s as f64), py(f64::from(l))))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5"/>"#,
            pts.join(" ")
        );
        if dots {
            for p in &pts {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
            }
        }
    }
    for (i, (label, color)) in [("train", "#1f77b4"), ("val", "#d62728")]
        .iter()
        .enumerate()
    {
        let y = TOP + 14.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"/><text x="{}" y="{}">{label}</text>"#,
            x1 - 90.0,
            x1 - 65.0,
            x1 - 58.0,
            y + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1000.0),
            vec![0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]
        );
        let t = ticks(1.37, 4.1);
        assert!(
            t.len() >= 3 && t[0] >= 1.37 && *t.last().unwrap() <= 4.1,
            "{t:?}"
        );
    }

    #[test]
    fn svg_has_both_curves() {
        let train: Vec<(u64, f32)> = (1..=50).map(|s| (s, 5.0 / s as f32 + 1.0)).collect();
        let svg = loss_svg("a <b>", &train, &[(25, 1.5), (50, 1.4)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("a &lt;b&gt;"));
    }
}
