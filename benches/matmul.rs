//! GEMM and decode matrix–vector products at GPT-2 124M shapes: ours beside the `gemm`
//! crate and `matrixmultiply`, in the same run, with 1 and 2 threads, as GFLOP/s and as
//! a fraction of this machine's FMA peak (or, for M = 1, of its memory bandwidth), both
//! measured by this binary too.
//!
//! ```text
//! cargo bench --bench matmul                          # full run (~25 min on 2 cores)
//! GPT2_BENCH_QUICK=1 cargo bench --bench matmul       # subset, a few minutes
//! cargo bench --bench matmul -- m1024_                # criterion filter on the id
//! GPT2_BENCH_THREADS=1 cargo bench --bench matmul     # one thread count only
//! ```
//!
//! `matrixmultiply` reads its thread count once per process (`MATMUL_NUM_THREADS`), so
//! this binary re-runs itself once per thread count; each run writes its medians to
//! `target/matmul-bench/t<threads>.tsv`, and the parent merges them into
//! `target/matmul-bench/matmul.md` (tables) and `matmul.svg` (plot), which
//! `docs/benchmarks.md` quotes.
//!
//! With more than one thread the run also times `ours_copies` (one independent
//! single-threaded product per thread, at once; at M ≥ 256, when 1 thread is measured
//! too): the report's scaling table sets the speed-up of each library beside it and
//! beside the FMA loop's, which tells our fork-join costs from the neighbours' share of
//! the cores on a shared machine.
//!
//! The FMA loop is also timed just before and just after `ours` at every GEMM shape:
//! this machine's neighbours take ±30 % of a core for minutes at a time, so the report
//! gives ours as a % of both the start-of-run peak and the FMA loop beside it.
//!
//! Medians are over criterion's samples (`iter_custom` records each sample's time per
//! iteration). C = A·B with A (M, K) and B (K, N) row-major: `WeightLayout::InOut` for
//! us, the same strides for the peers. For M = 1 the weights are cycled through copies
//! larger than the L3 cache, as in decoding, where every token streams all weights from
//! memory.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use gpt2::gpt2_kernels::cpu::machine;
use gpt2::gpt2_kernels::cpu::matmul::{self, Epilogue, MatMut, MatRef, Weight, WeightLayout};
use gpt2::gpt2_kernels::cpu::simd::Isa;
use half::bf16;

/// GPT-2 124M's linear layers as (K, N): attention qkv, attention proj, MLP fc, MLP
/// proj, and the LM head over the 50257-token vocabulary.
const LAYERS: [(usize, usize); 5] = [
    (768, 2304),
    (768, 768),
    (768, 3072),
    (3072, 768),
    (768, 50257),
];
/// Rows M = B·T of the GEMM benches.
const ROWS: [usize; 4] = [64, 256, 1024, 4096];
/// Bytes of weight copies cycled through for M = 1 (4× this machine's 32 MiB L3).
const COLD_BYTES: usize = 128 << 20;

fn main() {
    match std::env::var("GPT2_BENCH_CHILD") {
        Ok(threads) => child(threads.parse().expect("GPT2_BENCH_CHILD is a thread count")),
        Err(_) => parent(),
    }
}

fn out_dir() -> PathBuf {
    // Benches run with the package root as the working directory.
    PathBuf::from("target/matmul-bench")
}

/// The thread counts to measure (`GPT2_BENCH_THREADS`, default `1,2`); children inherit
/// the variable.
fn thread_counts() -> Vec<usize> {
    std::env::var("GPT2_BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .map(|t| {
            t.trim()
                .parse()
                .expect("GPT2_BENCH_THREADS: comma-separated counts")
        })
        .collect()
}

/// Runs one child per thread count, then merges their results.
fn parent() {
    let threads = thread_counts();
    let exe = std::env::current_exe().expect("current exe");
    std::fs::create_dir_all(out_dir()).expect("create target/matmul-bench");
    for &t in &threads {
        let _ = std::fs::remove_file(out_dir().join(format!("t{t}.tsv")));
        let status = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env("GPT2_BENCH_CHILD", t.to_string())
            .env("MATMUL_NUM_THREADS", t.to_string())
            .status()
            .expect("run bench child");
        assert!(status.success(), "bench child with {t} threads failed");
    }
    report(&threads);
}

/// One bench: the median and the fastest of its samples.
#[derive(Debug, Clone)]
struct Row {
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    lib: String,
    seconds: f64,
    best: f64,
}

impl Row {
    fn gflops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64 / self.seconds / 1e9
    }
    fn best_gflops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64 / self.best / 1e9
    }
}

/// Criterion's samples of one bench, as seconds per iteration.
type Samples = Rc<RefCell<Vec<f64>>>;

/// Everything measured in one child.
struct Child {
    threads: usize,
    quick: bool,
    /// Also time `ours_copies` at M ≥ 256: only for the scaling table, which needs more
    /// than one thread here and a 1-thread run beside it.
    copies: bool,
    pool: rayon::ThreadPool,
    isa: Isa,
    recorded: Vec<(usize, usize, usize, String, Samples)>,
    /// The FMA loop timed around `ours` at each GEMM shape (the mean of its GFLOP/s
    /// just before and just after): the yardstick of that moment on a shared machine.
    fma_beside: Vec<((usize, usize, usize), f64)>,
}

impl Child {
    /// The FMA loop on the child's pool now, in GFLOP/s (NaN without AVX2+FMA).
    fn fma_now(&self) -> f64 {
        self.pool
            .install(machine::fma_peak_gflops)
            .unwrap_or(f64::NAN)
    }

    /// Benchmarks `f` (one call = one product) on the child's pool under `id`, recording
    /// its samples.
    fn bench(
        &mut self,
        c: &mut Criterion,
        shape: (usize, usize, usize),
        lib: &str,
        mut f: impl FnMut() + Send,
    ) {
        let pool = &self.pool;
        let samples = measure(c, self.threads, self.quick, shape, lib, 1, |iters| {
            pool.install(|| {
                let t = Instant::now();
                for _ in 0..iters {
                    f();
                }
                t.elapsed()
            })
        });
        self.recorded
            .push((shape.0, shape.1, shape.2, lib.to_string(), samples));
    }

    /// `ours_copies`: as many independent single-threaded products as the child has
    /// threads, at once, each on its own operands: what these cores deliver when the
    /// threads never wait for each other, the reference for the scaling of `ours` (see
    /// [`scaling`]). Recorded per product, so its GFLOP/s is the total.
    fn bench_copies(&mut self, c: &mut Criterion, (m, k, n): (usize, usize, usize)) {
        let t = self.threads;
        let pools: Vec<_> = (0..t)
            .map(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build())
            .collect::<Result<_, _>>()
            .expect("pool");
        let mut copies: Vec<_> = (0..t)
            .map(|_| (values(m * k, 1), values(k * n, 2), vec![0f32; m * n]))
            .collect();
        let isa = self.isa;
        let samples = measure(c, t, self.quick, (m, k, n), "ours_copies", t, |iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for (pool, (a, b, out)) in pools.iter().zip(&mut copies) {
                    s.spawn(move || {
                        let b = Weight::f32(b, WeightLayout::InOut);
                        pool.install(|| {
                            for _ in 0..iters {
                                matmul::forward(isa, out, a, b, None, k, n).unwrap();
                            }
                        })
                    });
                }
            });
            start.elapsed()
        });
        self.recorded.push((m, k, n, "ours_copies".into(), samples));
    }
}

/// Runs one criterion bench of `(m, k, n)` products: `run(iters)` performs `iters`
/// iterations of `per_iter` products each and returns the time taken. Returns the
/// samples as seconds per product.
fn measure(
    c: &mut Criterion,
    threads: usize,
    quick: bool,
    (m, k, n): (usize, usize, usize),
    lib: &str,
    per_iter: usize,
    mut run: impl FnMut(u64) -> Duration,
) -> Samples {
    let samples: Samples = Rc::default();
    let flops = 2.0 * (m * n * k) as f64;
    let mut group = c.benchmark_group(format!("matmul/{threads}t"));
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let long = flops > 2e10;
    let (warm, measure) = match (quick, long) {
        (true, _) => (0.3, 1.0),
        (false, false) => (1.0, 3.0),
        (false, true) => (0.5, 5.0),
    };
    group
        .warm_up_time(Duration::from_secs_f64(warm))
        .measurement_time(Duration::from_secs_f64(measure));
    let rec = samples.clone();
    group.bench_function(BenchmarkId::new(format!("m{m}_k{k}_n{n}"), lib), |b| {
        b.iter_custom(|iters| {
            let t = run(iters);
            rec.borrow_mut()
                .push(t.as_secs_f64() / (iters as usize * per_iter) as f64);
            t
        })
    });
    group.finish();
    samples
}

/// (median, min, max) of non-empty `v`, which it sorts.
fn spread(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (median(v), v[0], v[v.len() - 1])
}

/// The median of sorted, non-empty `s`.
fn median(s: &[f64]) -> f64 {
    let h = s.len() / 2;
    if s.len() % 2 == 1 {
        s[h]
    } else {
        0.5 * (s[h - 1] + s[h])
    }
}

/// Deterministic pseudo-random values in [−1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn child(threads: usize) {
    let quick = std::env::var_os("GPT2_BENCH_QUICK").is_some();
    let mut c = Criterion::default().configure_from_args();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let mut ch = Child {
        threads,
        quick,
        copies: threads > 1 && thread_counts().contains(&1),
        pool,
        isa: Isa::best(),
        recorded: Vec::new(),
        fma_beside: Vec::new(),
    };
    let peak = ch.fma_now();
    let bandwidth = ch.pool.install(machine::read_bandwidth_gbs);
    eprintln!(
        "{threads} thread(s): FMA peak {peak:.1} GFLOP/s, read bandwidth {bandwidth:.1} GB/s"
    );

    let rows: &[usize] = if quick { &[256, 1024] } else { &ROWS };
    for &m in rows {
        for &(k, n) in &LAYERS {
            if quick && m == 1024 && (k, n) != (768, 2304) {
                continue;
            }
            gemm_benches(&mut ch, &mut c, (m, k, n));
        }
    }
    gelu_bench(&mut ch, &mut c);
    for &(k, n) in &LAYERS {
        decode_benches(&mut ch, &mut c, k, n);
    }
    c.final_summary();

    let mut tsv = format!("# peak\t{peak}\n# bandwidth\t{bandwidth}\n");
    for ((m, k, n), fma) in &ch.fma_beside {
        writeln!(tsv, "# fma\t{m}\t{k}\t{n}\t{fma}").unwrap();
    }
    for (m, k, n, lib, samples) in &ch.recorded {
        let mut s = samples.borrow().clone();
        // The last 10 records are criterion's samples; earlier ones its warm-up.
        let skip = s.len().saturating_sub(10);
        let s = &mut s[skip..];
        if s.is_empty() {
            continue;
        }
        s.sort_by(f64::total_cmp);
        let median = median(s);
        writeln!(
            tsv,
            "{threads}\t{m}\t{k}\t{n}\t{lib}\t{median:e}\t{:e}",
            s[0]
        )
        .unwrap();
    }
    std::fs::write(out_dir().join(format!("t{threads}.tsv")), tsv).expect("write results");
}

/// Ours, `gemm` and `matrixmultiply` on C (M, N) = A (M, K) · B (K, N), all row-major.
fn gemm_benches(ch: &mut Child, c: &mut Criterion, (m, k, n): (usize, usize, usize)) {
    let a = values(m * k, 1);
    let b = values(k * n, 2);
    let mut out = vec![0f32; m * n];
    let isa = ch.isa;
    let threads = ch.threads;
    let before = ch.fma_now();
    ch.bench(c, (m, k, n), "ours", || {
        matmul::forward(
            isa,
            &mut out,
            &a,
            Weight::f32(&b, WeightLayout::InOut),
            None,
            k,
            n,
        )
        .unwrap()
    });
    let after = ch.fma_now();
    ch.fma_beside.push(((m, k, n), 0.5 * (before + after)));
    if m == 1024 && n == 50257 {
        // The tied LM head is stored (V, C): the (N, K) layout, read transposed.
        let bt = values(n * k, 3);
        ch.bench(c, (m, k, n), "ours_outin", || {
            matmul::forward(
                isa,
                &mut out,
                &a,
                Weight::f32(&bt, WeightLayout::OutIn),
                None,
                k,
                n,
            )
            .unwrap()
        });
    }
    ch.bench(c, (m, k, n), "gemm", || {
        peer_gemm(threads, (m, k, n), &a, &b, &mut out)
    });
    ch.bench(c, (m, k, n), "matrixmultiply", || {
        peer_matrixmultiply((m, k, n), &a, &b, &mut out)
    });
    if ch.copies && m >= 256 {
        ch.bench_copies(c, (m, k, n));
    }
}

fn peer_gemm(
    threads: usize,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
) {
    let par = if threads == 1 {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    assert!(a.len() == m * k && b.len() == k * n && out.len() == m * n);
    // SAFETY: the three buffers hold row-major (m, k), (k, n) and (m, n) matrices with
    // the strides given (checked above), and `out` aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

fn peer_matrixmultiply((m, k, n): (usize, usize, usize), a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() == m * k && b.len() == k * n && out.len() == m * n);
    // SAFETY: as in `peer_gemm`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// Does fusing GELU into the epilogue pay? The MLP's first layer with GELU fused,
/// against the plain product followed by a separate GELU pass over the output (our own
/// GEMM with K = 0, which is exactly `C = gelu(C)`, single-threaded, so 1 thread only).
fn gelu_bench(ch: &mut Child, c: &mut Criterion) {
    if ch.threads != 1 {
        return;
    }
    let (m, k, n) = (1024, 768, 3072);
    let (a, b, bias) = (values(m * k, 4), values(k * n, 5), values(n, 6));
    let (mut out, mut pre) = (vec![0f32; m * n], vec![0f32; m * n]);
    let isa = ch.isa;
    let w = Weight::f32(&b, WeightLayout::InOut);
    ch.bench(c, (m, k, n), "ours_gelu_fused", || {
        matmul::forward_gelu(isa, &mut out, Some(&mut pre), &a, w, Some(&bias), k, n).unwrap()
    });
    ch.bench(c, (m, k, n), "ours_gelu_separate", || {
        matmul::forward(isa, &mut pre, &a, w, Some(&bias), k, n).unwrap();
        out.copy_from_slice(&pre);
        let gelu = Epilogue {
            gelu: true,
            ..Epilogue::default()
        };
        let empty: MatRef<'_, f32> = MatRef::row_major(&[], 0);
        matmul::gemm(
            isa,
            m,
            n,
            0,
            empty,
            empty,
            MatMut::new(&mut out, n),
            true,
            gelu,
        )
        .unwrap()
    });
}

/// M = 1 (decoding one token): f32 and bf16 weights, both layouts, weights cycled
/// through copies larger than L3 so that every call streams them from memory.
fn decode_benches(ch: &mut Child, c: &mut Criterion, k: usize, n: usize) {
    let copies = COLD_BYTES.div_ceil(k * n * 4).max(1);
    let weights: Vec<Vec<f32>> = (0..copies).map(|s| values(k * n, 10 + s as u64)).collect();
    let halves: Vec<Vec<bf16>> = (0..COLD_BYTES.div_ceil(k * n * 2).max(1))
        .map(|s| {
            values(k * n, 100 + s as u64)
                .into_iter()
                .map(bf16::from_f32)
                .collect()
        })
        .collect();
    let x = values(k, 7);
    let mut out = vec![0f32; n];
    let (isa, threads) = (ch.isa, ch.threads);
    let mut next = 0;
    // The yardstick: a plain streaming read of the same buffers, just before.
    ch.bench(c, (1, k, n), "read", || {
        next = (next + 1) % weights.len();
        std::hint::black_box(machine::stream_sum(&weights[next]));
    });
    for (layout, name) in [
        (WeightLayout::InOut, "ours"),
        (WeightLayout::OutIn, "ours_outin"),
    ] {
        ch.bench(c, (1, k, n), name, || {
            next = (next + 1) % weights.len();
            matmul::forward(
                isa,
                &mut out,
                &x,
                Weight::f32(&weights[next], layout),
                None,
                k,
                n,
            )
            .unwrap()
        });
    }
    for (layout, name) in [
        (WeightLayout::InOut, "ours_bf16"),
        (WeightLayout::OutIn, "ours_bf16_outin"),
    ] {
        ch.bench(c, (1, k, n), name, || {
            next = (next + 1) % halves.len();
            matmul::forward(
                isa,
                &mut out,
                &x,
                Weight::bf16(&halves[next], layout),
                None,
                k,
                n,
            )
            .unwrap()
        });
    }
    ch.bench(c, (1, k, n), "gemm", || {
        next = (next + 1) % weights.len();
        peer_gemm(threads, (1, k, n), &x, &weights[next], &mut out)
    });
    ch.bench(c, (1, k, n), "matrixmultiply", || {
        next = (next + 1) % weights.len();
        peer_matrixmultiply((1, k, n), &x, &weights[next], &mut out)
    });
}

/// Reads the children's TSVs and writes the markdown tables and the SVG plot.
fn report(threads: &[usize]) {
    let mut rows = Vec::new();
    let mut machine = BTreeMap::new();
    let mut beside = BTreeMap::new();
    for &t in threads {
        let Ok(text) = std::fs::read_to_string(out_dir().join(format!("t{t}.tsv"))) else {
            continue;
        };
        let (mut peak, mut bw) = (f64::NAN, f64::NAN);
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f[..] {
                ["# peak", v] => peak = v.parse().unwrap(),
                ["# bandwidth", v] => bw = v.parse().unwrap(),
                ["# fma", m, k, n, v] => {
                    let shape = (m.parse().unwrap(), k.parse().unwrap(), n.parse().unwrap());
                    beside.insert((t, shape), v.parse::<f64>().unwrap());
                }
                [t, m, k, n, lib, s, best] => rows.push(Row {
                    threads: t.parse().unwrap(),
                    m: m.parse().unwrap(),
                    k: k.parse().unwrap(),
                    n: n.parse().unwrap(),
                    lib: lib.to_string(),
                    seconds: s.parse().unwrap(),
                    best: best.parse().unwrap(),
                }),
                _ => {}
            }
        }
        machine.insert(t, (peak, bw));
    }
    let md = markdown(&rows, &machine, &beside);
    println!("\n{md}");
    std::fs::write(out_dir().join("matmul.md"), &md).expect("write matmul.md");
    std::fs::write(out_dir().join("matmul.svg"), svg(&rows, &machine)).expect("write matmul.svg");
    eprintln!(
        "wrote {}",
        Path::new(&out_dir()).join("matmul.{md,svg}").display()
    );
}

fn find<'a>(
    rows: &'a [Row],
    t: usize,
    (m, k, n): (usize, usize, usize),
    lib: &str,
) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.threads == t && (r.m, r.k, r.n) == (m, k, n) && r.lib == lib)
}

/// The FMA peak for `t` threads: the measured one, but never below `t ×` the one-thread
/// peak (on a shared machine the many-thread FMA loop may have found fewer free cores).
fn peak_of(machine: &BTreeMap<usize, (f64, f64)>, t: usize) -> f64 {
    let per_core = machine.get(&1).map_or(0.0, |p| p.0);
    machine[&t].0.max(t as f64 * per_core)
}

/// The FMA loop beside each GEMM shape, by (threads, (M, K, N)), in GFLOP/s.
type Beside = BTreeMap<(usize, (usize, usize, usize)), f64>;

fn markdown(rows: &[Row], machine: &BTreeMap<usize, (f64, f64)>, beside: &Beside) -> String {
    let mut md = String::new();
    for (t, (peak, bw)) in machine {
        writeln!(
            md,
            "- {t} thread(s): FMA loop **{peak:.1} GFLOP/s** (peak used: {:.1}), streaming read \
             **{bw:.1} GB/s**",
            peak_of(machine, *t)
        )
        .unwrap();
    }
    let mut shapes: Vec<(usize, usize, usize)> = rows
        .iter()
        .filter(|r| r.m > 1)
        .map(|r| (r.m, r.k, r.n))
        .collect();
    shapes.sort();
    shapes.dedup();
    for &t in machine.keys() {
        let peak = peak_of(machine, t);
        writeln!(
            md,
            "\n**GEMM, {t} thread(s)** — GFLOP/s (median of 10 samples); ratio = ours ÷ the \
             faster peer, from the medians and from each one's fastest sample; % of a peak of \
             {peak:.0} GFLOP/s (the FMA loop at the start of the run) and % of the FMA loop \
             beside (timed just before and just after ours at that shape)\n"
        )
        .unwrap();
        writeln!(
            md,
            "| M | K | N | ours | gemm | matrixmultiply | ratio | ratio (fastest) | ours % of peak \
             | ours % of FMA beside |"
        )
        .unwrap();
        writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
        let mut large = Vec::new();
        for &s in &shapes {
            let g = |lib| find(rows, t, s, lib).map(Row::gflops);
            let f = |lib| find(rows, t, s, lib).map_or(0.0, Row::best_gflops);
            let Some(ours) = g("ours") else { continue };
            let best_peer = g("gemm")
                .unwrap_or(0.0)
                .max(g("matrixmultiply").unwrap_or(0.0));
            let fastest_ratio = f("ours") / f("gemm").max(f("matrixmultiply"));
            let cell = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
            let of_beside = beside.get(&(t, s)).map(|fma| 100.0 * ours / fma);
            if s.0 >= 1024 {
                large.extend(of_beside);
            }
            writeln!(
                md,
                "| {} | {} | {} | **{ours:.1}** | {} | {} | {:.2} | {fastest_ratio:.2} | {:.0}% \
                 | {} |",
                s.0,
                s.1,
                s.2,
                cell(g("gemm")),
                cell(g("matrixmultiply")),
                ours / best_peer,
                100.0 * ours / peak,
                of_beside.map_or("–".into(), |p| format!("{p:.0}%"))
            )
            .unwrap();
        }
        if !large.is_empty() {
            let (med, lo, hi) = spread(&mut large);
            writeln!(
                md,
                "\nOurs at M ≥ 1024, % of the FMA loop beside: median {med:.0} %, range \
                 {lo:.0}–{hi:.0} %, ≥ 85 % at {} of {}.",
                large.iter().filter(|&&p| p >= 85.0).count(),
                large.len()
            )
            .unwrap();
        }
        let extras: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                r.threads == t && r.m > 1 && r.lib.starts_with("ours_") && r.lib != "ours_copies"
            })
            .collect();
        if !extras.is_empty() {
            writeln!(md, "\nOther variants, {t} thread(s):\n").unwrap();
            for r in extras {
                writeln!(
                    md,
                    "- `{}` M={} K={} N={}: {:.1} GFLOP/s ({:.3} ms)",
                    r.lib,
                    r.m,
                    r.k,
                    r.n,
                    r.gflops(),
                    r.seconds * 1e3
                )
                .unwrap();
            }
        }
    }
    for &t in machine
        .keys()
        .filter(|&&t| t > 1 && machine.contains_key(&1))
    {
        scaling(&mut md, rows, machine, &shapes, t);
    }
    for &t in machine.keys() {
        writeln!(
            md,
            "\n**Decode, M = 1, {t} thread(s)** — GB/s of weights streamed (median), and % of \
             `read`: a plain streaming read of the same buffers, measured just before\n"
        )
        .unwrap();
        writeln!(
            md,
            "| K | N | read | ours f32 (K,N) | ours f32 (N,K) | ours bf16 (K,N) | ours bf16 (N,K) \
             | gemm f32 | matrixmultiply f32 |"
        )
        .unwrap();
        writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
        for &(k, n) in &LAYERS {
            let gbs = |lib: &str, bytes: usize| {
                find(rows, t, (1, k, n), lib).map(|r| (k * n * bytes) as f64 / r.seconds / 1e9)
            };
            let Some(read) = gbs("read", 4) else { continue };
            let cell = |lib: &str, bytes: usize| {
                gbs(lib, bytes).map_or("–".into(), |g| {
                    format!("{g:.1} ({:.0}%)", 100.0 * g / read)
                })
            };
            writeln!(
                md,
                "| {k} | {n} | {read:.1} | {} | {} | {} | {} | {} | {} |",
                cell("ours", 4),
                cell("ours_outin", 4),
                cell("ours_bf16", 2),
                cell("ours_bf16_outin", 2),
                cell("gemm", 4),
                cell("matrixmultiply", 4)
            )
            .unwrap();
        }
    }
    md
}

/// The speed-up of `t` threads over one, per GEMM shape and library (medians), beside
/// two references measured in the same run: the FMA loop's own speed-up, and that of
/// `t` independent single-threaded copies of ours (`ours_copies`), which on a shared
/// machine shows how much of the other cores this run actually got. Where the product
/// is compute-bound, 1 − "ours ÷ copies" is what cooperating costs us (waiting at the
/// fork-join points, packed data read from the other core); where it streams much
/// memory (N = 50257: each copy reads its own B and writes its own C) the copies also
/// compete for L3 and DRAM, and "ours ÷ copies" can exceed 100 %.
fn scaling(
    md: &mut String,
    rows: &[Row],
    machine: &BTreeMap<usize, (f64, f64)>,
    shapes: &[(usize, usize, usize)],
    t: usize,
) {
    let fma = machine[&t].0 / machine[&1].0;
    writeln!(
        md,
        "\n**Scaling, {t} threads ÷ 1** — speed-up of the medians; the FMA loop scaled \
         {fma:.2}× in this run; copies = {t} independent 1-thread products at once\n"
    )
    .unwrap();
    writeln!(
        md,
        "| M | K | N | ours | gemm | matrixmultiply | copies of ours | ours ÷ copies |"
    )
    .unwrap();
    writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|").unwrap();
    let gflops = |t, s, lib| find(rows, t, s, lib).map(Row::gflops);
    let ratio = |x: Option<f64>, y: Option<f64>| x.zip(y).map(|(x, y)| x / y);
    // Each library against itself on 1 thread; the copies against ours on 1 thread.
    let speedup = |s, lib, base| ratio(gflops(t, s, lib), gflops(1, s, base));
    let (mut ours_large, mut eff_large) = (Vec::new(), Vec::new());
    for &s in shapes {
        let cell = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.2}×"));
        let eff = ratio(gflops(t, s, "ours"), gflops(t, s, "ours_copies"));
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.0,
            s.1,
            s.2,
            cell(speedup(s, "ours", "ours")),
            cell(speedup(s, "gemm", "gemm")),
            cell(speedup(s, "matrixmultiply", "matrixmultiply")),
            cell(speedup(s, "ours_copies", "ours")),
            eff.map_or("–".into(), |e| format!("{:.0}%", 100.0 * e)),
        )
        .unwrap();
        if s.0 >= 256 {
            ours_large.extend(speedup(s, "ours", "ours"));
            eff_large.extend(eff);
        }
    }
    if !ours_large.is_empty() {
        let (med, lo, hi) = spread(&mut ours_large);
        writeln!(
            md,
            "\nOurs at M ≥ 256: speed-up median {med:.2}×, range {lo:.2}–{hi:.2}×."
        )
        .unwrap();
    }
    if !eff_large.is_empty() {
        let (med, lo, hi) = spread(&mut eff_large);
        writeln!(
            md,
            "Ours ÷ copies at M ≥ 256: median {:.0} %, range {:.0}–{:.0} %.",
            100.0 * med,
            100.0 * lo,
            100.0 * hi
        )
        .unwrap();
    }
}

/// Grouped bars: for each thread count a panel, for each GEMM shape three bars (ours,
/// gemm, matrixmultiply), with the measured FMA peak as a dashed line.
fn svg(rows: &[Row], machine: &BTreeMap<usize, (f64, f64)>) -> String {
    let libs = [
        ("ours", "#d62728"),
        ("gemm", "#1f77b4"),
        ("matrixmultiply", "#7f7f7f"),
    ];
    let mut shapes: Vec<(usize, usize, usize)> = rows
        .iter()
        .filter(|r| r.m > 1 && r.lib == "ours")
        .map(|r| (r.m, r.k, r.n))
        .collect();
    shapes.sort();
    shapes.dedup();
    let (panel_h, left, top, bar_w, gap) = (260.0, 60.0, 30.0, 7.0, 8.0);
    let group_w = 3.0 * bar_w + gap;
    let width = left + shapes.len() as f64 * group_w + 20.0;
    let height = machine.len() as f64 * (panel_h + 110.0) + 20.0;
    let ymax = machine
        .keys()
        .map(|&t| peak_of(machine, t))
        .fold(1.0, f64::max)
        * 1.05;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (p, &t) in machine.keys().enumerate() {
        let peak = peak_of(machine, t);
        let y0 = top + p as f64 * (panel_h + 110.0);
        let y = |v: f64| y0 + panel_h * (1.0 - v / ymax);
        writeln!(s, "<text x=\"{left}\" y=\"{:.0}\" font-size=\"13\">GEMM GFLOP/s, {t} thread(s) (dashed: FMA peak {peak:.0})</text>", y0 - 10.0).unwrap();
        for v in (0..=(ymax as usize)).step_by(25) {
            let yy = y(v as f64);
            writeln!(s, "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/><text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>", width - 20.0, left - 4.0, yy + 4.0).unwrap();
        }
        writeln!(s, "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\" stroke-dasharray=\"4,3\"/>", width - 20.0, y(peak), y(peak)).unwrap();
        for (i, &shape) in shapes.iter().enumerate() {
            let x0 = left + i as f64 * group_w + gap / 2.0;
            for (j, (lib, color)) in libs.iter().enumerate() {
                if let Some(r) = find(rows, t, shape, lib) {
                    let v = r.gflops();
                    writeln!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w}\" height=\"{:.1}\" fill=\"{color}\"><title>{lib} M={} K={} N={}: {v:.1} GFLOP/s</title></rect>", x0 + j as f64 * bar_w, y(v), y(0.0) - y(v), shape.0, shape.1, shape.2).unwrap();
                }
            }
            let (lx, ly) = (x0 + 1.5 * bar_w, y(0.0) + 8.0);
            writeln!(s, "<text transform=\"translate({lx:.1},{ly:.1}) rotate(60)\" font-size=\"9\">{}·{}·{}</text>", shape.0, shape.1, shape.2).unwrap();
        }
    }
    for (j, (lib, color)) in libs.iter().enumerate() {
        let x = left + j as f64 * 130.0;
        writeln!(s, "<rect x=\"{x}\" y=\"{:.0}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{:.0}\" y=\"{:.0}\">{lib}</text>", height - 18.0, x + 14.0, height - 9.0).unwrap();
    }
    s.push_str("</svg>\n");
    s
}
