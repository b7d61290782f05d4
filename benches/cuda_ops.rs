//! Throughput of our CUDA kernels at GPT-2 124M training shapes (B·T = 8192 rows,
//! C = 768, 4C = 3072, V = 50257 padded to 50304; AdamW over 124M parameters), in f32 and
//! bf16: time per call (wall clock over 20 calls after 3 warm-ups, with a device sync on
//! each side) and effective bandwidth, from the bytes each kernel must move at least
//! (each input read once, each output written once; re-reads that hit the caches are
//! not counted), against the H200's 4.8 TB/s HBM3e peak.
//!
//! `cargo bench --features cuda --bench cuda_ops`; prints a SKIP line without a GPU.

use std::time::Instant;

use gpt2_kernels::Result;
use gpt2_kernels::cpu::adamw::AdamWParams;
use gpt2_kernels::cuda::{self, CudaError, Gpu, GpuBuf, GpuFloat};
use half::bf16;

const N: usize = 8 * 1024;
const C: usize = 768;
const V: usize = 50257;
const VP: usize = 50304;
const PARAMS: usize = 124_475_904;
const PEAK_BYTES_PER_S: f64 = 4.8e12;
const WARMUP: usize = 3;
const ITERS: usize = 20;

/// Times `f`; prints its time per call and bandwidth for `bytes` moved per call.
fn time(gpu: &Gpu, name: &str, bytes: usize, mut f: impl FnMut() -> Result<()>) -> Result<()> {
    for _ in 0..WARMUP {
        f()?;
    }
    gpu.synchronize()?;
    let start = Instant::now();
    for _ in 0..ITERS {
        f()?;
    }
    gpu.synchronize()?;
    let secs = start.elapsed().as_secs_f64() / ITERS as f64;
    let bw = bytes as f64 / secs;
    println!(
        "{name:<40} {:>9.1} us  {:>7.1} GB/s  {:>5.1}% of peak",
        secs * 1e6,
        bw / 1e9,
        100.0 * bw / PEAK_BYTES_PER_S
    );
    Ok(())
}

/// Deterministic pseudo-random fill in [-1, 1), as `T`.
fn buf<T: GpuFloat>(gpu: &Gpu, n: usize, seed: u64, from: fn(f32) -> T) -> Result<GpuBuf<T>> {
    let mut rng = gpt2_kernels::rng::Rng::new(seed);
    gpu.upload(
        &(0..n)
            .map(|_| from(2.0 * rng.next_f32() - 1.0))
            .collect::<Vec<T>>(),
    )
}

fn bench<T: GpuFloat>(g: &Gpu, dtype: &str, from: fn(f32) -> T) -> Result<()> {
    let e = size_of::<T>();
    let name = |op: &str| format!("{op} {dtype}");
    let mut rng = gpt2_kernels::rng::Rng::new(1);
    let tokens: Vec<u32> = (0..N).map(|_| (rng.next_u64() % V as u64) as u32).collect();
    let positions: Vec<u32> = (0..N).map(|i| (i % 1024) as u32).collect();

    let (wte, wpe) = (buf(g, V * C, 2, from)?, buf(g, 1024 * C, 3, from)?);
    let (x, dy, mut y) = (
        buf(g, N * C, 4, from)?,
        buf(g, N * C, 5, from)?,
        g.alloc::<T>(N * C)?,
    );
    let mut dx = buf(g, N * C, 6, from)?;
    let (mut dwte, mut dwpe) = (g.zeros::<T>(V * C)?, g.zeros::<T>(1024 * C)?);
    let n = N * C;
    time(g, &name("embedding::forward"), 3 * n * e, || {
        cuda::embedding::forward(g, &mut y, &tokens, &positions, &wte, &wpe, C)
    })?;
    time(g, &name("embedding::backward"), 3 * n * e, || {
        cuda::embedding::backward(g, &mut dwte, &mut dwpe, &dy, &tokens, &positions, C)
    })?;

    let (w, b) = (buf(g, C, 7, from)?, buf(g, C, 8, from)?);
    let (mut dw, mut db) = (g.zeros::<T>(C)?, g.zeros::<T>(C)?);
    let (mut mean, mut rstd) = (g.alloc::<f32>(N)?, g.alloc::<f32>(N)?);
    time(g, &name("layernorm::forward"), 2 * n * e, || {
        cuda::layernorm::forward(g, &mut y, &mut mean, &mut rstd, &x, &w, &b)
    })?;
    time(g, &name("layernorm::backward"), 4 * n * e, || {
        cuda::layernorm::backward(g, &mut dx, &mut dw, &mut db, &dy, &x, &w, &mean, &rstd)
    })?;

    time(g, &name("residual::forward"), 3 * n * e, || {
        cuda::residual::forward(g, &mut y, &x, &dy)
    })?;
    let mut dx2 = buf(g, N * C, 9, from)?;
    time(g, &name("residual::backward"), 5 * n * e, || {
        cuda::residual::backward(g, &mut dx, &mut dx2, &dy)
    })?;
    time(g, &name("dropout::forward p=0.1"), 2 * n * e, || {
        cuda::dropout::forward(g, &mut y, &x, 0.1, 7, 0)
    })?;
    time(g, &name("dropout::backward p=0.1"), 3 * n * e, || {
        cuda::dropout::backward(g, &mut dx, &dy, 0.1, 7, 0)
    })?;
    drop((x, dy, y, dx, dx2, dwte, dwpe));

    let n4 = N * 4 * C;
    let (h, dh, mut gh, mut dgh) = (
        buf(g, n4, 10, from)?,
        buf(g, n4, 11, from)?,
        g.alloc::<T>(n4)?,
        buf(g, n4, 12, from)?,
    );
    time(g, &name("gelu::forward (N, 4C)"), 2 * n4 * e, || {
        cuda::gelu::forward(g, &mut gh, &h)
    })?;
    time(g, &name("gelu::backward (N, 4C)"), 4 * n4 * e, || {
        cuda::gelu::backward(g, &mut dgh, &h, &dh)
    })?;
    drop((h, dh, gh, dgh));

    let logits = buf(g, N * VP, 13, from)?;
    let mut work = logits.try_clone()?;
    let mut losses = g.alloc::<f32>(N)?;
    let nv = N * VP;
    time(g, &name("softmax::forward (N, Vp)"), 2 * nv * e, || {
        cuda::softmax::forward(g, &mut work, &logits, VP)
    })?;
    let targets: Vec<u32> = tokens.clone();
    time(g, &name("crossentropy::forward"), nv * e, || {
        cuda::crossentropy::forward(g, &mut losses, &logits, &targets, V)
    })?;
    time(
        g,
        &name("crossentropy::forward_backward"),
        2 * nv * e,
        || {
            cuda::crossentropy::forward_backward(
                g,
                &mut losses,
                &mut work,
                &targets,
                V,
                1.0 / N as f32,
            )
        },
    )?;
    drop((logits, work));

    let grads = buf(g, PARAMS, 14, from)?;
    let mut params = buf(g, PARAMS, 15, |x| x)?;
    let (mut m, mut v) = (g.zeros::<f32>(PARAMS)?, g.zeros::<f32>(PARAMS)?);
    let hp = AdamWParams::default();
    let mut t = 0;
    time(g, &name("adamw::step (grads)"), PARAMS * (24 + e), || {
        t += 1;
        cuda::adamw::step(g, &mut params, &grads, &mut m, &mut v, &hp, t, 0.1)
    })?;
    time(g, &name("adamw::sum_of_squares"), PARAMS * e, || {
        cuda::adamw::sum_of_squares(g, &grads).map(|_| ())
    })?;
    Ok(())
}

fn main() -> Result<()> {
    let gpu = match Gpu::get(0) {
        Ok(gpu) => gpu,
        Err(CudaError::Unavailable(why)) if std::env::var_os("GPT2_REQUIRE_GPU").is_none() => {
            eprintln!("SKIP cuda_ops bench: no CUDA device ({why})");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "cuda_ops bench on {} (sm_{}{})",
        gpu.name(),
        gpu.compute_capability().0,
        gpu.compute_capability().1
    );
    bench::<f32>(&gpu, "f32", |x| x)?;
    bench::<bf16>(&gpu, "bf16", bf16::from_f32)?;
    let (x, mut y) = (buf(&gpu, PARAMS, 16, |x| x)?, gpu.alloc::<bf16>(PARAMS)?);
    time(&gpu, "cast::f32_to_bf16", PARAMS * 6, || {
        cuda::cast::f32_to_bf16(&gpu, &mut y, &x)
    })?;
    Ok(())
}
