//! TFLOP/s of every matmul version (`cuda::matmul`) at GPT-2 124M's shapes — M = B·T
//! ∈ {4096, 16384} rows times (K, N) of its four linear layers and the LM head (vocabulary
//! padded to 50304) — and at 4096³: the forward for every version (v1, v2 in f32, as
//! their yardstick is an f32 product; v3, v4 in bf16), dX and dW for the tensor-core
//! versions at M = 16384.
//!
//! Each line: `<impl> <case> <µs per call> us <TFLOP/s> TFLOP/s`, the format of
//! `scripts/bench_torch_gpu.py`, which times `torch.matmul` (cuBLAS) on the same cases
//! so that `scripts/gpu-check.sh` can print each version's % of the yardstick. Times are
//! wall clock around many calls between two device synchronisations, after a warm-up
//! (module load, v4's self-test). Inputs are random (never zeros), outputs overwritten.
//!
//! `cargo bench --features cuda --bench cuda_matmul [filter]`; prints a SKIP line
//! without a GPU. `GPT2_BENCH_QUICK=1`: M = 4096 only.

use std::time::Instant;

use gpt2_kernels::Result;
use gpt2_kernels::cuda::matmul::{self, Pass, Version, Weight, WeightLayout};
use gpt2_kernels::cuda::{CudaError, Gpu, GpuBuf, GpuFloat};
use half::bf16;

/// GPT-2 124M's (K, N): attention qkv, attention projection, MLP up, MLP down.
const LAYERS: [(usize, usize); 4] = [(768, 2304), (768, 768), (768, 3072), (3072, 768)];
/// The LM head: (C, padded vocabulary), weights (V, C) (the token embedding).
const HEAD: (usize, usize) = (768, 50304);

/// Times `f` (after one warm-up call): enough calls for about 0.2 s, at least 3.
fn time(gpu: &Gpu, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    gpu.synchronize()?;
    let start = Instant::now();
    f()?;
    gpu.synchronize()?;
    let once = start.elapsed().as_secs_f64();
    let iters = (0.2 / once).clamp(3.0, 1000.0) as usize;
    let start = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    gpu.synchronize()?;
    Ok(start.elapsed().as_secs_f64() / iters as f64)
}

/// One result line: `impl`, `case`, time per call and TFLOP/s for `flops` per call.
fn report(imp: &str, case: &str, secs: f64, flops: f64) {
    println!(
        "{imp:<8} {case:<40} {:>10.1} us {:>8.1} TFLOP/s",
        secs * 1e6,
        flops / secs / 1e12
    );
}

/// `n` random values in [-1, 1) as `T`: a block of up to 2^20 made on the host, repeated
/// (the largest operands have 8·10⁸ elements).
fn random<T: GpuFloat>(gpu: &Gpu, n: usize, seed: u64, from: fn(f32) -> T) -> Result<GpuBuf<T>> {
    let mut rng = gpt2_kernels::rng::Rng::new(seed);
    let block: Vec<T> = (0..n.min(1 << 20))
        .map(|_| from(2.0 * rng.next_f32() - 1.0))
        .collect();
    gpu.upload(&block.iter().copied().cycle().take(n).collect::<Vec<T>>())
}

/// The forward of `(m, k, n)` with `layout` weights on every version for `T`, and for
/// the tensor-core versions dX and dW (when `backward`).
#[allow(clippy::too_many_arguments)]
fn bench<T: GpuFloat>(
    gpu: &Gpu,
    versions: &[Version],
    (m, k, n): (usize, usize, usize),
    layout: WeightLayout,
    backward: bool,
    from: fn(f32) -> T,
    filter: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let layout_name = match layout {
        WeightLayout::InOut => "InOut",
        WeightLayout::OutIn => "OutIn",
    };
    let flops = 2.0 * (m * k * n) as f64;
    let (x, w) = (random(gpu, m * k, 1, from)?, random(gpu, k * n, 2, from)?);
    // dY only for the backward (m·n elements: 1.6 GB for the LM head at M = 16384).
    let dy = random(gpu, if backward { m * n } else { 1 }, 3, from)?;
    let bias = random(gpu, n, 4, from)?;
    let (mut y, mut dx, mut dw) = (
        gpu.alloc::<T>(m * n)?,
        gpu.zeros::<T>(m * k)?,
        gpu.zeros::<T>(k * n)?,
    );
    let weight = Weight::new(&w, layout);
    let dtype = if T::IS_BF16 { "bf16" } else { "f32" };
    for &v in versions {
        let case = |pass: &str| format!("{pass} {layout_name} {dtype} M={m} K={k} N={n}");
        if filter(&case("fwd")) && v.resolve::<T>(gpu, Pass::Forward, layout, k, n).is_ok() {
            let s = time(gpu, || {
                matmul::forward(gpu, v, &mut y, &x, weight, Some(&bias), k, n)
            })?;
            report(v.name(), &case("fwd"), s, flops);
        }
        if !backward {
            continue;
        }
        if filter(&case("dX")) && v.resolve::<T>(gpu, Pass::Dinp, layout, k, n).is_ok() {
            let s = time(gpu, || {
                matmul::backward(gpu, v, Some(&mut dx), None, None, &dy, &x, weight, k, n)
            })?;
            report(v.name(), &case("dX"), s, flops);
        }
        if filter(&case("dW")) && v.resolve::<T>(gpu, Pass::Dweight, layout, k, n).is_ok() {
            let s = time(gpu, || {
                matmul::backward(gpu, v, None, Some(&mut dw), None, &dy, &x, weight, k, n)
            })?;
            report(v.name(), &case("dW"), s, flops);
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let gpu = match Gpu::get(0) {
        Ok(gpu) => gpu,
        Err(CudaError::Unavailable(why)) if std::env::var_os("GPT2_REQUIRE_GPU").is_none() => {
            eprintln!("SKIP cuda_matmul bench: no CUDA device ({why})");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let (major, minor) = gpu.compute_capability();
    println!("cuda_matmul bench on {} (sm_{major}{minor})", gpu.name());
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let filter =
        |case: &str| filters.is_empty() || filters.iter().any(|f| case.contains(f.as_str()));
    let quick = std::env::var_os("GPT2_BENCH_QUICK").is_some();
    let cuda_cores = [Version::Tiled, Version::RegBlock];
    let tensor_cores = [Version::Mma, Version::Wgmma];
    let rows: &[usize] = if quick { &[4096] } else { &[4096, 16384] };
    let mut cases: Vec<((usize, usize, usize), WeightLayout)> = Vec::new();
    for &m in rows {
        for &(k, n) in &LAYERS {
            cases.push(((m, k, n), WeightLayout::InOut));
        }
        cases.push(((m, HEAD.0, HEAD.1), WeightLayout::OutIn));
    }
    cases.push(((4096, 4096, 4096), WeightLayout::InOut));
    for &(dims, layout) in &cases {
        bench::<f32>(&gpu, &cuda_cores, dims, layout, false, |x| x, &filter)?;
        let backward = dims.0 == 16384 || quick;
        bench::<bf16>(
            &gpu,
            &tensor_cores,
            dims,
            layout,
            backward,
            bf16::from_f32,
            &filter,
        )?;
        gpu.release_cached();
    }
    Ok(())
}
