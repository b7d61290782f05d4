//! Evaluate a GPT-2 on a text or token file: loss, perplexity and bits per byte.
//!
//! ```text
//! cargo run --release --example eval -- --model models/shakespeare --data data/tinyshakespeare.txt --split val
//! ```
//!
//! Every token of the chosen part after its first is scored once, in windows of `--seq`
//! tokens (default: the model's context) with the preceding tokens of the window as
//! context. `--split val` is the last `--val-frac` of the tokens, as `train` holds out.
//! stdout: `loss`, `perplexity`, `bits_per_byte`, `tokens`, `bytes`, one per line.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use gpt2::gpt2_core::model::{Activations, Gpt2};
use gpt2::gpt2_core::train::{data, eval};
use gpt2::gpt2_tokenizer::Tokenizer;

#[derive(Parser, Debug)]
#[command(about = "Loss, perplexity and bits per byte of a GPT-2 on a text (gpt2-rs)")]
struct Args {
    /// Model directory (config.json, model.safetensors, tokenizer files) or file.
    #[arg(long, default_value = "models/shakespeare")]
    model: PathBuf,
    /// A UTF-8 text file or an llm.c token file.
    #[arg(long)]
    data: PathBuf,
    /// Which part of the tokens to score.
    #[arg(long, value_enum, default_value_t = Split::All)]
    split: Split,
    /// The held-out fraction (the last tokens) that `--split val` scores.
    #[arg(long, default_value_t = 0.1)]
    val_frac: f64,
    /// Tokens per window (default: the model's context).
    #[arg(long)]
    seq: Option<usize>,
    /// Windows per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Split {
    All,
    Train,
    Val,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args = Args::parse();
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        pool = pool.num_threads(n);
    }
    let result = pool
        .build()
        .map_err(BoxError::from)
        .and_then(|p| p.install(|| run(&args)));
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), BoxError> {
    let model = Gpt2::load(&args.model)?;
    let has_vocab = ["tokenizer.json", "vocab.json", "encoder.json"]
        .iter()
        .any(|f| args.model.join(f).is_file());
    let tokenizer = if has_vocab {
        Tokenizer::from_dir(&args.model)?
    } else {
        Tokenizer::gpt2()
    };
    let tokens = data::load_tokens(&args.data, &tokenizer)?;
    let (train, val) = data::split_validation(&tokens, args.val_frac)?;
    let part = match args.split {
        Split::All => &tokens[..],
        Split::Train => train,
        Split::Val => val,
    };
    let cfg = model.config();
    let seq = args.seq.unwrap_or(cfg.n_ctx);
    let t0 = Instant::now();
    let mut acts = Activations::new(cfg, args.batch, seq);
    let e = eval::evaluate(&model.view()?, part, &mut acts, None)?;
    // The bytes of the scored text: every token of the part but the first.
    let bytes = tokenizer.decode(&part[1..])?.len();
    println!("loss {:.6}", e.loss());
    println!("perplexity {:.4}", e.perplexity());
    println!("bits_per_byte {:.4}", e.bits_per_byte(bytes));
    println!("tokens {}", e.tokens);
    println!("bytes {bytes}");
    eprintln!(
        "{}: {:?} split of {} ({} tokens), {:.1} s",
        args.model.display(),
        args.split,
        args.data.display(),
        part.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
