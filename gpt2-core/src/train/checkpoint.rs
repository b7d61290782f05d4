//! Checkpoints: a model directory that Hugging Face and our own loader read, plus the
//! training state, saved so that a crash at any moment leaves the previous checkpoint
//! whole.
//!
//! ## A checkpoint directory `OUT/step-N/`
//! - `config.json`: Hugging Face's `GPT2Config`;
//! - `model.safetensors`: Hugging Face's GPT-2 layout (`transformer.` names, Conv1D
//!   weights, tied `lm_head`), metadata `{"format": "pt"}`, f32 (or bf16 for an export);
//! - `vocab.json`, `merges.txt`, `tokenizer.json`: the tokenizer;
//! - `optimizer.safetensors`: AdamW's moments `m` and `v` (flat, the arena's layout);
//! - `trainer_state.json`: step, optimizer steps, data position, dropout pass counter,
//!   the training settings and the loss history.
//!
//! ## The protocol
//! Everything is written into `OUT/.tmp-step-N/`; each file and the directory are
//! fsynced; the directory is renamed to `OUT/step-N/` and `OUT` fsynced; then `OUT/latest`
//! (one line, `step-N`) is replaced by writing `OUT/.latest.tmp`, fsyncing it and
//! renaming it over `OUT/latest`. Renames within a directory are atomic, so `latest`
//! always names a complete checkpoint; a crash leaves at worst a stray `.tmp-step-N/`,
//! which the next save of that step (or [`remove_stale_temps`]) deletes.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use gpt2_tokenizer::Tokenizer;
use half::bf16;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::model::{Gpt2, ParamArena};

/// The file in `OUT` that names the newest complete checkpoint.
pub const LATEST: &str = "latest";
/// The optimizer state's file in a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The trainer state's file in a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";

/// The element type of a saved `model.safetensors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDType {
    /// f32: exact (checkpoints, resuming).
    F32,
    /// bf16 (round to nearest even): half the size, for a model that is only used.
    Bf16,
}

/// Writes `bytes` to `path` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Fsyncs a directory (its entries: names created, renamed or removed in it).
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

fn safetensors_bytes(
    tensors: Vec<(String, TensorView<'_>)>,
    format_pt: bool,
    path: &Path,
) -> Result<Vec<u8>> {
    let meta = format_pt.then(|| HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::tensor::serialize(tensors, meta)
        .map_err(|e| Error::format(path, format!("cannot serialize: {e}")))
}

fn view<'a>(dtype: Dtype, shape: &[usize], bytes: &'a [u8], path: &Path) -> Result<TensorView<'a>> {
    TensorView::new(dtype, shape.to_vec(), bytes)
        .map_err(|e| Error::format(path, format!("cannot serialize: {e}")))
}

/// Writes a model directory into `dir` (which must exist): `config.json`,
/// `model.safetensors` (Hugging Face's layout, `dtype`) and the tokenizer's files, each
/// fsynced. [`Gpt2::load`] and `transformers`' `GPT2LMHeadModel.from_pretrained` read it.
pub fn write_model_dir(
    dir: &Path,
    params: &ParamArena,
    tokenizer: &Tokenizer,
    dtype: SaveDType,
) -> Result<()> {
    let config_path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&params.config().to_hf_json())
        .map_err(|e| Error::format(&config_path, format!("cannot serialize: {e}")))?;
    if dtype == SaveDType::Bf16 {
        config["torch_dtype"] = "bfloat16".into(); // what transformers loads the weights as
    }
    write_json(&config_path, &config)?;
    let path = dir.join(crate::model::SAFETENSORS_FILE);
    let data: Vec<Vec<u8>> = (0..params.specs().len())
        .map(|i| match dtype {
            SaveDType::F32 => bytemuck::cast_slice(params.tensor(i)).to_vec(),
            SaveDType::Bf16 => params
                .tensor(i)
                .iter()
                .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
                .collect(),
        })
        .collect();
    let st_dtype = match dtype {
        SaveDType::F32 => Dtype::F32,
        SaveDType::Bf16 => Dtype::BF16,
    };
    let tensors = params
        .specs()
        .iter()
        .zip(&data)
        .map(|(spec, bytes)| {
            let v = view(st_dtype, &spec.shape, bytes, &path)?;
            Ok((format!("transformer.{}", spec.name), v))
        })
        .collect::<Result<Vec<_>>>()?;
    write_synced(&path, &safetensors_bytes(tensors, true, &path)?)?;
    tokenizer.save(dir)?;
    for name in ["vocab.json", "merges.txt", "tokenizer.json"] {
        let p = dir.join(name);
        File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// Writes AdamW's moments into `dir/optimizer.safetensors`.
pub fn write_optimizer(dir: &Path, m: &[f32], v: &[f32]) -> Result<()> {
    let path = dir.join(OPTIMIZER_FILE);
    let tensors = vec![
        (
            "m".to_string(),
            view(Dtype::F32, &[m.len()], bytemuck::cast_slice(m), &path)?,
        ),
        (
            "v".to_string(),
            view(Dtype::F32, &[v.len()], bytemuck::cast_slice(v), &path)?,
        ),
    ];
    write_synced(&path, &safetensors_bytes(tensors, false, &path)?)
}

/// Reads AdamW's moments `(m, v)` from `dir/optimizer.safetensors`.
pub fn read_optimizer(dir: &Path) -> Result<(Vec<f32>, Vec<f32>)> {
    let path = dir.join(OPTIMIZER_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(&path, format!("not a valid safetensors file: {e}")))?;
    let read = |name: &str| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|e| Error::format(&path, format!("tensor `{name}`: {e}")))?;
        if t.dtype() != Dtype::F32 {
            return Err(Error::format(&path, format!("`{name}` is not F32")));
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    Ok((read("m")?, read("v")?))
}

/// Writes a JSON file, fsynced.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::format(path, format!("cannot serialize: {e}")))?;
    write_synced(path, text.as_bytes())
}

/// Reads a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(path, format!("bad JSON: {e}")))
}

/// The name of step `step`'s checkpoint directory.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step}")
}

/// Saves a checkpoint of step `step` into `out` by the protocol of the module docs:
/// `write` fills the temporary directory (fsyncing its files), which then becomes
/// `out/step-N` and `out/latest`. Returns the checkpoint's directory.
pub fn save_atomic(
    out: &Path,
    step: u64,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let name = step_dir_name(step);
    let tmp = out.join(format!(".tmp-{name}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    write(&tmp)?;
    sync_dir(&tmp)?;
    let dest = out.join(&name);
    if dest.exists() {
        // Saving the same step again (e.g. the final save right after a periodic one):
        // move the old one aside first, so `dest` is never half-replaced.
        let old = out.join(format!(".old-{name}"));
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(&dest, &old).map_err(|e| Error::io(&dest, e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&tmp, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    } else {
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&tmp, e))?;
    }
    sync_dir(out)?;
    let latest_tmp = out.join(".latest.tmp");
    write_synced(&latest_tmp, format!("{name}\n").as_bytes())?;
    let latest = out.join(LATEST);
    std::fs::rename(&latest_tmp, &latest).map_err(|e| Error::io(&latest, e))?;
    sync_dir(out)?;
    Ok(dest)
}

/// The checkpoint that `out/latest` names. Also accepts a checkpoint directory itself.
pub fn latest_checkpoint(out: &Path) -> Result<PathBuf> {
    if out.join(STATE_FILE).is_file() {
        return Ok(out.to_path_buf());
    }
    let latest = out.join(LATEST);
    let name = std::fs::read_to_string(&latest).map_err(|e| Error::io(&latest, e))?;
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Error::format(
            &latest,
            format!("does not name a checkpoint: {name:?}"),
        ));
    }
    let dir = out.join(name);
    if !dir.join(STATE_FILE).is_file() {
        return Err(Error::format(
            &latest,
            format!("names {name}, which is not a complete checkpoint"),
        ));
    }
    Ok(dir)
}

/// Deletes the `.tmp-*` directories that an interrupted save left in `out`.
pub fn remove_stale_temps(out: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(".tmp-") {
            std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// The parameters of a checkpoint or model directory, as an arena.
pub fn read_params(dir: &Path) -> Result<ParamArena> {
    ParamArena::from_model(&Gpt2::load(dir)?)
}
