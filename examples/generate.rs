//! Generate text with GPT-2.
//!
//! ```text
//! cargo run --release --example generate -- --prompt "Once upon a time"
//! cargo run --release --example generate -- --model path/to/gpt2 --prompt "Hello" --temperature 0
//! cargo run --release --features cuda --example generate -- --model gpt2 --device cuda --bf16
//! ```
//!
//! stdout carries only the text (the prompt as given, then the continuation as it streams)
//! or, with `--emit-ids`, only the generated ids; statistics go to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use gpt2::gpt2_core::generate::{
    CpuDecoder, Decoder, GenerateOptions, StopReason, Truncate, generate_with,
};
use gpt2::gpt2_core::model::{Gpt2, find_in_hf_cache};
use gpt2::gpt2_core::sample::SamplingParams;
use gpt2::gpt2_tokenizer::Tokenizer;

/// The model that ships in the repository, used when no --model is given.
const SHIPPED_MODEL: &str = "models/shakespeare";

#[derive(Parser, Debug)]
#[command(version, about = "Generate text with GPT-2 (gpt2-rs)")]
struct Args {
    /// Model directory (config.json + model.safetensors [+ tokenizer files]), a single
    /// .safetensors or llm.c .bin file, or a Hugging Face name (gpt2, gpt2-medium, ...)
    /// found in the local Hugging Face cache. Default: the small model shipped in the repo.
    #[arg(long)]
    model: Option<String>,
    /// The prompt text.
    #[arg(long, conflicts_with = "prompt_ids")]
    prompt: Option<String>,
    /// The prompt as token ids separated by spaces.
    #[arg(long)]
    prompt_ids: Option<String>,
    /// Recognise special tokens such as <|endoftext|> in --prompt (default: plain text).
    #[arg(long)]
    allow_special: bool,
    /// Number of new tokens to generate.
    #[arg(long, default_value_t = 100)]
    max_tokens: usize,
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 50)]
    top_k: usize,
    /// Keep the smallest set of tokens with probability ≥ p (1 = off).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// CTRL repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Stop when the generated text contains this string (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Random seed for sampling (default: from the clock; printed to stderr).
    #[arg(long)]
    seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// What to do when prompt + max-tokens exceed the context.
    #[arg(long, value_enum, default_value_t = TruncateArg::Error)]
    truncate: TruncateArg,
    /// Print only the generated ids (space-separated, then a newline) instead of text.
    #[arg(long)]
    emit_ids: bool,
    /// Convert matmul weights to bf16 (f32 accumulation): half the memory traffic per token.
    /// With --device cuda: every weight and activation in bf16.
    #[arg(long)]
    bf16: bool,
    /// With --device cuda: replay each decoding step from one CUDA graph instead of
    /// launching its ~150 kernels one by one (batch-1 decoding is launch-bound).
    #[arg(long)]
    cuda_graph: bool,
    /// At the end, print a per-op table to stderr: calls, time, share, GFLOP/s, GB/s and
    /// % of the machine's roofline (measured then, about a second).
    #[arg(long)]
    profile: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TruncateArg {
    Error,
    Left,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Resolves --model to a path: an existing path, a name in the Hugging Face cache, or the
/// shipped model.
fn model_path(arg: Option<&str>) -> Result<PathBuf, BoxError> {
    match arg {
        Some(a) if Path::new(a).exists() => Ok(PathBuf::from(a)),
        Some(a) => find_in_hf_cache(a).ok_or_else(|| {
            format!(
                "no model at '{a}' and none named '{a}' in the Hugging Face cache. Download GPT-2 124M with:\n  \
                 mkdir -p gpt2 && curl -L -o gpt2/model.safetensors https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors\n\
                 then pass --model gpt2"
            )
            .into()
        }),
        None => {
            let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_MODEL);
            if shipped.exists() {
                Ok(shipped)
            } else {
                Err(format!(
                    "no --model given and the shipped model ({SHIPPED_MODEL}) is not there. Download GPT-2 124M with:\n  \
                     mkdir -p gpt2 && curl -L -o gpt2/model.safetensors https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors\n\
                     then pass --model gpt2"
                )
                .into())
            }
        }
    }
}

/// The tokenizer of a model directory, or GPT-2's own.
fn tokenizer_for(path: &Path) -> Result<Tokenizer, BoxError> {
    let dir = if path.is_dir() { Some(path) } else { None };
    let has_files = dir.is_some_and(|d| {
        ["tokenizer.json", "vocab.json", "encoder.json"]
            .iter()
            .any(|f| d.join(f).exists())
    });
    Ok(match dir {
        Some(d) if has_files => Tokenizer::from_dir(d)?,
        _ => Tokenizer::gpt2(),
    })
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn run(args: Args) -> Result<(), BoxError> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        pool = pool.num_threads(n);
    }
    let pool = pool.build()?;
    pool.install(|| generate_text(&args))
}

fn generate_text(args: &Args) -> Result<(), BoxError> {
    let t0 = Instant::now();
    let path = model_path(args.model.as_deref())?;
    let mut model = Gpt2::load(&path)?;
    if args.cuda_graph && matches!(args.device, DeviceArg::Cpu) {
        return Err("--cuda-graph needs --device cuda".into());
    }
    if args.bf16 && matches!(args.device, DeviceArg::Cpu) {
        model = model.with_bf16_weights()?;
    }
    let tokenizer = tokenizer_for(&path)?;
    // The weights go to the GPU once, here (counted in the load time).
    let device_model = match args.device {
        DeviceArg::Cpu => None,
        DeviceArg::Cuda => Some(DeviceModel::upload(&model, args.bf16)?),
    };
    let load_s = t0.elapsed().as_secs_f64();

    let (prompt_text, prompt_ids) = match (&args.prompt, &args.prompt_ids) {
        (_, Some(ids)) => {
            let ids = ids
                .split_whitespace()
                .map(|s| {
                    s.parse::<u32>()
                        .map_err(|e| format!("--prompt-ids: '{s}' is not a token id ({e})"))
                })
                .collect::<Result<Vec<u32>, String>>()?;
            (tokenizer.decode_lossy(&ids)?, ids)
        }
        (Some(text), None) => {
            let mode = if args.allow_special {
                gpt2::gpt2_tokenizer::SpecialTokens::Allow
            } else {
                gpt2::gpt2_tokenizer::SpecialTokens::Text
            };
            (text.clone(), tokenizer.encode_with_special(text, mode)?)
        }
        (None, None) => (String::new(), Vec::new()),
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let opts = GenerateOptions {
        max_new_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repetition_penalty,
        },
        seed,
        stop_token: tokenizer.eot_id(),
        stop_strings: args.stop.clone(),
        truncate: match args.truncate {
            TruncateArg::Error => Truncate::Error,
            TruncateArg::Left => Truncate::Left,
        },
    };

    gpt2::gpt2_core::profile::enable(args.profile);
    let t1 = Instant::now();
    let decoder: Box<dyn Decoder + '_> = match &device_model {
        None => Box::new(CpuDecoder::new(model.view()?)),
        Some(m) => m.decoder(args.cuda_graph)?,
    };
    let mut generation = generate_with(decoder, Some(&tokenizer), &prompt_ids, opts)?;
    let prefill_s = t1.elapsed().as_secs_f64();
    let n_prompt = generation.prompt().len();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.emit_ids {
        out.write_all(prompt_text.as_bytes())?;
        out.flush()?;
    }
    let t2 = Instant::now();
    let mut ids = Vec::new();
    for tok in generation.by_ref() {
        let tok = tok?;
        ids.push(tok.id.to_string());
        if !args.emit_ids {
            out.write_all(tok.text.as_bytes())?;
            out.flush()?;
        }
    }
    let decode_s = t2.elapsed().as_secs_f64();
    let wall_s = t1.elapsed().as_secs_f64();
    if args.emit_ids {
        writeln!(out, "{}", ids.join(" "))?;
    } else {
        out.write_all(generation.finish_text().as_bytes())?;
    }
    out.flush()?;

    let cfg = model.config();
    eprintln!();
    eprintln!(
        "model: {} ({} layers, {} heads, {} channels, {:.1}M parameters{})",
        path.display(),
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd,
        cfg.num_params() as f64 / 1e6,
        match (args.device, args.bf16) {
            (DeviceArg::Cpu, true) => ", bf16 weights",
            (DeviceArg::Cuda, true) => ", on the GPU in bf16",
            (DeviceArg::Cuda, false) => ", on the GPU in f32",
            _ => "",
        }
    );
    eprintln!(
        "load: {load_s:.2} s; seed {seed}; threads {}",
        rayon::current_num_threads()
    );
    eprintln!(
        "prompt: {n_prompt} tokens in {prefill_s:.3} s ({:.1} tokens/s)",
        n_prompt as f64 / prefill_s.max(1e-9)
    );
    eprintln!(
        "generated: {} tokens in {decode_s:.3} s ({:.1} tokens/s), stopped by {}",
        ids.len(),
        ids.len() as f64 / decode_s.max(1e-9),
        match generation.stop_reason() {
            Some(StopReason::StopToken) => "<|endoftext|>",
            Some(StopReason::StopString) => "a stop string",
            _ => "the token limit",
        }
    );
    if let Some(mib) = peak_rss_mib() {
        eprintln!("peak memory: {mib:.0} MiB");
    }
    if let Some(m) = &device_model {
        eprintln!("{}", m.memory());
    }
    if args.profile {
        let profile = gpt2::gpt2_core::profile::take();
        let machine = gpt2::gpt2_core::profile::Machine::measure();
        eprintln!("\n{}", profile.table(wall_s, &machine));
    }
    Ok(())
}

/// The model on the GPU, in the element type `--bf16` chose.
#[cfg(feature = "cuda")]
enum DeviceModel {
    F32(gpt2::gpt2_core::model::cuda::CudaGpt2<f32>),
    Bf16(gpt2::gpt2_core::model::cuda::CudaGpt2<half::bf16>),
}

#[cfg(feature = "cuda")]
impl DeviceModel {
    fn upload(model: &Gpt2, bf16: bool) -> Result<DeviceModel, BoxError> {
        use gpt2::gpt2_core::model::cuda::CudaGpt2;
        Ok(if bf16 {
            DeviceModel::Bf16(CudaGpt2::upload(model, 0)?)
        } else {
            DeviceModel::F32(CudaGpt2::upload(model, 0)?)
        })
    }

    fn decoder(&self, graph: bool) -> Result<Box<dyn Decoder + '_>, BoxError> {
        use gpt2::gpt2_core::model::cuda::CudaDecoder;
        Ok(match (self, graph) {
            (DeviceModel::F32(m), false) => Box::new(CudaDecoder::new(m)?),
            (DeviceModel::F32(m), true) => Box::new(CudaDecoder::with_graph(m)?),
            (DeviceModel::Bf16(m), false) => Box::new(CudaDecoder::new(m)?),
            (DeviceModel::Bf16(m), true) => Box::new(CudaDecoder::with_graph(m)?),
        })
    }

    fn memory(&self) -> String {
        let (gpu, s) = match self {
            DeviceModel::F32(m) => (m.gpu(), m.memory_stats()),
            DeviceModel::Bf16(m) => (m.gpu(), m.memory_stats()),
        };
        format!(
            "device: {} ({} MiB in use, {} MiB cached by the allocator)",
            gpu.name(),
            s.in_use >> 20,
            s.cached >> 20
        )
    }
}

/// Without the `cuda` feature there is no GPU model: `--device cuda` is an error.
#[cfg(not(feature = "cuda"))]
enum DeviceModel {}

#[cfg(not(feature = "cuda"))]
impl DeviceModel {
    fn upload(_: &Gpt2, _: bool) -> Result<DeviceModel, BoxError> {
        Err(
            "--device cuda: this binary was built without GPU support; rebuild with \
             `cargo run --release --features cuda --example generate -- ...`"
                .into(),
        )
    }

    fn decoder(&self, _: bool) -> Result<Box<dyn Decoder + '_>, BoxError> {
        match *self {}
    }

    fn memory(&self) -> String {
        match *self {}
    }
}
