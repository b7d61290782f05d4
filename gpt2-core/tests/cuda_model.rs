//! GPU tests of GPT-2 inference on the device (`model::cuda`): the GPU forward with its
//! KV cache against the CPU one, prefill and decoding, f32 and bf16, on a small random
//! model (no files), plus its input errors and greedy generation through
//! `generate_with`. A plain program (`harness = false`) like `cuda_tensor`: one line per
//! check, or `SKIP` lines without a GPU.
//!
//! Tolerances, per logits vector, as `max|gpu − cpu| / max|cpu|`: 1e-4 for f32 (only the
//! summation order differs), 5e-2 for bf16 (activations and weights are rounded to 8
//! significant bits at every op, over 2 layers).

use std::process::ExitCode;

use gpt2_core::generate::{CpuDecoder, GenerateOptions, generate_with};
use gpt2_core::model::cuda::{CudaDecoder, CudaGpt2};
use gpt2_core::model::{Config, Gpt2, KvCache, Segment};
use gpt2_core::sample::SamplingParams;
use gpt2_core::{Element, Error, Result};
use gpt2_kernels::cuda::{CudaError, Gpu, GpuFloat};
use half::bf16;

type Check = (&'static str, fn() -> Result<()>);

/// 2 layers, 2 heads of 64, a 500-token vocabulary, 64 positions.
fn model() -> Result<Gpt2> {
    let mut cfg = Config::gpt2_sized(2, 2, 128);
    (cfg.vocab_size, cfg.n_ctx) = (500, 64);
    Gpt2::random(cfg, 7)
}

/// A prompt of 13 tokens, then 4 tokens decoded one at a time.
fn steps() -> Vec<Vec<u32>> {
    let prompt: Vec<u32> = (0..13).map(|i| (i * 37 + 5) % 500).collect();
    let mut steps = vec![prompt];
    steps.extend([[11], [499], [0], [250]].map(|t| t.to_vec()));
    steps
}

fn fail(msg: String) -> Result<()> {
    Err(Error::Input(msg))
}

/// GPU logits equal the CPU's to `tol` relative to their largest magnitude, step by step.
fn matches_cpu<T: GpuFloat + Element>(tol: f32) -> Result<()> {
    let host = model()?;
    let view = host.view()?;
    let gpu = CudaGpt2::<T>::upload(&host, 0)?;
    let mut cache = KvCache::new(host.config(), 1);
    let mut dcache = gpu.new_cache()?;
    for (i, tokens) in steps().iter().enumerate() {
        let want = view.forward_cached(&mut cache, &[Segment { seq: 0, tokens }])?;
        let got = gpu.forward_cached(&mut dcache, tokens)?;
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        // `max` skips NaN, so non-finite logits are checked on their own.
        let finite = got.iter().all(|x| x.is_finite());
        if got.len() != want.len() || !finite || err > tol * scale {
            return fail(format!(
                "step {i}: {} logits, max |gpu - cpu| = {err:e} > {tol} x {scale}",
                got.len()
            ));
        }
    }
    if dcache.len() != 17 {
        return fail(format!(
            "the cache holds {} positions, not 17",
            dcache.len()
        ));
    }
    Ok(())
}

fn f32_matches_cpu() -> Result<()> {
    matches_cpu::<f32>(1e-4)
}

fn bf16_matches_cpu() -> Result<()> {
    matches_cpu::<bf16>(5e-2)
}

/// Unknown ids, an over-long sequence and an empty step are errors, and leave the cache
/// as it was.
fn input_errors() -> Result<()> {
    let host = model()?;
    let gpu = CudaGpt2::<f32>::upload(&host, 0)?;
    let mut cache = gpu.new_cache()?;
    gpu.forward_cached(&mut cache, &[1, 2, 3])?;
    let too_long = vec![1u32; 62];
    for (what, tokens) in [
        ("unknown id", &[500u32][..]),
        ("past n_ctx", &too_long[..]),
        ("no tokens", &[][..]),
    ] {
        match gpu.forward_cached(&mut cache, tokens) {
            Err(Error::Input(_)) => {}
            other => return fail(format!("{what}: expected an input error, got {other:?}")),
        }
    }
    if cache.len() != 3 {
        return fail(format!("the cache moved to {} positions", cache.len()));
    }
    Ok(())
}

/// Greedy generation through `generate_with` gives the CPU's ids.
fn greedy_generation_matches_cpu() -> Result<()> {
    let host = model()?;
    let gpu = CudaGpt2::<f32>::upload(&host, 0)?;
    let opts = GenerateOptions {
        max_new_tokens: 20,
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        ..GenerateOptions::default()
    };
    let prompt = &steps()[0];
    let ids = |g: gpt2_core::generate::Generation<'_>| -> Result<Vec<u32>> {
        g.map(|t| t.map(|t| t.id)).collect()
    };
    let cpu = ids(generate_with(
        Box::new(CpuDecoder::new(host.view()?)),
        None,
        prompt,
        opts.clone(),
    )?)?;
    let dev = ids(generate_with(
        Box::new(CudaDecoder::new(&gpu)?),
        None,
        prompt,
        opts,
    )?)?;
    if cpu != dev {
        return fail(format!("greedy ids differ: cpu {cpu:?}, gpu {dev:?}"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let checks: [Check; 4] = [
        ("model::f32_matches_cpu", f32_matches_cpu),
        ("model::bf16_matches_cpu", bf16_matches_cpu),
        ("model::input_errors", input_errors),
        (
            "model::greedy_generation_matches_cpu",
            greedy_generation_matches_cpu,
        ),
    ];
    if let Err(e) = Gpu::get(0) {
        let reason = match e {
            CudaError::Unavailable(why) => why,
            other => other.to_string(),
        };
        for (name, _) in &checks {
            eprintln!("SKIP {name}: no CUDA device ({reason})");
        }
        println!(
            "cuda_model: 0 passed, 0 failed, {} skipped (no CUDA device)",
            checks.len()
        );
        // On the GPU machine (scripts/gpu-check.sh run), a missing device is a failure.
        return if std::env::var_os("GPT2_REQUIRE_GPU").is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let mut failed = 0;
    for (name, run) in &checks {
        match run() {
            Ok(()) => println!("PASS {name}"),
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!(
        "cuda_model: {} passed, {failed} failed, 0 skipped",
        checks.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
