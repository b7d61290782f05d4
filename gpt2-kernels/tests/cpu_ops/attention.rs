use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::attention::{self, reference};

use crate::common::*;

/// Sequence lengths of issue 6: within one block, at and just past the block of 64, and
/// more than two blocks.
const TS: [usize; 6] = [1, 3, 17, 64, 65, 130];
/// (heads, head size): GPT-2's 64, and odd sizes that leave vector tails everywhere.
const HEADS: [(usize, usize); 3] = [(2, 64), (3, 5), (1, 17)];

fn qkv(rng: &mut Rng, b: usize, t: usize, c: usize) -> Vec<f32> {
    uniform(rng, b * t * 3 * c, -2.0, 2.0)
}

fn ref_forward(qkv: &[f64], b: usize, t: usize, nh: usize) -> (Vec<f64>, Vec<f64>) {
    let c = qkv.len() / (3 * b * t);
    let (mut out, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
    reference::forward(&mut out, &mut lse, qkv, b, t, nh).unwrap();
    (out, lse)
}

fn run_forward(isa: Isa, qkv: &[f32], b: usize, t: usize, nh: usize) -> (Vec<f32>, Vec<f32>) {
    let c = qkv.len() / (3 * b * t);
    let (mut out, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
    attention::forward(isa, &mut out, &mut lse, qkv, b, t, nh).unwrap();
    (out, lse)
}

#[test]
fn forward_and_backward_match_f64_reference() {
    let mut rng = Rng::new(100);
    for isa in isas() {
        for t in TS {
            for (nh, hs) in HEADS {
                let b = if t <= 65 { 2 } else { 1 };
                let c = nh * hs;
                let x = qkv(&mut rng, b, t, c);
                let what = format!("{isa} B={b} T={t} NH={nh} HS={hs}");
                let (out, lse) = run_forward(isa, &x, b, t, nh);
                let x64 = to_f64(&x);
                let (r_out, r_lse) = ref_forward(&x64, b, t, nh);
                assert_close(&format!("{what} out"), &out, &r_out, 1e-5);
                assert_close(&format!("{what} lse"), &lse, &r_lse, 1e-6);

                let dout = uniform(&mut rng, b * t * c, -1.0, 1.0);
                let d0 = uniform(&mut rng, x.len(), -1.0, 1.0);
                let mut d = d0.clone();
                attention::backward(isa, &mut d, &dout, &x, &out, &lse, b, t, nh).unwrap();
                let mut rd = to_f64(&d0);
                reference::backward(&mut rd, &to_f64(&dout), &x64, &r_out, &r_lse, b, t, nh)
                    .unwrap();
                assert_close(&format!("{what} dqkv"), &d, &rd, 1e-5);
            }
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng::new(101);
    // Small cases check the f64 reference; T = 70 > 64 checks the kernel across blocks.
    for (b, t, nh, hs) in [(1, 5, 2, 3), (2, 3, 1, 4), (1, 70, 1, 3)] {
        let c = nh * hs;
        let x = qkv(&mut rng, b, t, c);
        let dout = uniform(&mut rng, b * t * c, -1.0, 1.0);
        let g = to_f64(&dout);
        let loss = |x: &[f64]| weighted_sum(&g, &ref_forward(x, b, t, nh).0);
        let x64 = to_f64(&x);
        let fd = finite_diff(loss, &x64, 1e-5);
        let what = format!("B={b} T={t} NH={nh} HS={hs}");
        if t <= 5 {
            let (r_out, r_lse) = ref_forward(&x64, b, t, nh);
            let mut rd = vec![0.0; x.len()];
            reference::backward(&mut rd, &g, &x64, &r_out, &r_lse, b, t, nh).unwrap();
            let rd32: Vec<f32> = rd.iter().map(|&v| v as f32).collect();
            assert_close(&format!("reference {what} vs FD"), &rd32, &fd, 1e-7);
        }
        for isa in isas() {
            let (out, lse) = run_forward(isa, &x, b, t, nh);
            let mut d = vec![0.0; x.len()];
            attention::backward(isa, &mut d, &dout, &x, &out, &lse, b, t, nh).unwrap();
            assert_close(&format!("{isa} {what} vs FD"), &d, &fd, 1e-4);
        }
    }
}

/// The cached path runs the same inner routine as `forward` on the same key blocks:
/// with all queries its rows are bitwise those of `forward`; with a few queries (under
/// 8, where `Q·Kᵀ` is dot products instead of packed blocks) they agree to rounding.
#[test]
fn forward_cached_equals_forward() {
    let mut rng = Rng::new(102);
    for isa in isas() {
        for t in [1, 17, 65, 130] {
            for (nh, hs) in HEADS {
                let c = nh * hs;
                let x = qkv(&mut rng, 1, t, c);
                let (out, _) = run_forward(isa, &x, 1, t, nh);
                // Caches allocated longer than kv_len, the extra rows garbage.
                let n_ctx = t + 5;
                let mut k_cache = uniform(&mut rng, n_ctx * c, 100.0, 200.0);
                let mut v_cache = k_cache.clone();
                for i in 0..t {
                    k_cache[i * c..(i + 1) * c].copy_from_slice(&x[i * 3 * c + c..][..c]);
                    v_cache[i * c..(i + 1) * c].copy_from_slice(&x[i * 3 * c + 2 * c..][..c]);
                }
                for tq in [1, 3.min(t), t] {
                    let mut got = vec![0.0; tq * c];
                    let q = &x[(t - tq) * 3 * c..];
                    attention::forward_cached(
                        isa,
                        &mut got,
                        q,
                        3 * c,
                        &k_cache,
                        &v_cache,
                        t,
                        c,
                        nh,
                    )
                    .unwrap();
                    let what = format!("{isa} T={t} Tq={tq} NH={nh} HS={hs}");
                    if tq == t {
                        assert_eq!(got, out, "{what}");
                    } else {
                        assert_close(&what, &got, &to_f64(&out[(t - tq) * c..]), 1e-6);
                    }
                }
            }
        }
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let mut rng = Rng::new(103);
    let (b, t, nh, hs) = (2, 130, 3, 17);
    let x = qkv(&mut rng, b, t, nh * hs);
    let dout = uniform(&mut rng, b * t * nh * hs, -1.0, 1.0);
    let c = nh * hs;
    // The first sequence's keys and values as caches.
    let k: Vec<f32> = x
        .chunks(3 * c)
        .take(t)
        .flat_map(|row| row[c..2 * c].to_vec())
        .collect();
    let v: Vec<f32> = x
        .chunks(3 * c)
        .take(t)
        .flat_map(|row| row[2 * c..].to_vec())
        .collect();
    for isa in isas() {
        assert_thread_invariant("attention", || {
            let (out, lse) = run_forward(isa, &x, b, t, nh);
            let mut d = vec![0.0; x.len()];
            attention::backward(isa, &mut d, &dout, &x, &out, &lse, b, t, nh).unwrap();
            let mut cached = vec![0.0; 2 * c];
            attention::forward_cached(
                isa,
                &mut cached,
                &x[(t - 2) * 3 * c..],
                3 * c,
                &k,
                &v,
                t,
                c,
                nh,
            )
            .unwrap();
            vec![out, lse, d, cached]
        });
    }
}

#[test]
fn bad_arguments_are_errors() {
    let isa = Isa::best();
    let (b, t, nh, c) = (2, 3, 2, 4);
    let x = vec![0.0; b * t * 3 * c];
    let (mut out, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
    assert!(attention::forward(isa, &mut out, &mut lse, &x, b, t, nh).is_ok());
    let shape = |r: Result<(), KernelError>| matches!(r, Err(KernelError::Shape { .. }));
    let length = |r: Result<(), KernelError>| matches!(r, Err(KernelError::Length { .. }));
    assert!(
        shape(attention::forward(isa, &mut out, &mut lse, &x, b, t, 3)),
        "C = 4 into 3 heads"
    );
    assert!(
        shape(attention::forward(isa, &mut out, &mut lse, &x, b, t, 0)),
        "no heads"
    );
    assert!(shape(attention::forward(
        isa,
        &mut out,
        &mut lse,
        &x[1..],
        b,
        t,
        nh
    )));
    assert!(length(attention::forward(
        isa,
        &mut out[1..],
        &mut lse,
        &x,
        b,
        t,
        nh
    )));
    assert!(length(attention::forward(
        isa,
        &mut out,
        &mut lse[1..],
        &x,
        b,
        t,
        nh
    )));
    let mut d = vec![0.0; x.len()];
    assert!(length(attention::backward(
        isa,
        &mut d[1..],
        &out,
        &x,
        &out,
        &lse,
        b,
        t,
        nh
    )));
    assert!(length(attention::backward(
        isa,
        &mut d,
        &out[1..],
        &x,
        &out,
        &lse,
        b,
        t,
        nh
    )));
    assert!(attention::forward(isa, &mut [], &mut [], &[], 0, 5, nh).is_ok());

    let (k, v) = (vec![0.0; 8 * c], vec![0.0; 8 * c]);
    let q = vec![0.0; 3 * c];
    let mut o = vec![0.0; 3 * c];
    assert!(attention::forward_cached(isa, &mut o, &q, c, &k, &v, 8, c, nh).is_ok());
    assert!(
        shape(attention::forward_cached(
            isa, &mut o, &q, c, &k, &v, 2, c, nh
        )),
        "Tq > kv_len"
    );
    assert!(
        shape(attention::forward_cached(
            isa, &mut o, &q, c, &k, &v, 9, c, nh
        )),
        "short caches"
    );
    assert!(
        shape(attention::forward_cached(
            isa,
            &mut o,
            &q,
            c - 1,
            &k,
            &v,
            8,
            c,
            nh
        )),
        "stride < C"
    );
    assert!(
        shape(attention::forward_cached(
            isa,
            &mut o,
            &q[1..],
            c,
            &k,
            &v,
            8,
            c,
            nh
        )),
        "short q"
    );
    assert!(
        shape(attention::forward_cached(
            isa, &mut o, &q, c, &k, &v, 8, c, 3
        )),
        "heads"
    );
    assert!(
        shape(attention::forward_cached(
            isa,
            &mut o[1..],
            &q,
            c,
            &k,
            &v,
            8,
            c,
            nh
        )),
        "out rows"
    );
}

/// Attention with dropout on the probabilities (training).
mod dropout {
    use super::*;
    use attention::Dropout;

    fn drop(p: f32, offset: u64) -> Option<Dropout> {
        Some(Dropout {
            p,
            seed: 77,
            offset,
        })
    }

    fn ref_forward(
        qkv: &[f64],
        (b, t, nh): (usize, usize, usize),
        d: Option<Dropout>,
    ) -> (Vec<f64>, Vec<f64>) {
        let c = qkv.len() / (3 * b * t);
        let (mut out, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
        reference::forward_train(&mut out, &mut lse, qkv, b, t, nh, d).unwrap();
        (out, lse)
    }

    fn run(
        isa: Isa,
        qkv: &[f32],
        dout: &[f32],
        (b, t, nh): (usize, usize, usize),
        d: Option<Dropout>,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let c = qkv.len() / (3 * b * t);
        let (mut out, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
        attention::forward_train(isa, &mut out, &mut lse, qkv, b, t, nh, d).unwrap();
        let mut dqkv = vec![0.0; qkv.len()];
        attention::backward_train(isa, &mut dqkv, dout, qkv, &out, &lse, b, t, nh, d).unwrap();
        (out, lse, dqkv)
    }

    #[test]
    fn flash_matches_f64_reference() {
        let mut rng = Rng::new(110);
        for isa in isas() {
            // T = 130 spans three key blocks, so the mask is regenerated across blocks.
            for (b, t, nh, hs) in [(2, 17, 3, 5), (1, 130, 2, 16), (2, 65, 1, 17)] {
                let c = nh * hs;
                let x = qkv(&mut rng, b, t, c);
                let dout = uniform(&mut rng, b * t * c, -1.0, 1.0);
                let d = drop(0.3, 1000);
                let (out, lse, dqkv) = run(isa, &x, &dout, (b, t, nh), d);
                let x64 = to_f64(&x);
                let (r_out, r_lse) = ref_forward(&x64, (b, t, nh), d);
                let what = format!("{isa} B={b} T={t} NH={nh} HS={hs} p=0.3");
                assert_close(&format!("{what} out"), &out, &r_out, 1e-5);
                assert_close(&format!("{what} lse"), &lse, &r_lse, 1e-6);
                let mut rd = vec![0.0; x.len()];
                reference::backward_train(
                    &mut rd,
                    &to_f64(&dout),
                    &x64,
                    &r_out,
                    &r_lse,
                    b,
                    t,
                    nh,
                    d,
                )
                .unwrap();
                assert_close(&format!("{what} dqkv"), &dqkv, &rd, 1e-5);
            }
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Rng::new(111);
        for (b, t, nh, hs) in [(1, 6, 2, 3), (2, 4, 1, 4), (1, 70, 1, 3)] {
            let c = nh * hs;
            let x = qkv(&mut rng, b, t, c);
            let dout = uniform(&mut rng, b * t * c, -1.0, 1.0);
            let g = to_f64(&dout);
            let d = drop(0.4, 5);
            let loss = |x: &[f64]| weighted_sum(&g, &ref_forward(x, (b, t, nh), d).0);
            let fd = finite_diff(loss, &to_f64(&x), 1e-5);
            let what = format!("B={b} T={t} NH={nh} HS={hs} p=0.4");
            for isa in isas() {
                let (_, _, dqkv) = run(isa, &x, &dout, (b, t, nh), d);
                assert_close(&format!("{isa} {what} vs FD"), &dqkv, &fd, 1e-4);
            }
        }
    }

    /// The mask is the counter rule of the module docs: with V one-hot per key, output
    /// `(i, j)` is `P_ij·M_ij`, so dropped entries read 0 and kept ones are scaled.
    #[test]
    fn mask_follows_the_counter_rule() {
        let isa = Isa::best();
        let (b, t, nh, p) = (2, 40, 2, 0.25f32);
        let hs = t; // value j is the unit vector e_j
        let c = nh * hs;
        let mut x = vec![0.0f32; b * t * 3 * c];
        let mut rng = Rng::new(112);
        for (r, row) in x.chunks_mut(3 * c).enumerate() {
            for v in &mut row[..2 * c] {
                *v = 0.3 * (2.0 * rng.next_f32() - 1.0);
            }
            for h in 0..nh {
                row[2 * c + h * hs + r % t] = 1.0;
            }
        }
        let d = drop(p, 4242);
        let (mut out, mut lse) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
        attention::forward_train(isa, &mut out, &mut lse, &x, b, t, nh, d).unwrap();
        let (mut plain, mut lse0) = (vec![0.0; b * t * c], vec![0.0; b * nh * t]);
        attention::forward(isa, &mut plain, &mut lse0, &x, b, t, nh).unwrap();
        assert_eq!(lse, lse0, "the softmax statistics ignore the mask");
        let (mut dropped, mut total) = (0usize, 0usize);
        for bi in 0..b {
            for h in 0..nh {
                for i in 0..t {
                    for j in 0..=i {
                        let at = (bi * t + i) * c + h * hs + j;
                        let counter = 4242 + (((bi * nh + h) * t + i) * t + j) as u64;
                        let keep = gpt2_kernels::rng::uniform(77, counter) >= p;
                        let want = if keep { plain[at] / (1.0 - p) } else { 0.0 };
                        assert!(
                            (out[at] - want).abs() <= 1e-6 * want.abs().max(1e-3),
                            "b={bi} h={h} i={i} j={j}: {} vs {want}",
                            out[at]
                        );
                        dropped += usize::from(!keep);
                        total += 1;
                    }
                }
            }
        }
        let frac = dropped as f64 / total as f64;
        assert!((frac - 0.25).abs() < 0.05, "dropped fraction {frac}");
    }

    #[test]
    fn zero_probability_is_plain_attention_and_offsets_matter() {
        let mut rng = Rng::new(113);
        let (b, t, nh, hs) = (1, 33, 2, 8);
        let x = qkv(&mut rng, b, t, nh * hs);
        let dout = uniform(&mut rng, b * t * nh * hs, -1.0, 1.0);
        let isa = Isa::best();
        let plain = run(isa, &x, &dout, (b, t, nh), None);
        assert_eq!(run(isa, &x, &dout, (b, t, nh), drop(0.0, 9)), plain);
        let a = run(isa, &x, &dout, (b, t, nh), drop(0.5, 0));
        assert_ne!(a.0, plain.0);
        assert_ne!(run(isa, &x, &dout, (b, t, nh), drop(0.5, 1)).0, a.0);
        let (mut out, mut lse) = (vec![0.0; t * nh * hs], vec![0.0; nh * t]);
        let bad = attention::forward_train(isa, &mut out, &mut lse, &x, b, t, nh, drop(1.0, 0));
        assert!(matches!(bad, Err(KernelError::Shape { .. })), "{bad:?}");
    }

    #[test]
    fn deterministic_across_thread_counts() {
        let mut rng = Rng::new(114);
        let (b, t, nh, hs) = (2, 130, 3, 17);
        let x = qkv(&mut rng, b, t, nh * hs);
        let dout = uniform(&mut rng, b * t * nh * hs, -1.0, 1.0);
        for isa in isas() {
            assert_thread_invariant("attention with dropout", || {
                let (o, l, d) = run(isa, &x, &dout, (b, t, nh), drop(0.1, 3));
                vec![o, l, d]
            });
        }
    }
}
