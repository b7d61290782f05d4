//! Attention forward and backward TFLOP/s (`cuda::attention`) at B = 16, T ∈ {256, 1024,
//! 4096}, 12 heads of 64, causal, bf16: flash (and the row kernels up to T = 1024, for
//! the ladder's sake). FLOPs as FlashAttention counts them: the forward's two products
//! are 4·B·NH·T²·HS, halved for causality; the backward is 2.5 times the forward (five
//! products; ours computes two of them twice, which is not counted). Also the decode
//! kernel (`forward_cached`, one new token of 12 heads against a cache of `kv_len`
//! positions): time per call and the bandwidth of reading the cache once.
//!
//! Lines in the format of `scripts/bench_torch_gpu.py` (`scaled_dot_product_attention`
//! on the same cases): `<impl> <case> <µs> us <TFLOP/s> TFLOP/s`; decode lines end in
//! GB/s. `cargo bench --features cuda --bench cuda_attention [filter]`; SKIP line without
//! a GPU.

use std::time::Instant;

use gpt2_kernels::Result;
use gpt2_kernels::cuda::attention::{self, Version};
use gpt2_kernels::cuda::{CudaError, Gpu, GpuBuf};
use half::bf16;

const B: usize = 16;
const NH: usize = 12;
const HS: usize = 64;

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

fn report(imp: &str, case: &str, secs: f64, flops: f64) {
    println!(
        "{imp:<8} {case:<40} {:>10.1} us {:>8.1} TFLOP/s",
        secs * 1e6,
        flops / secs / 1e12
    );
}

fn random(gpu: &Gpu, n: usize, seed: u64) -> Result<GpuBuf<bf16>> {
    let mut rng = gpt2_kernels::rng::Rng::new(seed);
    gpu.upload(
        &(0..n)
            .map(|_| bf16::from_f32(2.0 * rng.next_f32() - 1.0))
            .collect::<Vec<_>>(),
    )
}

fn main() -> Result<()> {
    let gpu = match Gpu::get(0) {
        Ok(gpu) => gpu,
        Err(CudaError::Unavailable(why)) if std::env::var_os("GPT2_REQUIRE_GPU").is_none() => {
            eprintln!("SKIP cuda_attention bench: no CUDA device ({why})");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let g = &*gpu;
    println!(
        "cuda_attention bench on {} (sm_{}{})",
        g.name(),
        g.compute_capability().0,
        g.compute_capability().1
    );
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |case: &str| filters.is_empty() || filters.iter().any(|f| case.contains(f.as_str()));
    let c = NH * HS;
    for t in [256, 1024, 4096] {
        let fwd_flops = 4.0 * (B * NH * t * t * HS) as f64 / 2.0;
        let qkv = random(g, B * t * 3 * c, 1)?;
        let dout = random(g, B * t * c, 2)?;
        let mut out = g.alloc::<bf16>(B * t * c)?;
        let mut lse = g.alloc::<f32>(B * NH * t)?;
        let mut dqkv = g.zeros::<bf16>(B * t * 3 * c)?;
        for (name, v) in [("flash", Version::Flash), ("rows", Version::Rows)] {
            if v == Version::Rows && t > 1024 {
                continue; // minutes, and nothing new to learn
            }
            let case = |pass: &str| format!("attn {pass} B={B} T={t} NH={NH} HS={HS}");
            if wanted(&case("fwd")) {
                let s = time(g, || {
                    attention::forward(g, v, &mut out, &mut lse, &qkv, B, t, NH)
                })?;
                report(name, &case("fwd"), s, fwd_flops);
            }
            if wanted(&case("bwd")) {
                attention::forward(g, v, &mut out, &mut lse, &qkv, B, t, NH)?;
                let s = time(g, || {
                    attention::backward(g, v, &mut dqkv, &dout, &qkv, &out, &lse, B, t, NH)
                })?;
                report(name, &case("bwd"), s, 2.5 * fwd_flops);
            }
        }
        g.release_cached();
    }
    // Decoding: one new token against kv_len cached positions.
    for kv_len in [128, 1024] {
        let case = format!("decode B=1 kv_len={kv_len} NH={NH} HS={HS}");
        if !wanted(&case) {
            continue;
        }
        let q = random(g, 3 * c, 3)?;
        let (k, v) = (random(g, kv_len * c, 4)?, random(g, kv_len * c, 5)?);
        let mut out = g.alloc::<bf16>(c)?;
        let s = time(g, || {
            attention::forward_cached(g, &mut out, &q, 3 * c, &k, &v, kv_len, c, NH)
        })?;
        let bytes = (2 * kv_len * c * 2) as f64;
        println!(
            "{:<8} {case:<40} {:>10.1} us {:>8.1} GB/s",
            "rows",
            s * 1e6,
            bytes / s / 1e9
        );
    }
    Ok(())
}
