//! Causal self-attention at GPT-2 124M's shape (B = 4, 12 heads × 64), forward and
//! backward: our flash kernels beside the materialised version built on our own GEMM,
//! each on 1 and 2 threads, as GFLOP/s and as the ratio of medians.
//!
//! ```text
//! cargo bench --bench attention -- --warm-up-time 1 --measurement-time 3
//! cargo bench --bench attention -- t1024     # criterion filter on the id
//! ```
//!
//! FLOPs are counted on the causal half of the scores, as issue 6 asks: each of the
//! `(T, T)` products costs `2·HS·T²/2`; the forward is 2 of them (`Q·Kᵀ`, `P·V`), the
//! backward 4 (`dP = dO·Vᵀ`, `dV = Pᵀ·dO`, `dQ = dS·K`, `dK = dSᵀ·Q`; the flash
//! backward's recomputation of `Q·Kᵀ` is not counted, so both columns count the same
//! useful work and the ratio is the ratio of times).
//!
//! The materialised peer ([`materialised`]) is what a framework does without a fused
//! kernel (PyTorch's eager GPT-2): per (batch, head), `S = Q·Kᵀ` with our BLIS GEMM
//! (`cpu::matmul::gemm`, strided views, no copies), scale, mask the future with −∞, row
//! softmax (our SIMD kernel), `O = P·V` with the GEMM; it keeps `P` (B·NH·T·T floats)
//! for its backward, which runs the four GEMMs and the softmax backward. Heads run in
//! parallel and each GEMM is itself parallel. Before timing, both are checked to agree.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use gpt2::gpt2_kernels::cpu::attention;
use gpt2::gpt2_kernels::cpu::simd::Isa;
use gpt2::gpt2_kernels::rng::Rng;

const B: usize = 4;
const NH: usize = 12;
const HS: usize = 64;
const C: usize = NH * HS;
const TS: [usize; 3] = [64, 256, 1024];

/// One implementation's medians: (direction, T, name, seconds per call).
type Medians = Rc<RefCell<Vec<(&'static str, usize, String, f64)>>>;

fn flops(direction: &str, t: usize) -> f64 {
    let product = 2.0 * HS as f64 * (t * t) as f64 / 2.0;
    let products = if direction == "forward" { 2.0 } else { 4.0 };
    (B * NH) as f64 * products * product
}

/// The operands of one forward + backward.
struct Inputs {
    t: usize,
    qkv: Vec<f32>,
    out: Vec<f32>,
    lse: Vec<f32>,
    dout: Vec<f32>,
}

impl Inputs {
    fn new(t: usize) -> Inputs {
        let mut rng = Rng::new(t as u64);
        let mut values = |n: usize| {
            (0..n)
                .map(|_| 2.0 * rng.next_f32() - 1.0)
                .collect::<Vec<f32>>()
        };
        let (qkv, dout) = (values(B * t * 3 * C), values(B * t * C));
        let (mut out, mut lse) = (vec![0.0; B * t * C], vec![0.0; B * NH * t]);
        attention::forward(Isa::best(), &mut out, &mut lse, &qkv, B, t, NH).expect("forward");
        Inputs {
            t,
            qkv,
            out,
            lse,
            dout,
        }
    }
}

/// Benchmarks `f` (one call = one attention pass) on `pool`, recording its median.
fn bench(
    c: &mut Criterion,
    medians: &Medians,
    (direction, t, name): (&'static str, usize, String),
    pool: &rayon::ThreadPool,
    mut f: impl FnMut() + Send,
) {
    let mut group = c.benchmark_group(format!("attention_{direction}"));
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.throughput(Throughput::Elements(flops(direction, t) as u64));
    let samples = Rc::new(RefCell::new(Vec::new()));
    let rec = samples.clone();
    group.bench_function(BenchmarkId::new(&name, format!("t{t}")), |b| {
        b.iter_custom(|iters| {
            let elapsed = pool.install(|| {
                let start = Instant::now();
                for _ in 0..iters {
                    f();
                }
                start.elapsed()
            });
            rec.borrow_mut().push(elapsed.as_secs_f64() / iters as f64);
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
            .push((direction, t, name, s[s.len() / 2]));
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    check_peer();
    let isa = Isa::best();
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|n| {
            (
                n,
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .expect("pool"),
            )
        })
        .collect();
    let medians: Medians = Rc::default();
    for t in TS {
        let x = Inputs::new(t);
        let Inputs {
            qkv,
            out,
            lse,
            dout,
            ..
        } = &x;
        let (mut o, mut l) = (vec![0.0; out.len()], vec![0.0; lse.len()]);
        let mut dqkv = vec![0.0; qkv.len()];
        for (n, pool) in &pools {
            bench(
                &mut c,
                &medians,
                ("forward", t, format!("flash_{n}t")),
                pool,
                || attention::forward(isa, &mut o, &mut l, qkv, B, t, NH).expect("forward"),
            );
            bench(
                &mut c,
                &medians,
                ("backward", t, format!("flash_{n}t")),
                pool,
                || {
                    attention::backward(isa, &mut dqkv, dout, qkv, out, lse, B, x.t, NH)
                        .expect("backward")
                },
            );
            let mut peer = materialised::Peer::new(t);
            bench(
                &mut c,
                &medians,
                ("forward", t, format!("materialised_{n}t")),
                pool,
                || peer.forward(isa, &mut o, qkv),
            );
            bench(
                &mut c,
                &medians,
                ("backward", t, format!("materialised_{n}t")),
                pool,
                || peer.backward(isa, &mut dqkv, dout, qkv),
            );
        }
    }
    c.final_summary();
    report(&medians.borrow(), isa);
}

/// Prints GFLOP/s per implementation and the speed-ups over the materialised version.
fn report(medians: &[(&'static str, usize, String, f64)], isa: Isa) {
    let find = |d: &str, t: usize, name: &str| {
        medians
            .iter()
            .find(|m| m.0 == d && m.1 == t && m.2 == name)
            .map(|m| m.3)
    };
    println!(
        "\nattention, B={B}, {NH} heads x {HS}, causal, {isa} (GFLOP/s of medians; speed-up = time ratio)"
    );
    println!(
        "| pass | T | flash 1t | materialised 1t | speed-up 1t | flash 2t | materialised 2t | speed-up 2t |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for d in ["forward", "backward"] {
        for t in TS {
            let (Some(f1), Some(f2), Some(m1), Some(m2)) = (
                find(d, t, "flash_1t"),
                find(d, t, "flash_2t"),
                find(d, t, "materialised_1t"),
                find(d, t, "materialised_2t"),
            ) else {
                continue;
            };
            let g = |s: f64| flops(d, t) / s / 1e9;
            println!(
                "| {d} | {t} | {:.1} | {:.1} | {:.2}x | {:.1} | {:.1} | {:.2}x |",
                g(f1),
                g(m1),
                m1 / f1,
                g(f2),
                g(m2),
                m2 / f2
            );
        }
    }
}

/// Runs both implementations on one small case and checks that they agree (outputs and
/// gradients within 1e-4 relative to the largest value), so the timed peer is a real
/// attention.
fn check_peer() {
    let (isa, t) = (Isa::best(), 96);
    let x = Inputs::new(t);
    let mut peer = materialised::Peer::new(t);
    let mut o = vec![0.0; x.out.len()];
    peer.forward(isa, &mut o, &x.qkv);
    assert_close("forward", &o, &x.out);
    let (mut d_flash, mut d_peer) = (vec![0.0; x.qkv.len()], vec![0.0; x.qkv.len()]);
    attention::backward(isa, &mut d_flash, &x.dout, &x.qkv, &x.out, &x.lse, B, t, NH)
        .expect("backward");
    peer.backward(isa, &mut d_peer, &x.dout, &x.qkv);
    assert_close("backward", &d_peer, &d_flash);
}

fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        err <= 1e-4 * scale,
        "materialised {what} differs from flash: max |a-b| = {err}, max |b| = {scale}"
    );
}

/// Attention as separate GEMMs and a softmax over materialised `(T, T)` scores.
mod materialised {
    use super::{B, C, HS, NH};
    use gpt2::gpt2_kernels::cpu::matmul::{self, Epilogue, MatMut, MatRef};
    use gpt2::gpt2_kernels::cpu::simd::Isa;
    use gpt2::gpt2_kernels::cpu::softmax;
    use rayon::prelude::*;

    /// Buffers for one T: the probabilities `P` (B·NH, T, T) kept by the forward, and
    /// per-head outputs (B·NH, T, HS) before they are scattered into `(B, T, C)`.
    pub struct Peer {
        t: usize,
        p: Vec<f32>,
        heads: Vec<f32>,
        dheads: Vec<f32>, // (B·NH, 3, T, HS): dQ, dK, dV of each head
    }

    /// `Q`, `K` or `V` (which = 0, 1, 2) of head `bh` as a (T, HS) view of `qkv` (B, T, 3C).
    fn view(qkv: &[f32], t: usize, bh: usize, which: usize) -> MatRef<'_> {
        let (b, h) = (bh / NH, bh % NH);
        MatRef::new(&qkv[b * t * 3 * C + which * C + h * HS..], 3 * C, 1)
    }

    fn gemm(
        isa: Isa,
        (m, n, k): (usize, usize, usize),
        a: MatRef<'_>,
        b: MatRef<'_>,
        c: &mut [f32],
        ldc: usize,
    ) {
        let c = MatMut::new(c, ldc);
        matmul::gemm(isa, m, n, k, a, b, c, false, Epilogue::default()).expect("gemm");
    }

    impl Peer {
        pub fn new(t: usize) -> Peer {
            Peer {
                t,
                p: vec![0.0; B * NH * t * t],
                heads: vec![0.0; B * NH * t * HS],
                dheads: vec![0.0; B * NH * 3 * t * HS],
            }
        }

        /// `out` (B, T, C) = causal attention of `qkv` (B, T, 3C); keeps `P`.
        pub fn forward(&mut self, isa: Isa, out: &mut [f32], qkv: &[f32]) {
            let t = self.t;
            let scale = 1.0 / (HS as f32).sqrt();
            self.p
                .par_chunks_mut(t * t)
                .zip(self.heads.par_chunks_mut(t * HS))
                .enumerate()
                .for_each_init(
                    || vec![0.0f32; t * t],
                    |s, (bh, (p, o))| {
                        // S (T, T) = Q · Kᵀ, scaled, the future masked.
                        let (q, k, v) = (
                            view(qkv, t, bh, 0),
                            view(qkv, t, bh, 1),
                            view(qkv, t, bh, 2),
                        );
                        gemm(isa, (t, t, HS), q, k.t(), s, t);
                        for (i, row) in s.chunks_exact_mut(t).enumerate() {
                            row[..=i].iter_mut().for_each(|x| *x *= scale);
                            row[i + 1..].fill(f32::NEG_INFINITY);
                        }
                        softmax::forward(isa, p, s, t).expect("softmax");
                        // O (T, HS) = P · V.
                        gemm(isa, (t, HS, t), MatRef::row_major(p, t), v, o, HS);
                    },
                );
            // (B·NH, T, HS) → (B, T, C).
            for (bh, o) in self.heads.chunks_exact(t * HS).enumerate() {
                let (b, h) = (bh / NH, bh % NH);
                for (i, row) in o.chunks_exact(HS).enumerate() {
                    let at = (b * t + i) * C + h * HS;
                    out[at..at + HS].copy_from_slice(row);
                }
            }
        }

        /// `dqkv += ∂out/∂qkv · dout` (dout (B, T, C)) from the `P` of the last forward.
        pub fn backward(&mut self, isa: Isa, dqkv: &mut [f32], dout: &[f32], qkv: &[f32]) {
            let t = self.t;
            let scale = 1.0 / (HS as f32).sqrt();
            self.p
                .par_chunks(t * t)
                .zip(self.dheads.par_chunks_mut(3 * t * HS))
                .enumerate()
                .for_each_init(
                    || (vec![0.0f32; t * t], vec![0.0f32; t * t]),
                    |(dp, ds), (bh, (probs, d))| {
                        let (b, h) = (bh / NH, bh % NH);
                        let (q, k, v) = (
                            view(qkv, t, bh, 0),
                            view(qkv, t, bh, 1),
                            view(qkv, t, bh, 2),
                        );
                        let dout = MatRef::new(&dout[b * t * C + h * HS..], C, 1);
                        let p = MatRef::row_major(probs, t);
                        let (dq, rest) = d.split_at_mut(t * HS);
                        let (dk, dv) = rest.split_at_mut(t * HS);
                        // dP = dO · Vᵀ; dV = Pᵀ · dO.
                        gemm(isa, (t, t, HS), dout, v.t(), dp, t);
                        gemm(isa, (t, HS, t), p.t(), dout, dv, HS);
                        // dS = softmax'(P) · dP, times the scale of the scores.
                        ds.fill(0.0);
                        softmax::backward(isa, ds, probs, dp, t).expect("softmax");
                        ds.iter_mut().for_each(|x| *x *= scale);
                        // dQ = dS · K; dK = dSᵀ · Q.
                        let dsm = MatRef::row_major(&ds[..], t);
                        gemm(isa, (t, HS, t), dsm, k, dq, HS);
                        gemm(isa, (t, HS, t), dsm.t(), q, dk, HS);
                    },
                );
            // (B·NH, 3, T, HS) → (B, T, 3C), accumulating.
            for (bh, d) in self.dheads.chunks_exact(3 * t * HS).enumerate() {
                let (b, h) = (bh / NH, bh % NH);
                for (which, part) in d.chunks_exact(t * HS).enumerate() {
                    for (i, row) in part.chunks_exact(HS).enumerate() {
                        let at = (b * t + i) * 3 * C + which * C + h * HS;
                        dqkv[at..at + HS]
                            .iter_mut()
                            .zip(row)
                            .for_each(|(a, x)| *a += x);
                    }
                }
            }
        }
    }
}
