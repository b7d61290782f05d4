//! GPU tests of GPT-2 on the device (`model::cuda`, `train::cuda`), against the CPU, on
//! small random models (no files): the forward with its KV cache (prefill and decoding,
//! f32 and bf16), its input errors, greedy and sampled generation through
//! `generate_with`; decoding replayed from a CUDA graph against eager decoding; sampling
//! on the device against the CPU sampler on the same logits
//! (every filter, f32 and bf16 rows of GPT-2's 50257 tokens, ties, errors); the
//! training forward + backward in f32 (every parameter gradient), and mixed-precision
//! training steps through `Trainer::to_device`. A plain program (`harness = false`) like
//! `cuda_tensor`: one line per check, or `SKIP` lines without a GPU.
//!
//! Tolerances, as `max|gpu − cpu| / max|cpu|` per tensor: 1e-4 for f32 (only the
//! summation order differs); 5e-2 for bf16 logits (activations and weights rounded to 8
//! significant bits at every op, over 2 layers); bf16 training losses within 3e-2
//! (relative) of the f32 CPU run's at every one of 200 steps, 1e-2 on average over the
//! last 50.

mod common;

use std::process::ExitCode;

use common::{Check, fail};

use gpt2_core::generate::{CpuDecoder, Decoder, GenerateOptions, generate_with};
use gpt2_core::model::cuda::{CudaActivations, CudaDecoder, CudaGpt2};
use gpt2_core::model::{Activations, Config, Dropout, Gpt2, KvCache, ParamArena, Segment};
use gpt2_core::sample::{Sampler, SamplingParams};
use gpt2_core::train::data::Order;
use gpt2_core::train::optim::AdamWConfig;
use gpt2_core::train::schedule::{Schedule, ScheduleKind};
use gpt2_core::train::{TrainSettings, Trainer};
use gpt2_core::{Device, Element, Error, Result};
use gpt2_kernels::cuda::{Gpu, GpuFloat, sample};
use gpt2_kernels::rng::Rng;
use half::bf16;

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

/// A batch of three sequences of different lengths (and different cached lengths) gives
/// each sequence's logits as running it alone, to 1e-5.
fn batch_equals_one_by_one() -> Result<()> {
    let host = model()?;
    let gpu = CudaGpt2::<f32>::upload(&host, 0)?;
    let prompts = [random_ids(7, 11), random_ids(1, 12), random_ids(20, 13)];
    let next = [random_ids(1, 14), random_ids(3, 15), random_ids(1, 16)];
    let mut alone = Vec::new();
    for (p, n) in prompts.iter().zip(&next) {
        let mut cache = gpu.new_cache()?;
        let a = gpu.forward_cached(&mut cache, p)?;
        alone.push((a, gpu.forward_cached(&mut cache, n)?));
    }
    let mut caches = [gpu.new_cache()?, gpu.new_cache()?, gpu.new_cache()?];
    for (step, inputs) in [&prompts, &next].into_iter().enumerate() {
        let mut seqs: Vec<_> = caches
            .iter_mut()
            .zip(inputs.iter())
            .map(|(c, t)| (c, t.as_slice()))
            .collect();
        let got = gpu.forward_batch(&mut seqs)?;
        for (i, g) in got.iter().enumerate() {
            let want = if step == 0 { &alone[i].0 } else { &alone[i].1 };
            close(&format!("sequence {i}, step {step}"), g, want, 1e-5)?;
        }
    }
    Ok(())
}

/// Generation through `generate_with` gives the CPU's ids with `sampling` (sampled on the
/// device from logits within 1e-5 of the CPU's: a draw could only differ if it fell that
/// close to a token's edge).
fn generation_matches_cpu(sampling: SamplingParams) -> Result<()> {
    let host = model()?;
    let gpu = CudaGpt2::<f32>::upload(&host, 0)?;
    let opts = GenerateOptions {
        max_new_tokens: 20,
        sampling,
        seed: 5,
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
        return fail(format!("ids differ: cpu {cpu:?}, gpu {dev:?}"));
    }
    Ok(())
}

fn greedy_generation_matches_cpu() -> Result<()> {
    generation_matches_cpu(SamplingParams::greedy())
}

fn sampled_generation_matches_cpu() -> Result<()> {
    generation_matches_cpu(SamplingParams {
        temperature: 0.8,
        top_k: 100,
        top_p: 0.9,
        repetition_penalty: 1.2,
    })
}

/// Decoding from a captured CUDA graph gives the eager decoder's ids (the same kernels on
/// the same inputs: any difference is a replay bug), f32 and bf16, sampling, to the end
/// of the context; one more token past it is an input error, not a replay.
fn graph_decoding_equals_eager<T: GpuFloat + Element>() -> Result<()> {
    let host = model()?;
    let gpu = CudaGpt2::<T>::upload(&host, 0)?;
    let prompt = &steps()[0];
    let opts = GenerateOptions {
        max_new_tokens: 64 - prompt.len(),
        sampling: SamplingParams {
            top_k: 50,
            ..SamplingParams::default()
        },
        seed: 9,
        ..GenerateOptions::default()
    };
    let ids = |d: CudaDecoder<'_, T>| -> Result<Vec<u32>> {
        let g = generate_with(Box::new(d), None, prompt, opts.clone())?;
        g.map(|t| t.map(|t| t.id)).collect()
    };
    let eager = ids(CudaDecoder::new(&gpu)?)?;
    let graph = ids(CudaDecoder::with_graph(&gpu)?)?;
    if eager != graph {
        return fail(format!("ids differ: eager {eager:?}, graph {graph:?}"));
    }
    let mut d = CudaDecoder::with_graph(&gpu)?;
    d.append(&[1; 63])?;
    d.append(&[2])?; // captured and replayed: the context is full

    match d.append(&[3]) {
        Err(Error::Input(_)) => Ok(()),
        other => fail(format!(
            "past n_ctx: expected an input error, got {other:?}"
        )),
    }
}

fn graph_decoding_equals_eager_f32() -> Result<()> {
    graph_decoding_equals_eager::<f32>()
}

fn graph_decoding_equals_eager_bf16() -> Result<()> {
    graph_decoding_equals_eager::<bf16>()
}

/// The device sampler picks the CPU sampler's token from the same logits, row by row,
/// with each row's uniform number taken from a `Sampler`'s stream of the same seed:
/// rows of 50257 logits (stride 50304, NaN padding that must never be read), normal with
/// σ = 3, or flat (every token tied), in f32 and in bf16 (many ties), over every filter.
fn device_sampling_matches_cpu() -> Result<()> {
    let gpu = Gpu::get(0).map_err(gpt2_kernels::KernelError::from)?;
    let (v, stride) = (50257, 50304);
    let p = |temperature, top_k, top_p, repetition_penalty| SamplingParams {
        temperature,
        top_k,
        top_p,
        repetition_penalty,
    };
    let cases = [
        p(0.0, 0, 1.0, 1.0),
        p(0.0, 0, 1.0, 1.5),
        p(1.0, 0, 1.0, 1.0),
        p(0.7, 0, 1.0, 1.0),
        p(1.0, 50, 1.0, 1.0),
        p(1.0, 0, 0.9, 1.0),
        p(1.0, 0, 0.2, 1.0),
        p(0.8, 40, 0.95, 1.3),
    ];
    let mut rng = Rng::new(3);
    for bf in [false, true] {
        for (ci, params) in cases.iter().enumerate() {
            for flat in [false, true] {
                let rows = 4;
                let mut host = vec![f32::NAN; rows * stride];
                for r in 0..rows {
                    for x in &mut host[r * stride..r * stride + v] {
                        let l = if flat {
                            0.5
                        } else {
                            3.0 * rng.next_normal() as f32
                        };
                        *x = if bf { bf16::from_f32(l).to_f32() } else { l };
                    }
                }
                let histories: Vec<Vec<u32>> = (0..rows)
                    .map(|r| {
                        (0..20 + 10 * r)
                            .map(|_| (rng.next_u64() % 50300) as u32)
                            .collect()
                    })
                    .collect();
                let hist: Vec<&[u32]> = histories.iter().map(Vec::as_slice).collect();
                let seed = |r: usize| 100 + r as u64;
                let uniforms: Vec<f64> = (0..rows)
                    .map(|r| {
                        let mut s = Rng::new(seed(r));
                        if params.temperature == 0.0 {
                            0.0
                        } else {
                            s.next_f64()
                        }
                    })
                    .collect();
                let filters = sample::Filters::from(params);
                let got = if bf {
                    let d: Vec<bf16> = host.iter().map(|&x| bf16::from_f32(x)).collect();
                    sample::sample(
                        &gpu,
                        &gpu.upload(&d)?,
                        stride,
                        v,
                        &filters,
                        &hist,
                        &uniforms,
                    )?
                } else {
                    sample::sample(
                        &gpu,
                        &gpu.upload(&host)?,
                        stride,
                        v,
                        &filters,
                        &hist,
                        &uniforms,
                    )?
                };
                for r in 0..rows {
                    let mut row = host[r * stride..r * stride + v].to_vec();
                    let want = Sampler::new(params.clone(), seed(r))?.sample(&mut row, hist[r])?;
                    if got[r] != want {
                        return fail(format!(
                            "case {ci} {params:?} (bf16 {bf}, flat {flat}) row {r}: gpu {}, cpu {want}",
                            got[r]
                        ));
                    }
                }
            }
        }
    }
    // A NaN among the candidates and a row with nothing left are errors, as on the CPU.
    let filters = sample::Filters::from(&SamplingParams::default());
    let mut nan = vec![0.0f32; stride];
    nan[7] = f32::NAN;
    let empty = vec![f32::NEG_INFINITY; stride];
    for (what, row) in [("NaN", nan), ("all -inf", empty)] {
        let row = gpu.upload(&row)?;
        if let Ok(ids) = sample::sample(&gpu, &row, stride, v, &filters, &[&[]], &[0.5]) {
            return fail(format!("{what}: expected an error, got {ids:?}"));
        }
    }
    Ok(())
}

/// The small config without dropout (the GPU trains without it).
fn train_config() -> Config {
    let mut cfg = Config::gpt2_sized(2, 2, 128);
    (cfg.vocab_size, cfg.n_ctx) = (500, 64);
    (cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop) = (0.0, 0.0, 0.0);
    cfg
}

fn random_ids(n: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| (rng.next_u64() % 500) as u32).collect()
}

/// `max|a − b| ≤ tol · max|b|`, with non-finite values failing.
fn close(what: &str, a: &[f32], b: &[f32], tol: f32) -> Result<()> {
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    if a.len() != b.len() || !a.iter().all(|x| x.is_finite()) || err > tol * scale {
        return fail(format!(
            "{what}: max |gpu - cpu| = {err:e} > {tol} x {scale:e}"
        ));
    }
    Ok(())
}

/// The f32 training forward and backward on the GPU give the CPU's loss and every
/// parameter gradient.
fn backward_matches_cpu() -> Result<()> {
    let cfg = train_config();
    let params = ParamArena::gpt2_init(&cfg, 3)?;
    let (b, t) = (2, 16);
    let (x, y) = (random_ids(b * t, 1), random_ids(b * t, 2));
    let dloss = 1.0 / (b * t) as f32;
    let view = params.view()?;
    let mut acts = Activations::new(&cfg, b, t);
    let dropout = Dropout::from_config(&cfg, 0, 0);
    view.forward_train(&mut acts, &x, &dropout)?;
    let mut grads = vec![0.0; params.len()];
    let loss = view.backward(&mut acts, &x, &y, &dropout, dloss, &mut grads)?;

    let model = CudaGpt2::<f32>::upload(&params.to_model()?, 0)?;
    // Keeping GELU's output and recomputing it must give the same gradients.
    for recompute_gelu in [false, true] {
        let mut dacts = CudaActivations::new(&model, b, t, recompute_gelu)?;
        model.forward_train(&mut dacts, &x)?;
        let dev_loss = model.loss(&mut dacts, &y)?;
        let mut dgrads = model.zeros_like_params()?;
        let bwd_loss = model.backward(&mut dacts, &x, &y, dloss, &mut dgrads)?;
        for l in [dev_loss, bwd_loss] {
            if (l - loss).abs() > 1e-5 * loss.abs() {
                return fail(format!("loss {l} on the GPU, {loss} on the CPU"));
            }
        }
        for (i, spec) in params.specs().iter().enumerate() {
            let (got, want) = (dgrads[i].to_vec()?, &grads[params.range(i)]);
            let what = format!("{} (recompute_gelu {recompute_gelu})", spec.name);
            // The device's wte has zero padding rows (Vp ≥ V); their gradient stays 0.
            close(&what, &got[..want.len()], want, 1e-4)?;
            if got[want.len()..].iter().any(|&x| x != 0.0) {
                return fail(format!("{what}: the padding rows got a gradient"));
            }
        }
    }
    Ok(())
}

/// 200 mixed-precision steps through `Trainer::to_device`, on the shipped model's
/// configuration (4 layers, 4 heads, 256 channels, its 2048-token vocabulary) and tiny
/// Shakespeare, follow the CPU's f32 loss curve: every step within 3e-2 (relative), the
/// last 50 within 1e-2 on average; the host copy comes back after `sync`. Reads
/// `../models/shakespeare` and `../data/tinyshakespeare.txt` (run from `gpt2-core/`, as
/// cargo and `scripts/gpu-check.sh` do).
fn trainer_follows_cpu() -> Result<()> {
    let root = std::path::Path::new("..");
    let tokenizer = gpt2_tokenizer::Tokenizer::from_dir(&root.join("models/shakespeare"))?;
    let text = std::fs::read_to_string(root.join("data/tinyshakespeare.txt"))
        .map_err(|e| Error::Input(format!("../data/tinyshakespeare.txt: {e}")))?;
    let tokens = gpt2_core::train::data::tokenize(&tokenizer, &text);
    let mut cfg = Config::gpt2_sized(4, 4, 256);
    (cfg.vocab_size, cfg.n_ctx) = (tokenizer.vocab_size(), 256);
    (cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop) = (0.0, 0.0, 0.0);
    let params = ParamArena::gpt2_init(&cfg, 1337)?;
    let settings = TrainSettings {
        batch: 4,
        seq: 64,
        grad_accum: 1,
        schedule: Schedule {
            kind: ScheduleKind::Constant,
            lr: 1e-3,
            warmup: 0,
            total: 200,
            min_lr_frac: 0.1,
        },
        adamw: AdamWConfig::default(),
        grad_clip: 1.0,
        seed: 0,
        order: Order::Sequential,
    };
    let mut cpu = Trainer::new(params.clone(), tokens.clone(), settings.clone())?;
    let mut gpu = Trainer::new(params.clone(), tokens, settings)?;
    gpu.to_device(Device::Cuda(0))?;
    let mut late = 0.0;
    for _ in 0..200 {
        let (a, b) = (cpu.step()?, gpu.step()?);
        let rel = (a.loss - b.loss).abs() / a.loss.abs();
        if rel.is_nan() || rel > 3e-2 || (a.step, a.lr) != (b.step, b.lr) {
            return fail(format!(
                "step {}: loss {} on the CPU, {} on the GPU",
                a.step, a.loss, b.loss
            ));
        }
        if a.step > 150 {
            late += rel / 50.0;
        }
    }
    if late > 1e-2 {
        return fail(format!(
            "steps 151-200 differ by {late:.4} on average (relative)"
        ));
    }
    let first = cpu.history().train[0].1;
    let last = cpu.history().train[199].1;
    println!(
        "  loss {first:.3} -> {last:.3} (CPU f32); GPU bf16 within {late:.4} over the last 50"
    );
    gpu.sync()?;
    if gpu.params().as_slice() == params.as_slice()
        || !gpu.params().as_slice().iter().all(|x| x.is_finite())
    {
        return fail("the synced parameters did not move, or are not finite".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let checks: [Check; 11] = [
        ("model::f32_matches_cpu", f32_matches_cpu),
        ("model::bf16_matches_cpu", bf16_matches_cpu),
        ("model::input_errors", input_errors),
        (
            "model::greedy_generation_matches_cpu",
            greedy_generation_matches_cpu,
        ),
        (
            "model::sampled_generation_matches_cpu",
            sampled_generation_matches_cpu,
        ),
        ("sample::device_matches_cpu", device_sampling_matches_cpu),
        (
            "model::graph_equals_eager_f32",
            graph_decoding_equals_eager_f32,
        ),
        (
            "model::graph_equals_eager_bf16",
            graph_decoding_equals_eager_bf16,
        ),
        ("model::batch_equals_one_by_one", batch_equals_one_by_one),
        ("model::backward_matches_cpu", backward_matches_cpu),
        ("train::trainer_follows_cpu", trainer_follows_cpu),
    ];
    common::run("cuda_model", &checks)
}
