//! Shared helpers of the GPU tests: the check type, random data, f32/bf16 round trips
//! and the error measure.

use std::process::ExitCode;

use gpt2_kernels::Result as KResult;
use gpt2_kernels::cuda::{CudaError, Gpu, GpuBuf, GpuFloat};
use half::bf16;

pub use gpt2_kernels::cpu::simd::Isa;
pub use gpt2_kernels::rng::Rng;

/// One named check: `Ok(summary)` or `Err(what failed)`.
pub struct Check {
    pub name: &'static str,
    pub run: fn(&Gpu) -> Res<String>,
}

/// The main program of a GPU test binary named `binary`: runs the `checks` selected by
/// the command line (substrings; `!pattern` excludes) on cuda:0 and prints one line per
/// check and a summary; without a GPU, one `SKIP` line per check on stderr (a failure
/// when `GPT2_REQUIRE_GPU` is set, as on the GPU machine).
pub fn run(binary: &str, checks: Vec<Check>) -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (exclude, include): (Vec<&str>, Vec<&str>) = args
        .iter()
        .map(String::as_str)
        .partition(|a| a.starts_with('!'));
    let checks: Vec<Check> = checks
        .into_iter()
        .filter(|c| include.is_empty() || include.iter().any(|f| c.name.contains(f)))
        .filter(|c| !exclude.iter().any(|f| c.name.contains(&f[1..])))
        .collect();

    let gpu = match Gpu::get(0) {
        Ok(gpu) => gpu,
        Err(e) => {
            let reason = match e {
                CudaError::Unavailable(why) => why,
                other => other.to_string(),
            };
            for c in &checks {
                eprintln!("SKIP {}: no CUDA device ({reason})", c.name);
            }
            println!(
                "{binary}: 0 passed, 0 failed, {} skipped (no CUDA device)",
                checks.len()
            );
            // On the GPU machine (scripts/gpu-check.sh run), a missing device is a failure.
            return if std::env::var_os("GPT2_REQUIRE_GPU").is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let (major, minor) = gpu.compute_capability();
    println!("{binary} on cuda:0 {} (sm_{major}{minor})", gpu.name());
    let mut failed = 0;
    for c in &checks {
        // A panic in a check is a failure of that check, not the end of the run.
        let outcome = std::panic::catch_unwind(|| (c.run)(&gpu).map_err(|e| e.to_string()))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(&p))));
        match outcome {
            Ok(detail) => println!("PASS {:<34} {detail}", c.name),
            Err(why) => {
                failed += 1;
                println!("FAIL {:<34} {why}", c.name);
            }
        }
    }
    println!(
        "{binary}: {} passed, {failed} failed, 0 skipped",
        checks.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Kernel errors and check failures alike (`?` takes both).
pub type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// One element type's variant of a check, returning its worst error.
pub type Variant = fn(&Gpu) -> Res<f64>;

/// Runs an f32 and a bf16 variant of a check, each returning its worst error, and
/// summarises both with their tolerances (`f32_tol == 0`: the check required exact
/// equality).
pub fn both(gpu: &Gpu, f32_tol: f64, f: (Variant, Variant)) -> Res<String> {
    let (a, b) = (f.0(gpu)?, f.1(gpu)?);
    if f32_tol == 0.0 {
        return Ok("f32 and bf16 bit-identical to the CPU".into());
    }
    Ok(format!(
        "f32 err {a:.1e} (tol {:.0e}), bf16 err {b:.1e} (tol {:.0e})",
        f32::tol(f32_tol),
        bf16::tol(f32_tol)
    ))
}

/// Tolerance of f32 results that differ from the CPU's only by summation order or by
/// the GPU's libdevice `expf`/`tanhf` (within 2 ulp).
pub const F32_TOL: f64 = 1e-5;
/// Tolerance of bf16 results: inputs are the same bf16 values on both sides, so the gap
/// is the output's rounding to bf16 (2^-9 relative) plus, for accumulating backward
/// passes, the rounding of the bf16 accumulator: 1e-2 leaves room for both.
pub const BF16_TOL: f64 = 1e-2;

/// Whether `GPT2_CUDA_QUICK` is set: only cases of at most [`QUICK_ELEMENTS`] elements
/// run (for runs under compute-sanitizer, which slows kernels down a hundredfold).
pub fn quick() -> bool {
    std::env::var_os("GPT2_CUDA_QUICK").is_some()
}

/// The largest case (in elements) of a quick run.
pub const QUICK_ELEMENTS: usize = 1 << 17;

/// The cases of `all` to run: all of them, or in a quick run those whose largest
/// operand (`elements`) is small.
pub fn cases<S: Copy>(all: &[S], elements: fn(S) -> usize) -> Vec<S> {
    all.iter()
        .copied()
        .filter(|&s| !quick() || elements(s) <= QUICK_ELEMENTS)
        .collect()
}

/// The CPU instruction set of the twins.
pub fn isa() -> Isa {
    Isa::best()
}

/// `n` values uniform in `[lo, hi)`.
pub fn uniform(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * rng.next_f32()).collect()
}

/// `n` indices uniform in `[0, bound)`.
pub fn indices(rng: &mut Rng, n: usize, bound: usize) -> Vec<u32> {
    (0..n)
        .map(|_| (rng.next_u64() % bound as u64) as u32)
        .collect()
}

/// An element type the kernels run on, with host conversions for the tests.
pub trait Elem: GpuFloat {
    const NAME: &'static str;
    /// The tolerance for a result whose f32 tolerance is `f32_tol`.
    fn tol(f32_tol: f64) -> f64;
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl Elem for f32 {
    const NAME: &'static str = "f32";
    fn tol(f32_tol: f64) -> f64 {
        f32_tol
    }
    fn from_f32(x: f32) -> Self {
        x
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl Elem for bf16 {
    const NAME: &'static str = "bf16";
    fn tol(f32_tol: f64) -> f64 {
        f32_tol.max(BF16_TOL)
    }
    fn from_f32(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// `x` rounded through `T` (the values the GPU sees, and so the CPU twin's inputs).
pub fn round<T: Elem>(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| T::from_f32(v).to_f32()).collect()
}

/// `x` converted to `T` and uploaded.
pub fn up<T: Elem>(gpu: &Gpu, x: &[f32]) -> KResult<GpuBuf<T>> {
    gpu.upload(&x.iter().map(|&v| T::from_f32(v)).collect::<Vec<T>>())
}

/// A buffer downloaded and widened to f32.
pub fn down<T: Elem>(buf: &GpuBuf<T>) -> KResult<Vec<f32>> {
    Ok(buf.to_vec()?.into_iter().map(T::to_f32).collect())
}

/// `max|got − want| / max|want|` (or `max|got − want|` when `want` is all zeros).
pub fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let diff = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
        .fold(0.0, f64::max);
    let scale = want.iter().map(|b| f64::from(b.abs())).fold(0.0, f64::max);
    if scale > 0.0 { diff / scale } else { diff }
}

/// Tracks the worst error of a check over its cases.
#[derive(Default)]
pub struct Worst(f64);

impl Worst {
    /// Compares one output tensor; fails naming the case if the error exceeds `tol` or a
    /// NaN appears on one side only.
    pub fn close(&mut self, what: &str, got: &[f32], want: &[f32], tol: f64) -> Res<()> {
        if got.len() != want.len() {
            return Err(format!("{what}: {} elements, expected {}", got.len(), want.len()).into());
        }
        if let Some(i) = (0..got.len()).find(|&i| got[i].is_nan() != want[i].is_nan()) {
            let msg = format!(
                "{what}: element {i} is {} on the GPU, {} on the CPU",
                got[i], want[i]
            );
            return Err(msg.into());
        }
        let e = rel_err(got, want);
        if e > tol {
            return Err(format!("{what}: max|gpu-cpu|/max|cpu| = {e:.3e} > {tol:.1e}").into());
        }
        self.0 = self.0.max(e);
        Ok(())
    }

    /// Compares with `T`'s tolerance for an f32 tolerance of `f32_tol`.
    pub fn close_as<T: Elem>(
        &mut self,
        what: &str,
        got: &[f32],
        want: &[f32],
        f32_tol: f64,
    ) -> Res<()> {
        self.close(&format!("{} {what}", T::NAME), got, want, T::tol(f32_tol))
    }

    /// Records an error measured elsewhere.
    pub fn record(&mut self, e: f64) {
        self.0 = self.0.max(e);
    }

    pub fn get(&self) -> f64 {
        self.0
    }
}

/// Requires bit-identical values.
pub fn exact(what: &str, got: &[f32], want: &[f32]) -> Res<()> {
    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    if got.len() != want.len() || bits(got) != bits(want) {
        let i = (0..got.len().min(want.len())).find(|&i| got[i].to_bits() != want[i].to_bits());
        return Err(format!("{what}: not bit-identical (first difference at {i:?})").into());
    }
    Ok(())
}

/// Runs `f` twice and requires bit-identical outputs (no run-to-run nondeterminism).
pub fn deterministic(what: &str, f: impl Fn() -> Res<Vec<f32>>) -> Res<()> {
    exact(&format!("{what}: run 1 vs run 2"), &f()?, &f()?)
}

/// The text of a caught panic.
pub fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".into())
}
