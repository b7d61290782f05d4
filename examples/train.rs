//! Train or fine-tune GPT-2 on the CPU.
//!
//! ```text
//! # from scratch, with a trained vocabulary:
//! cargo run --release --example train -- --tokenizer models/shakespeare \
//!     --data data/tinyshakespeare.txt --n-layer 4 --n-head 4 --n-embd 256 --n-ctx 256 \
//!     --batch 16 --seq 256 --steps 2000 --out runs/shakespeare
//! # fine-tune GPT-2 124M:
//! cargo run --release --example train -- --init gpt2 --data my.txt --lr 1e-4 --out runs/ft
//! # continue a run exactly where it stopped:
//! cargo run --release --example train -- --resume runs/shakespeare --data data/tinyshakespeare.txt
//! ```
//!
//! stdout carries only `step <n> train_loss <loss>` and `step <n> val_loss <loss>`
//! lines (n counts optimizer steps from 1, continuing across `--resume`; the train loss
//! is the mean over the step's micro-batches). Everything else — progress bar, samples,
//! checkpoint messages — goes to stderr. At the end the loss curve is written to
//! `OUT/loss.svg`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use gpt2::gpt2_core::Device;
use gpt2::gpt2_core::generate::{GenerateOptions, generate};
use gpt2::gpt2_core::model::{Config, Gpt2, ParamArena, find_in_hf_cache};
use gpt2::gpt2_core::profile;
use gpt2::gpt2_core::sample::SamplingParams;
use gpt2::gpt2_core::train::checkpoint::{self, SaveDType};
use gpt2::gpt2_core::train::data::{self, Order};
use gpt2::gpt2_core::train::optim::AdamWConfig;
use gpt2::gpt2_core::train::schedule::{Schedule, ScheduleKind};
use gpt2::gpt2_core::train::{GpuOptions, TrainSettings, Trainer, plot};
use gpt2::gpt2_tokenizer::Tokenizer;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(about = "Train or fine-tune GPT-2 (gpt2-rs)")]
struct Args {
    /// Training data: a UTF-8 text file (tokenised with the model's tokenizer) or an
    /// llm.c token file.
    #[arg(long)]
    data: PathBuf,
    /// Start from this model (directory, file, or a name in the Hugging Face cache)
    /// instead of random weights.
    #[arg(long, conflicts_with = "resume")]
    init: Option<String>,
    /// Continue the run saved in this output directory (its `latest` checkpoint).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Vocabulary directory for a new model (default: GPT-2's).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Layers of a new model.
    #[arg(long, default_value_t = 12)]
    n_layer: usize,
    /// Attention heads of a new model.
    #[arg(long, default_value_t = 12)]
    n_head: usize,
    /// Channels of a new model.
    #[arg(long, default_value_t = 768)]
    n_embd: usize,
    /// Context length of a new model.
    #[arg(long, default_value_t = 1024)]
    n_ctx: usize,
    /// Sequences per micro-batch (B).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Tokens per sequence (T; default: the model's context).
    #[arg(long)]
    seq: Option<usize>,
    /// Optimizer steps: the run's length, 1000 by default (with --resume: a new total;
    /// default, the checkpoint's).
    #[arg(long)]
    steps: Option<u64>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 6e-4)]
    lr: f64,
    /// The cosine schedule's floor as a fraction of --lr.
    #[arg(long, default_value_t = 0.1)]
    min_lr_frac: f64,
    /// Decoupled weight decay (on embeddings and matmul weights only).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f32,
    /// AdamW β1.
    #[arg(long, default_value_t = 0.9)]
    beta1: f64,
    /// AdamW β2.
    #[arg(long, default_value_t = 0.95)]
    beta2: f64,
    /// AdamW ε.
    #[arg(long, default_value_t = 1e-8)]
    eps: f64,
    /// Clip the global gradient norm to this (0 = off).
    #[arg(long, default_value_t = 1.0)]
    grad_clip: f64,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Learning-rate schedule after the warmup.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    schedule: ScheduleArg,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Dropout probability for embeddings, attention and residuals (default: the
    /// config's; 0.1 for a new model).
    #[arg(long)]
    dropout: Option<f32>,
    /// Visit the training windows in a random order each epoch (by --seed).
    #[arg(long, overrides_with = "no_shuffle")]
    shuffle: bool,
    /// Read the training data in order, as llm.c (the default).
    #[arg(long, overrides_with = "shuffle")]
    no_shuffle: bool,
    /// Fraction of the tokens (the last ones) held out for validation.
    #[arg(long, default_value_t = 0.1)]
    val_frac: f64,
    /// Measure the validation loss every N steps (0 = only at the end).
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// Validation batches per measurement (default: the whole split).
    #[arg(long)]
    eval_batches: Option<usize>,
    /// Print a sample to stderr every N steps (0 = never).
    #[arg(long, default_value_t = 0)]
    sample_every: u64,
    /// Tokens per sample.
    #[arg(long, default_value_t = 64)]
    sample_tokens: usize,
    /// Save a checkpoint every N steps (0 = only at the end).
    #[arg(long, default_value_t = 0)]
    save_every: u64,
    /// Output directory: checkpoints (`step-N/`, `latest`) and `loss.svg` (default:
    /// the --resume directory, else `runs/train`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the final model (config, weights, tokenizer, loss plot) here.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Element type of the exported weights.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    export_dtype: DTypeArg,
    /// Seed of the initialisation, the dropout masks and the shuffle.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where to run. cuda: mixed precision on GPU 0 (f32 master weights, bf16 compute;
    /// needs a build with `--features cuda` and `--dropout 0`). Evaluation, samples and
    /// checkpoints run from a host copy refreshed when they need it.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// On the GPU: recompute GELU's output in the backward pass instead of keeping it for
    /// every layer (less memory, one more GELU per layer; as llm.c's `-r 1`).
    #[arg(long)]
    recompute_gelu: bool,
    /// At the end, print a per-op table of the training steps (evaluation and samples
    /// excluded) to stderr: calls, time, share of the step, GFLOP/s, GB/s and % of the
    /// machine's roofline (measured then, about a second).
    #[arg(long)]
    profile: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScheduleArg {
    Constant,
    Cosine,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DTypeArg {
    F32,
    Bf16,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), BoxError> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        pool = pool.num_threads(n);
    }
    pool.build()?.install(|| train(&args))
}

/// The tokenizer of a model directory, if it has one.
fn tokenizer_in(dir: &Path) -> Result<Option<Tokenizer>, BoxError> {
    let has = ["tokenizer.json", "vocab.json", "encoder.json"]
        .iter()
        .any(|f| dir.join(f).is_file());
    Ok(if has {
        Some(Tokenizer::from_dir(dir)?)
    } else {
        None
    })
}

/// Resolves --init: a path, or a name in the Hugging Face cache.
fn init_path(name: &str) -> Result<PathBuf, BoxError> {
    if Path::new(name).exists() {
        return Ok(PathBuf::from(name));
    }
    find_in_hf_cache(name).ok_or_else(|| {
        format!("--init {name}: no such path, and not in the Hugging Face cache").into()
    })
}

/// The model to start from and its tokenizer (new, or --init).
fn starting_point(args: &Args) -> Result<(ParamArena, Tokenizer), BoxError> {
    let explicit = args
        .tokenizer
        .as_deref()
        .map(Tokenizer::from_dir)
        .transpose()?;
    let (mut params, tokenizer) = match &args.init {
        Some(name) => {
            let path = init_path(name)?;
            let model = Gpt2::load(&path)?;
            let own = if path.is_dir() {
                tokenizer_in(&path)?
            } else {
                None
            };
            let tokenizer = explicit.or(own).unwrap_or_else(Tokenizer::gpt2);
            (ParamArena::from_model(&model)?, tokenizer)
        }
        None => {
            let tokenizer = explicit.unwrap_or_else(Tokenizer::gpt2);
            let mut cfg = Config::gpt2_sized(args.n_layer, args.n_head, args.n_embd);
            cfg.n_ctx = args.n_ctx;
            cfg.vocab_size = tokenizer.vocab_size();
            (ParamArena::gpt2_init(&cfg, args.seed)?, tokenizer)
        }
    };
    if let Some(p) = args.dropout {
        params.set_dropout(p, p, p)?;
    }
    Ok((params, tokenizer))
}

fn settings(args: &Args, n_ctx: usize) -> TrainSettings {
    TrainSettings {
        batch: args.batch,
        seq: args.seq.unwrap_or(n_ctx),
        grad_accum: args.grad_accum,
        schedule: Schedule {
            kind: match args.schedule {
                ScheduleArg::Constant => ScheduleKind::Constant,
                ScheduleArg::Cosine => ScheduleKind::Cosine,
            },
            lr: args.lr,
            warmup: args.warmup,
            total: args.steps.unwrap_or(1000),
            min_lr_frac: args.min_lr_frac,
        },
        adamw: AdamWConfig {
            beta1: args.beta1,
            beta2: args.beta2,
            eps: args.eps,
            weight_decay: args.weight_decay,
        },
        grad_clip: args.grad_clip,
        seed: args.seed,
        order: if args.shuffle && !args.no_shuffle {
            Order::Shuffled { seed: args.seed }
        } else {
            Order::Sequential
        },
    }
}

/// Tokens of --data, split into (train, validation).
fn load_data(
    args: &Args,
    tokenizer: &Tokenizer,
    vocab: usize,
) -> Result<(Vec<u32>, Vec<u32>), BoxError> {
    let t0 = Instant::now();
    let tokens = data::load_tokens(&args.data, tokenizer)?;
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(format!(
            "{}: token {bad} is outside the model's vocabulary of {vocab}",
            args.data.display()
        )
        .into());
    }
    let (train, val) = data::split_validation(&tokens, args.val_frac)?;
    eprintln!(
        "data: {} tokens from {} in {:.2} s; train {}, validation {} (last {:.0}%)",
        tokens.len(),
        args.data.display(),
        t0.elapsed().as_secs_f64(),
        train.len(),
        val.len(),
        args.val_frac * 100.0
    );
    Ok((train.to_vec(), val.to_vec()))
}

fn train(args: &Args) -> Result<(), BoxError> {
    let (mut trainer, tokenizer, val, out) = match &args.resume {
        Some(dir) => {
            let ckpt = checkpoint::latest_checkpoint(dir)?;
            checkpoint::remove_stale_temps(dir)?;
            let tokenizer = tokenizer_in(&ckpt)?.ok_or("the checkpoint has no tokenizer files")?;
            let vocab = checkpoint::read_params(&ckpt)?.config().vocab_size;
            let (train, val) = load_data(args, &tokenizer, vocab)?;
            let trainer = Trainer::resume(&ckpt, train, args.steps)?;
            eprintln!(
                "resuming {} at step {} (settings from the checkpoint)",
                ckpt.display(),
                trainer.step_count()
            );
            (
                trainer,
                tokenizer,
                val,
                args.out.clone().unwrap_or_else(|| dir.clone()),
            )
        }
        None => {
            let (params, tokenizer) = starting_point(args)?;
            let (train, val) = load_data(args, &tokenizer, params.config().vocab_size)?;
            let s = settings(args, params.config().n_ctx);
            let trainer = Trainer::new(params, train, s)?;
            (
                trainer,
                tokenizer,
                val,
                args.out
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("runs/train")),
            )
        }
    };
    if matches!(args.device, DeviceArg::Cuda) {
        let options = GpuOptions {
            recompute_gelu: args.recompute_gelu,
        };
        trainer.to_device_with(Device::Cuda(0), options)?;
    }
    let cfg = trainer.params().config().clone();
    let s = trainer.settings().clone();
    eprintln!(
        "model: {} layers, {} heads, {} channels, context {}, vocabulary {}: {:.2}M parameters; dropout {}",
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd,
        cfg.n_ctx,
        cfg.vocab_size,
        cfg.num_params() as f64 / 1e6,
        cfg.resid_pdrop
    );
    eprintln!(
        "training: B={} T={} x{} micro-batches = {} tokens/step, steps {}..={}, lr {} ({:?}, warmup {}), threads {}",
        s.batch,
        s.seq,
        s.grad_accum,
        s.batch * s.seq * s.grad_accum,
        trainer.step_count() + 1,
        s.schedule.total,
        s.schedule.lr,
        s.schedule.kind,
        s.schedule.warmup,
        rayon::current_num_threads()
    );

    let total = s.schedule.total;
    let bar = ProgressBar::new(total).with_position(trainer.step_count());
    bar.set_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
    )?);
    let stdout = std::io::stdout();
    let t0 = Instant::now();
    let mut tokens_done = 0usize;
    let mut last_saved = None;
    let mut step_s = 0.0;
    while trainer.step_count() < total {
        profile::enable(args.profile);
        let t = Instant::now();
        let st = trainer.step()?;
        step_s += t.elapsed().as_secs_f64();
        profile::enable(false);
        tokens_done += st.tokens;
        writeln!(stdout.lock(), "step {} train_loss {:.6}", st.step, st.loss)?;
        let tok_s = tokens_done as f64 / t0.elapsed().as_secs_f64();
        bar.set_message(format!(
            "loss {:.4} | norm {:.3} | lr {:.2e} | {tok_s:.0} tok/s",
            st.loss, st.grad_norm, st.lr
        ));
        bar.set_position(st.step);
        let last = st.step == total;
        if (args.eval_every > 0 && st.step % args.eval_every == 0) || last {
            let e = trainer.evaluate(&val, args.eval_batches)?;
            writeln!(stdout.lock(), "step {} val_loss {:.6}", st.step, e.loss())?;
            trainer.record_val(e.loss() as f32);
            bar.suspend(|| eprintln!("step {}: val loss {:.4}", st.step, e.loss()));
        }
        if args.sample_every > 0 && st.step % args.sample_every == 0 {
            trainer.sync()?;
            let text = sample(
                &trainer,
                &tokenizer,
                args.sample_tokens,
                args.seed ^ st.step,
            )?;
            bar.suspend(|| eprintln!("--- sample at step {} ---\n{text}\n---", st.step));
        }
        if (args.save_every > 0 && st.step % args.save_every == 0) || last {
            let dir = trainer.save(&out, &tokenizer)?;
            last_saved = Some(st.step);
            bar.suspend(|| eprintln!("saved {}", dir.display()));
        }
    }
    bar.finish();
    if last_saved != Some(trainer.step_count()) {
        let dir = trainer.save(&out, &tokenizer)?;
        eprintln!("saved {}", dir.display());
    }
    let h = trainer.history();
    let title = format!(
        "GPT-2 {}L {}H {}C on {}",
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd,
        args.data.display()
    );
    let svg = plot::loss_svg(&title, &h.train, &h.val);
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("loss.svg"), &svg)?;
    eprintln!("loss curve: {}", out.join("loss.svg").display());
    if let Some(dir) = &args.export {
        trainer.sync()?;
        std::fs::create_dir_all(dir)?;
        let dtype = match args.export_dtype {
            DTypeArg::F32 => SaveDType::F32,
            DTypeArg::Bf16 => SaveDType::Bf16,
        };
        checkpoint::write_model_dir(dir, trainer.params(), &tokenizer, dtype)?;
        std::fs::write(dir.join("loss.svg"), &svg)?;
        eprintln!("exported the model to {}", dir.display());
    }
    eprintln!(
        "done: {} steps, {tokens_done} tokens in {:.1} s ({:.0} tokens/s)",
        trainer.step_count(),
        t0.elapsed().as_secs_f64(),
        tokens_done as f64 / t0.elapsed().as_secs_f64()
    );
    if args.profile {
        let machine = profile::Machine::measure();
        eprintln!("\n{}", profile::take().table(step_s, &machine));
    }
    Ok(())
}

/// A sample from the current parameters: top-k 50 at temperature 1, from the
/// end-of-text token (or a newline when the vocabulary has none).
fn sample(
    trainer: &Trainer,
    tokenizer: &Tokenizer,
    n: usize,
    seed: u64,
) -> Result<String, BoxError> {
    let prompt = match tokenizer.eot_id() {
        Some(eot) => vec![eot],
        None => tokenizer.encode("\n"),
    };
    let opts = GenerateOptions {
        max_new_tokens: n,
        sampling: SamplingParams {
            temperature: 1.0,
            top_k: 50,
            ..SamplingParams::default()
        },
        seed,
        stop_token: tokenizer.eot_id(),
        ..GenerateOptions::default()
    };
    let mut text = String::new();
    for tok in generate(trainer.params().view()?, Some(tokenizer), &prompt, opts)? {
        text.push_str(&tok?.text);
    }
    Ok(text)
}
