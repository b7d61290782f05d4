//! GPT-2 124M generation on the GPU (`model::cuda`, random weights made here): prefill of
//! 512 tokens and batch-1 decoding (32 tokens after a 64-token prompt; the LM head over
//! all 50257 rows and the copy of the logits to the host included, sampling not), f32
//! and bf16, and the device memory the allocator holds afterwards.
//!
//! Lines in the format of `scripts/bench_torch_gpu.py` (which times transformers'
//! GPT-2 on the same cases when it is installed): `<impl> <case> <µs> us <rate> tok/s`,
//! µs per token. `cargo bench --features cuda --bench cuda_generate`; a SKIP line
//! without a GPU.

use std::time::Instant;

use gpt2::gpt2_core::model::cuda::CudaGpt2;
use gpt2::gpt2_core::model::{Config, Gpt2};
use gpt2::gpt2_core::{Element, Error, Result};
use gpt2::gpt2_kernels::cuda::{CudaError, Gpu, GpuFloat};
use half::bf16;

const PREFILL: usize = 512;
const PROMPT: usize = 64;
const DECODE: usize = 32;

fn report(case: &str, secs_per_token: f64) {
    println!(
        "{:<8} {case:<40} {:>10.1} us {:>8.1} tok/s",
        "ours",
        secs_per_token * 1e6,
        1.0 / secs_per_token
    );
}

/// Median of 5 runs of `f`, which returns its own timed seconds.
fn median(mut f: impl FnMut() -> Result<f64>) -> Result<f64> {
    f()?; // warm-up: module loads, allocator
    let mut t = (0..5).map(|_| f()).collect::<Result<Vec<_>>>()?;
    t.sort_by(f64::total_cmp);
    Ok(t[2])
}

fn bench<T: GpuFloat + Element>(host: &Gpt2, name: &str, tokens: &[u32]) -> Result<()> {
    let model = CudaGpt2::<T>::upload(host, 0)?;
    let gpu = model.gpu().clone();
    let mut cache = model.new_cache()?;
    let prefill = median(|| {
        cache.clear();
        gpu.synchronize()?;
        let start = Instant::now();
        // Returns the logits on the host: the step is complete when it returns.
        model.forward_cached(&mut cache, &tokens[..PREFILL])?;
        Ok(start.elapsed().as_secs_f64())
    })?;
    report(
        &format!("generate 124M {name} prefill {PREFILL}"),
        prefill / PREFILL as f64,
    );
    let decode = median(|| {
        cache.clear();
        model.forward_cached(&mut cache, &tokens[..PROMPT])?;
        let start = Instant::now();
        for t in PROMPT..PROMPT + DECODE {
            model.forward_cached(&mut cache, &tokens[t..t + 1])?;
        }
        Ok(start.elapsed().as_secs_f64())
    })?;
    report(
        &format!("generate 124M {name} decode B=1"),
        decode / DECODE as f64,
    );
    let m = model.memory_stats();
    println!(
        "generate 124M {name}: {} MiB in use, {} MiB cached by the allocator",
        m.in_use >> 20,
        m.cached >> 20
    );
    Ok(())
}

fn main() -> Result<()> {
    match Gpu::get(0) {
        Ok(gpu) => println!("cuda_generate bench on {}", gpu.name()),
        Err(CudaError::Unavailable(why)) if std::env::var_os("GPT2_REQUIRE_GPU").is_none() => {
            eprintln!("SKIP cuda_generate bench: no CUDA device ({why})");
            return Ok(());
        }
        Err(e) => return Err(Error::Kernel(e.into())),
    }
    let cfg = Config::default();
    let host = Gpt2::random(cfg.clone(), 1)?;
    let mut rng = gpt2::gpt2_kernels::rng::Rng::new(7);
    let tokens: Vec<u32> = (0..PREFILL)
        .map(|_| (rng.next_u64() % cfg.vocab_size as u64) as u32)
        .collect();
    bench::<f32>(&host, "f32", &tokens)?;
    bench::<bf16>(&host, "bf16", &tokens)?;
    Ok(())
}
