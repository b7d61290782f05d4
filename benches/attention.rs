//! Causal self-attention at GPT-2 124M's shape (B = 4, 12 heads × 64), forward and
//! backward: our flash kernels (on 1 and 2 threads) beside the materialised version,
//! as GFLOP/s and as the ratio of medians.
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
//! The materialised peer is `attention::reference` (the full `(T, T)` scores per batch
//! and head, softmax, then `att·V`; scalar loops on one thread). Issue 6 wants it built
//! on our GEMM (`cpu::matmul`), which lands separately: swap it in there, and the ratio
//! becomes the one the issue's target refers to.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use gpt2::gpt2_kernels::cpu::attention::{self, reference};
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
        }
        let single = &pools[0].1;
        bench(
            &mut c,
            &medians,
            ("forward", t, "materialised".into()),
            single,
            || reference::forward(&mut o, &mut l, qkv, B, t, NH).expect("forward"),
        );
        bench(
            &mut c,
            &medians,
            ("backward", t, "materialised".into()),
            single,
            || reference::backward(&mut dqkv, dout, qkv, out, lse, B, t, NH).expect("backward"),
        );
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
        "| pass | T | flash 1 thread | flash 2 threads | materialised | speed-up 1t | speed-up 2t |"
    );
    println!("|---|---|---|---|---|---|---|");
    for d in ["forward", "backward"] {
        for t in TS {
            let (Some(f1), Some(f2), Some(m)) = (
                find(d, t, "flash_1t"),
                find(d, t, "flash_2t"),
                find(d, t, "materialised"),
            ) else {
                continue;
            };
            let g = |s: f64| flops(d, t) / s / 1e9;
            println!(
                "| {d} | {t} | {:.1} | {:.1} | {:.2} | {:.1}x | {:.1}x |",
                g(f1),
                g(f2),
                g(m),
                m / f1,
                m / f2
            );
        }
    }
}
