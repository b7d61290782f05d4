//! Loading GPT-2 weights: Hugging Face `model.safetensors` (memory-mapped, zero copy where
//! the dtype allows) with or without `config.json`, and llm.c's `gpt2_124M.bin`.
//!
//! What this deliberately does not do: read PyTorch pickles (`pytorch_model.bin`; the error
//! says how to convert), sharded checkpoints, or download anything.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gpt2_kernels::cpu::matmul::WeightLayout;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use super::Gpt2;
use super::config::{Config, GPT2_HEAD_SIZE};
use super::params::{ParamKind, param_specs};
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// llm.c's model file magic number (first i32 of the 256-word header).
pub const LLMC_MAGIC: i32 = 20240326;
const LLMC_HEADER_BYTES: usize = 256 * 4;

/// The file that holds the weights inside a model directory.
pub const SAFETENSORS_FILE: &str = "model.safetensors";

const PYTORCH_HELP: &str = "PyTorch pickle checkpoints (pytorch_model.bin) are not supported. Convert once with \
     transformers: python -c \"from transformers import GPT2LMHeadModel as M; \
     M.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\" (writes DIR/model.safetensors)";

/// Maps a file read-only.
fn map_file(path: &Path) -> Result<Arc<Mmap>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and we never hand out references that outlive it (it is
    // kept alive by the Arc inside each tensor). As with every memory-mapped file, another
    // process truncating or rewriting the file while it is mapped is outside Rust's model;
    // checkpoints written by this crate are renamed into place, never rewritten.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Arc::new(map))
}

/// Finds a model in the Hugging Face hub cache (`$HF_HUB_CACHE`, `$HF_HOME/hub` or
/// `~/.cache/huggingface/hub`): `name` may be `gpt2`, `openai-community/gpt2`, etc. Returns
/// the newest snapshot directory that has a `model.safetensors`.
pub fn find_in_hf_cache(name: &str) -> Option<PathBuf> {
    let hub = std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HF_HOME")
                .map(|h| PathBuf::from(h).join("hub"))
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
                })
        })?;
    let repos = if name.contains('/') {
        vec![name.to_string()]
    } else {
        vec![format!("openai-community/{name}"), name.to_string()]
    };
    for repo in repos {
        let snapshots = hub
            .join(format!("models--{}", repo.replace('/', "--")))
            .join("snapshots");
        let Ok(entries) = std::fs::read_dir(&snapshots) else {
            continue;
        };
        let newest = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(SAFETENSORS_FILE).exists())
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
        if let Some(e) = newest {
            return Some(e.path());
        }
    }
    None
}

impl Gpt2 {
    /// Loads a model from a directory (`config.json` if present, `model.safetensors`) or a
    /// single file (`.safetensors`, sizes inferred from the tensor shapes; or llm.c `.bin`).
    pub fn load(path: &Path) -> Result<Gpt2> {
        if path.is_dir() {
            let st = path.join(SAFETENSORS_FILE);
            if st.exists() {
                let cfg_path = path.join("config.json");
                let config = if cfg_path.exists() {
                    Some(Config::from_hf_json(&cfg_path)?)
                } else {
                    None
                };
                return Gpt2::from_safetensors(&st, config);
            }
            if path.join("pytorch_model.bin").exists() {
                return Err(Error::format(path.join("pytorch_model.bin"), PYTORCH_HELP));
            }
            if path.join("model.safetensors.index.json").exists() {
                return Err(Error::format(
                    path,
                    "sharded safetensors checkpoints are not supported; GPT-2 sizes fit one file",
                ));
            }
            return Err(Error::format(
                path,
                "no model.safetensors in this directory",
            ));
        }
        let mut magic = [0u8; 8];
        {
            use std::io::Read;
            let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
            let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
            if n < 8 {
                return Err(Error::format(
                    path,
                    format!("file of {n} bytes is too short to be a model"),
                ));
            }
        }
        if i32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]) == LLMC_MAGIC {
            return Gpt2::from_llmc(path);
        }
        // Zip archives ("PK") and raw pickles (protocol byte 0x80) are PyTorch's formats.
        if magic.starts_with(b"PK") || magic[0] == 0x80 {
            return Err(Error::format(path, PYTORCH_HELP));
        }
        Gpt2::from_safetensors(path, None)
    }

    /// Loads a Hugging Face GPT-2 `model.safetensors`. Without `config`, the sizes are
    /// inferred from the tensor shapes (head size 64, as in all four GPT-2 sizes). Keys may
    /// carry the `transformer.` prefix or not; the attention-mask buffers (`attn.bias`,
    /// `attn.masked_bias`) and the tied `lm_head.weight` are ignored. f32 tensors are used in
    /// place (zero copy); bf16 matmul weights too (computed with f32 accumulation); f16 and
    /// the other bf16 tensors are converted to f32.
    pub fn from_safetensors(path: &Path, config: Option<Config>) -> Result<Gpt2> {
        let map = map_file(path)?;
        let (header_len, meta) = SafeTensors::read_metadata(&map).map_err(|e| {
            Error::format(
                path,
                format!("not a valid safetensors file (truncated or corrupt?): {e}"),
            )
        })?;
        let data_start = 8 + header_len;
        let mut tensors = HashMap::new();
        let mut unexpected = BTreeSet::new();
        for (name, info) in meta.tensors() {
            let short = name
                .strip_prefix("transformer.")
                .unwrap_or(&name)
                .to_string();
            if short.ends_with(".attn.bias")
                || short.ends_with(".attn.masked_bias")
                || short == "lm_head.weight"
            {
                continue;
            }
            if !(short.starts_with("h.")
                || short.starts_with("wte.")
                || short.starts_with("wpe.")
                || short.starts_with("ln_f."))
            {
                unexpected.insert(name.clone());
            }
            tensors.insert(short, info.clone());
        }
        if !unexpected.is_empty() {
            return Err(Error::format(
                path,
                format!("tensors that are not part of GPT-2: {unexpected:?}"),
            ));
        }
        let config = match config {
            Some(c) => c,
            None => infer_config(&tensors).map_err(|msg| Error::format(path, msg))?,
        };
        config.validate()?;
        let specs = param_specs(&config, WeightLayout::InOut, config.vocab_size);
        let mut params = Vec::with_capacity(specs.len());
        let mut lm_head = None;
        for spec in &specs {
            let info = tensors
                .get(&spec.name)
                .ok_or_else(|| Error::format(path, format!("missing tensor `{}`", spec.name)))?;
            if info.shape != spec.shape {
                return Err(Error::format(
                    path,
                    format!(
                        "tensor `{}` has shape {:?}, expected {:?} for this config",
                        spec.name, info.shape, spec.shape
                    ),
                ));
            }
            let dtype = match info.dtype {
                Dtype::F32 => DType::F32,
                Dtype::BF16 => DType::BF16,
                Dtype::F16 => DType::F16,
                other => {
                    return Err(Error::format(
                        path,
                        format!(
                            "tensor `{}` has dtype {other:?}; only F32, BF16 and F16 are supported",
                            spec.name
                        ),
                    ));
                }
            };
            let t = Tensor::from_mmap(
                map.clone(),
                data_start + info.data_offsets.0,
                dtype,
                &spec.shape,
            )?;
            // Matmul weights stay bf16 (the kernels stream them); everything else is f32.
            let keep =
                dtype == DType::F32 || (dtype == DType::BF16 && spec.kind == ParamKind::Matmul);
            if spec.name == "wte.weight" && dtype == DType::BF16 {
                lm_head = Some(t.clone());
            }
            params.push(if keep { t } else { t.to_dtype(DType::F32)? });
        }
        Gpt2::from_params(config, WeightLayout::InOut, params, lm_head)
    }

    /// Loads llm.c's checkpoint format (`gpt2_124M.bin`): a 256 × i32 header (magic
    /// 20240326, version 3 = f32 or 5 = bf16, maxT, V, L, NH, C, Vp), then all parameters
    /// in llm.c's order with PyTorch Linear `(out, in)` weights and `wte` padded to Vp rows.
    /// The padded rows are never used as logits, so they can never be sampled.
    pub fn from_llmc(path: &Path) -> Result<Gpt2> {
        let map = map_file(path)?;
        let bad = |msg: String| Error::format(path, msg);
        if map.len() < LLMC_HEADER_BYTES {
            return Err(bad(format!(
                "{} bytes is shorter than llm.c's 1024-byte header",
                map.len()
            )));
        }
        let h: Vec<i32> = map[..LLMC_HEADER_BYTES]
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if h[0] != LLMC_MAGIC {
            return Err(bad(format!(
                "bad magic {} (llm.c model files start with {LLMC_MAGIC})",
                h[0]
            )));
        }
        let dtype = match h[1] {
            3 => DType::F32,
            5 => DType::BF16,
            v => {
                return Err(bad(format!(
                    "unsupported llm.c model version {v} (3 = f32 and 5 = bf16 are supported)"
                )));
            }
        };
        let dims: Vec<usize> = h[2..8]
            .iter()
            .map(|&x| usize::try_from(x).ok().filter(|&x| x > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(format!("header sizes must be positive, got {:?}", &h[2..8])))?;
        let (max_t, v, l, nh, c, vp) = (dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]);
        if vp < v {
            return Err(bad(format!(
                "padded vocabulary {vp} is smaller than the vocabulary {v}"
            )));
        }
        let mut config = Config::gpt2_sized(l, nh, c);
        config.vocab_size = v;
        config.n_ctx = max_t;
        config.validate().map_err(|e| bad(e.to_string()))?;
        let specs = param_specs(&config, WeightLayout::OutIn, vp);
        let total: usize = specs.iter().map(|s| s.numel()).sum();
        let expected = LLMC_HEADER_BYTES + total * dtype.size();
        if map.len() != expected {
            return Err(bad(format!(
                "file has {} bytes, but the header's sizes need {expected} (truncated or corrupt?)",
                map.len()
            )));
        }
        // llm.c groups each kind of block parameter across layers: all ln_1.weight, then all
        // ln_1.bias, ... So block tensor j of layer i sits after j whole groups and i members.
        let per_block = super::params::PARAMS_PER_BLOCK;
        let mut offsets = vec![0usize; specs.len()];
        let mut pos = LLMC_HEADER_BYTES;
        for (idx, spec) in specs.iter().enumerate().take(2) {
            offsets[idx] = pos;
            pos += spec.numel() * dtype.size();
        }
        for j in 0..per_block {
            for i in 0..l {
                let idx = 2 + i * per_block + j;
                offsets[idx] = pos;
                pos += specs[idx].numel() * dtype.size();
            }
        }
        for (idx, spec) in specs.iter().enumerate().skip(2 + l * per_block) {
            offsets[idx] = pos;
            pos += spec.numel() * dtype.size();
        }
        let mut params = Vec::with_capacity(specs.len());
        let mut lm_head = None;
        for (spec, &off) in specs.iter().zip(&offsets) {
            let t = Tensor::from_mmap(map.clone(), off, dtype, &spec.shape)?;
            if spec.name == "wte.weight" && dtype == DType::BF16 {
                lm_head = Some(t.narrow(0, 0, v)?);
            }
            let keep = dtype == DType::F32 || spec.kind == ParamKind::Matmul;
            params.push(if keep { t } else { t.to_dtype(DType::F32)? });
        }
        Gpt2::from_params(config, WeightLayout::OutIn, params, lm_head)
    }
}

/// Infers the sizes of a GPT-2 from its tensor shapes: V and C from `wte`, maxT from `wpe`,
/// L from the highest block index, F from `mlp.c_fc`, NH = C / 64.
fn infer_config(
    tensors: &HashMap<String, safetensors::tensor::TensorInfo>,
) -> std::result::Result<Config, String> {
    let shape = |name: &str| {
        tensors
            .get(name)
            .map(|i| i.shape.clone())
            .ok_or_else(|| format!("missing tensor `{name}` (needed to infer the model size)"))
    };
    let wte = shape("wte.weight")?;
    let wpe = shape("wpe.weight")?;
    if wte.len() != 2 || wpe.len() != 2 || wte[1] != wpe[1] {
        return Err(format!(
            "wte {wte:?} and wpe {wpe:?} must be (rows, C) with the same C"
        ));
    }
    let n_layer = tensors
        .keys()
        .filter_map(|k| {
            k.strip_prefix("h.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    let c = wte[1];
    if c % GPT2_HEAD_SIZE != 0 {
        return Err(format!(
            "n_embd {c} is not a multiple of GPT-2's head size {GPT2_HEAD_SIZE}; add a config.json"
        ));
    }
    let fc = shape("h.0.mlp.c_fc.weight")?;
    let mut cfg = Config::gpt2_sized(n_layer, c / GPT2_HEAD_SIZE, c);
    cfg.vocab_size = wte[0];
    cfg.n_ctx = wpe[0];
    cfg.n_inner = fc.get(1).copied().unwrap_or(4 * c);
    Ok(cfg)
}
