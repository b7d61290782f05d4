//! Shared helpers: random data, error measures, finite differences, thread pools.

pub use gpt2_kernels::cpu::simd::Isa;
pub use gpt2_kernels::rng::Rng;

/// The awkward sizes of issue 2: 1, primes, around the vector width and its multiples.
pub const SIZES: [usize; 8] = [1, 3, 7, 9, 17, 63, 65, 127];

/// Every instruction set this CPU has (scalar, and AVX2+FMA where present).
pub fn isas() -> Vec<Isa> {
    let v = Isa::available();
    if !v.iter().any(|i| i.is_avx2()) {
        eprintln!("note: no AVX2+FMA on this CPU, only the scalar path runs");
    }
    v
}

/// `n` values uniform in `[lo, hi)`.
pub fn uniform(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * rng.next_f32()).collect()
}

pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// `max|a − b| / max|b|` (or `max|a − b|` when `b` is all zeros): the per-tensor error
/// measure of issue 2.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let diff = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    if scale > 0.0 { diff / scale } else { diff }
}

/// Asserts `rel_err(got, want) ≤ tol`, naming the case.
#[track_caller]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    let e = rel_err(got, want);
    assert!(e <= tol, "{what}: max|a-b|/max|b| = {e:.3e} > {tol:.1e}");
}

/// Central finite differences `∂f/∂x_i ≈ (f(x + h e_i) − f(x − h e_i)) / 2h` in `f64`.
pub fn finite_diff(f: impl Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    let mut x = x.to_vec();
    (0..x.len())
        .map(|i| {
            let x0 = x[i];
            x[i] = x0 + h;
            let up = f(&x);
            x[i] = x0 - h;
            let down = f(&x);
            x[i] = x0;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// `Σ w_i y_i`: the scalar objective whose gradient with respect to `y` is `w`, so that a
/// backward given `dout = w` must return `∇(Σ w ⊙ forward)`.
pub fn weighted_sum(w: &[f64], y: &[f64]) -> f64 {
    w.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Runs `f` on rayon pools of 1, 2 and 3 threads and asserts that every output is
/// bitwise identical across the pools.
#[track_caller]
pub fn assert_thread_invariant(what: &str, f: impl Fn() -> Vec<Vec<f32>> + Send + Sync) {
    let runs: Vec<Vec<Vec<u32>>> = [1, 2, 3]
        .iter()
        .map(|&n| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("thread pool");
            pool.install(&f)
                .iter()
                .map(|v| v.iter().map(|x| x.to_bits()).collect())
                .collect()
        })
        .collect();
    assert!(
        runs[0] == runs[1] && runs[0] == runs[2],
        "{what}: results depend on the number of threads"
    );
}
