//! Generation speed of GPT-2 124M (random weights made here, no download): prefill of a
//! 512-token prompt and batch-1 decoding, with f32 and bf16 weights, on 1 and 2 threads;
//! each decode figure also as a fraction of the memory-bandwidth bound (weight bytes per
//! token ÷ the streaming read bandwidth measured by this binary on the same pool), and
//! the process's peak resident memory per weight type.
//!
//! ```text
//! cargo bench --bench generate                      # ~3 min on 2 cores
//! cargo bench --bench generate -- decode            # criterion filter on the id
//! ```
//!
//! Prefill is one [`ModelView::forward_cached`] call with the 512 tokens into an empty
//! KV cache (what `generate` does with a prompt); decode is 32 single-token calls after a
//! 64-token prompt (the prompt is not timed), so a decode step includes the LM head over
//! all 50257 rows, as in `generate`. `scripts/bench_pytorch.py` times the same in PyTorch.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use gpt2::gpt2_core::model::{Config, Gpt2, KvCache, ModelView, Segment};
use gpt2::gpt2_kernels::cpu::machine;
use gpt2::gpt2_kernels::rng::Rng;

const PREFILL: usize = 512;
const PROMPT: usize = 64;
const DECODE: usize = 32;

/// (case, threads, seconds per token) medians.
type Medians = Rc<RefCell<Vec<(String, usize, f64)>>>;

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|n| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build();
            (n, pool.expect("thread pool"))
        })
        .collect();
    let bandwidth: Vec<f64> = pools
        .iter()
        .map(|(_, p)| p.install(machine::read_bandwidth_gbs))
        .collect();
    let mut rng = Rng::new(7);
    let cfg = Config::default();
    let tokens: Vec<u32> = (0..PREFILL)
        .map(|_| (rng.next_u64() % cfg.vocab_size as u64) as u32)
        .collect();
    let medians: Medians = Rc::default();
    let mut summary = Vec::new();
    for dtype in ["f32", "bf16"] {
        reset_peak_rss();
        let model = Gpt2::random(cfg.clone(), 1).expect("124M model");
        let model = match dtype {
            "f32" => model,
            _ => model.with_bf16_weights().expect("bf16 weights"),
        };
        let view = model.view().expect("view");
        let mut cache = KvCache::new(&cfg, 1);
        for (n, pool) in &pools {
            let id = format!("prefill{PREFILL}_{dtype}");
            bench(&mut c, &medians, (&id, *n, PREFILL), pool, |iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    cache.clear(0);
                    let start = Instant::now();
                    forward(&view, &mut cache, &tokens);
                    total += start.elapsed();
                }
                total
            });
            let id = format!("decode_{dtype}");
            bench(&mut c, &medians, (&id, *n, DECODE), pool, |iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    cache.clear(0);
                    forward(&view, &mut cache, &tokens[..PROMPT]);
                    let start = Instant::now();
                    for &t in &tokens[PROMPT..PROMPT + DECODE] {
                        forward(&view, &mut cache, &[t]);
                    }
                    total += start.elapsed();
                }
                total
            });
        }
        summary.push((dtype, model.weight_bytes_per_token(), peak_rss()));
    }
    c.final_summary();
    report(&medians.borrow(), &summary, &bandwidth);
}

fn forward(view: &ModelView<'_>, cache: &mut KvCache, tokens: &[u32]) {
    let seg = [Segment { seq: 0, tokens }];
    std::hint::black_box(view.forward_cached(cache, &seg).expect("forward"));
}

/// Benchmarks `run(iters) -> time` (each iteration processes `tokens` timed tokens) on
/// `pool`, recording the median seconds per token.
fn bench(
    c: &mut Criterion,
    medians: &Medians,
    (id, threads, tokens): (&str, usize, usize),
    pool: &rayon::ThreadPool,
    mut run: impl FnMut(u64) -> Duration + Send,
) {
    let mut group = c.benchmark_group("generate_124m");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(tokens as u64));
    let samples = Rc::new(RefCell::new(Vec::new()));
    let rec = samples.clone();
    group.bench_function(BenchmarkId::new(id, format!("{threads}thr")), |b| {
        b.iter_custom(|iters| {
            let elapsed = pool.install(|| run(iters));
            rec.borrow_mut()
                .push(elapsed.as_secs_f64() / (iters as usize * tokens) as f64);
            elapsed
        })
    });
    group.finish();
    // The last 10 records are criterion's samples, the earlier ones its warm-up.
    let mut s = samples.borrow().clone();
    let skip = s.len().saturating_sub(10);
    let s = &mut s[skip..];
    if !s.is_empty() {
        s.sort_by(f64::total_cmp);
        medians
            .borrow_mut()
            .push((id.to_string(), threads, s[s.len() / 2]));
    }
}

/// Resets the kernel's peak-RSS counter (Linux ≥ 4.0; elsewhere a no-op).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set since the last reset, in bytes (`None` off Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn report(
    medians: &[(String, usize, f64)],
    summary: &[(&str, usize, Option<u64>)],
    bandwidth: &[f64],
) {
    let find = |id: &str, t: usize| medians.iter().find(|m| m.0 == id && m.1 == t).map(|m| m.2);
    println!(
        "\nGPT-2 124M, batch 1 (medians; bandwidth bound = read bandwidth / weight bytes per token)"
    );
    println!(
        "| weights | threads | prefill {PREFILL} (s) | prefill tok/s | decode tok/s | ms/token | bound tok/s | % of bound |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (dtype, bytes, _) in summary {
        for (i, threads) in [1, 2].into_iter().enumerate() {
            // A criterion filter may have skipped either case.
            let p = find(&format!("prefill{PREFILL}_{dtype}"), threads);
            let Some(d) = find(&format!("decode_{dtype}"), threads) else {
                continue;
            };
            let (p_s, p_tok) = p.map_or(("-".into(), "-".into()), |p| {
                (
                    format!("{:.2}", p * PREFILL as f64),
                    format!("{:.0}", 1.0 / p),
                )
            });
            let bound = bandwidth[i] * 1e9 / *bytes as f64;
            println!(
                "| {dtype} | {threads} | {p_s} | {p_tok} | {:.1} | {:.1} | {bound:.1} | {:.0}% |",
                1.0 / d,
                1e3 * d,
                100.0 / d / bound
            );
        }
    }
    for (i, bw) in bandwidth.iter().enumerate() {
        println!("read bandwidth, {} thread(s): {bw:.1} GB/s", i + 1);
    }
    for (dtype, bytes, rss) in summary {
        let rss = rss.map_or("n/a".into(), |r| {
            format!("{:.0} MiB", r as f64 / (1 << 20) as f64)
        });
        println!(
            "{dtype}: {:.0} MiB of weights streamed per token; peak resident memory {rss}",
            *bytes as f64 / (1 << 20) as f64
        );
    }
}
