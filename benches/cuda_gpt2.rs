//! GPT-2 124M on the GPU (random weights made here): generation (`model::cuda`) —
//! prefill of 512 tokens, and decoding at batch 1 and 16 (32 tokens after a 64-token
//! prompt, each sampled on the device with the generate CLI's defaults — temperature 1,
//! top-k 50 — and fed back; tok/s counts every sequence's tokens; batch 1 also replayed
//! from a CUDA graph, as `generate --cuda-graph`), f32 and bf16 — and
//! mixed-precision training (`Trainer::to_device`) at B = 16,
//! T = 1024: tokens/s and MFU; with the device memory the allocator holds after each.
//!
//! Lines in the format of `scripts/bench_torch_gpu.py` (which times transformers'
//! GPT-2 on the same cases when it is installed): `<impl> <case> <µs> us <rate> tok/s`,
//! µs per token. `cargo bench --features cuda --bench cuda_gpt2`; a SKIP line without
//! a GPU.
//!
//! MFU counts `6·N + 6·L·C·T` FLOPs per token (N parameters; the causal attention's
//! share, as llm.c and nanoGPT's `estimate_mfu` with T halved for causality) against
//! 989 TFLOP/s, the dense bf16 peak of an H100 SXM / H200.

use std::time::Instant;

use gpt2::gpt2_core::generate::Decoder;
use gpt2::gpt2_core::model::cuda::{CudaDecoder, CudaGpt2, CudaKvCache};
use gpt2::gpt2_core::model::{Config, Gpt2, ParamArena};
use gpt2::gpt2_core::sample::{Sampler, SamplingParams};
use gpt2::gpt2_core::train::data::Order;
use gpt2::gpt2_core::train::optim::AdamWConfig;
use gpt2::gpt2_core::train::schedule::{Schedule, ScheduleKind};
use gpt2::gpt2_core::train::{GpuOptions, TrainSettings, Trainer};
use gpt2::gpt2_core::{Device, Element, Error, Result};
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
    let cfg_vocab = host.config().vocab_size;
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
    // Decoding at batch 1 and 16: the sequences advance together, one row each per step,
    // each sampling its next token on the device from its own seeded stream.
    let params = SamplingParams {
        top_k: 50,
        ..SamplingParams::default()
    };
    for batch in [1, 16] {
        let mut caches = (0..batch)
            .map(|_| model.new_cache())
            .collect::<Result<Vec<_>>>()?;
        let step = |caches: &mut [CudaKvCache<T>], toks: &[Vec<u32>], samplers: &mut [Sampler]| {
            let mut seqs: Vec<_> = caches
                .iter_mut()
                .zip(toks)
                .map(|(c, t)| (c, &t[..]))
                .collect();
            let logits = model.forward_logits(&mut seqs)?;
            // The repetition penalty is off: the histories are not read.
            let histories = vec![&[][..]; toks.len()];
            model.sample(&logits, samplers, &histories, cfg_vocab)
        };
        let secs = median(|| {
            caches.iter_mut().for_each(CudaKvCache::clear);
            let mut samplers = (0..batch)
                .map(|s| Sampler::new(params.clone(), s as u64))
                .collect::<Result<Vec<_>>>()?;
            let prompt = vec![tokens[..PROMPT].to_vec(); batch];
            let mut ids = step(&mut caches, &prompt, &mut samplers)?;
            let start = Instant::now();
            for _ in 0..DECODE {
                let next: Vec<Vec<u32>> = ids.iter().map(|&id| vec![id]).collect();
                ids = step(&mut caches, &next, &mut samplers)?;
            }
            Ok(start.elapsed().as_secs_f64())
        })?;
        report(
            &format!("generate 124M {name} decode B={batch}"),
            secs / (batch * DECODE) as f64,
        );
    }
    // Batch 1 replaying each step from a CUDA graph (generate --cuda-graph); the first two
    // steps (the first includes the capture) are not timed.
    let secs = median(|| {
        let mut d = CudaDecoder::with_graph(&model)?;
        let mut sampler = Sampler::new(params.clone(), 0)?;
        let mut history = tokens[..PROMPT].to_vec();
        d.append(&history)?;
        let mut start = Instant::now();
        for i in 0..DECODE + 2 {
            if i == 2 {
                start = Instant::now();
            }
            let id = d.sample(&mut sampler, &history, cfg_vocab)?;
            history.push(id);
            d.append(&[id])?;
        }
        Ok(start.elapsed().as_secs_f64())
    })?;
    report(
        &format!("generate 124M {name} decode B=1 graph"),
        secs / DECODE as f64,
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
        Ok(gpu) => println!("cuda_gpt2 bench on {}", gpu.name()),
        Err(CudaError::Unavailable(why)) if std::env::var_os("GPT2_REQUIRE_GPU").is_none() => {
            eprintln!("SKIP cuda_gpt2 bench: no CUDA device ({why})");
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
    drop(host);
    train(&cfg, false)?;
    train(&cfg, true)
}

/// Training steps of 124M at B = 16, T = 1024 (dropout 0, AdamW, clipping): the median
/// of 5 steps after 2 warm-up steps; with GELU kept or recomputed in the backward.
fn train(cfg: &Config, recompute_gelu: bool) -> Result<()> {
    const B: usize = 16;
    const T: usize = 1024;
    let mut cfg = cfg.clone();
    (cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop) = (0.0, 0.0, 0.0);
    let params = ParamArena::gpt2_init(&cfg, 1)?;
    let mut rng = gpt2::gpt2_kernels::rng::Rng::new(3);
    let tokens: Vec<u32> = (0..8 * B * T + 1)
        .map(|_| (rng.next_u64() % cfg.vocab_size as u64) as u32)
        .collect();
    let settings = TrainSettings {
        batch: B,
        seq: T,
        grad_accum: 1,
        schedule: Schedule {
            kind: ScheduleKind::Constant,
            lr: 6e-4,
            warmup: 0,
            total: u64::MAX,
            min_lr_frac: 0.1,
        },
        adamw: AdamWConfig::default(),
        grad_clip: 1.0,
        seed: 0,
        order: Order::Sequential,
    };
    let mut trainer = Trainer::new(params, tokens, settings)?;
    trainer.to_device_with(Device::Cuda(0), GpuOptions { recompute_gelu })?;
    for _ in 0..2 {
        trainer.step()?;
    }
    let mut times = (0..5)
        .map(|_| {
            let start = Instant::now();
            // The step returns the loss and the norm: it is complete when it returns.
            trainer.step()?;
            Ok(start.elapsed().as_secs_f64())
        })
        .collect::<Result<Vec<_>>>()?;
    times.sort_by(f64::total_cmp);
    let per_token = times[2] / (B * T) as f64;
    let case = format!(
        "train 124M B={B} T={T}{}",
        if recompute_gelu { " recompute" } else { "" }
    );
    report(&case, per_token);
    let flops_per_token =
        6.0 * cfg.num_params() as f64 + 6.0 * (cfg.n_layer * cfg.n_embd * T) as f64;
    println!(
        "{case}: {:.1}% MFU of 989 TFLOP/s",
        100.0 * flops_per_token / per_token / 989e12
    );
    let gpu = Gpu::get(0).map_err(|e| Error::Kernel(e.into()))?;
    let m = gpu.memory_stats();
    println!(
        "{case}: {} MiB in use, {} MiB cached by the allocator",
        m.in_use >> 20,
        m.cached >> 20
    );
    drop(trainer);
    gpu.release_cached();
    Ok(())
}
