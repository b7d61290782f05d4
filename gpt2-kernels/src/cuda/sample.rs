//! Choosing the next token on the GPU; the twin of `gpt2_core::sample::Sampler::sample`
//! (the CPU sampler lives with the model, in gpt2-core): repetition penalty, temperature,
//! top-k, top-p, then a draw, in Hugging Face's order, one block per row. top-k and top-p
//! are radix selects over the logits, not sorts (`kernels/sample.cu` says how); only the
//! chosen ids come back to the host.
//!
//! The uniform numbers of the draws come from the caller (the CPU sampler's own random
//! stream), so the GPU picks the token the CPU sampler would pick from the same logits.
//! The sums are f64 on both, added in another order: they can disagree only when a draw
//! or a top-p boundary falls within rounding of a token's edge.
//!
//! Shapes: `logits` `(rows, stride)`, whose first `v` columns are the candidates (the
//! rest, e.g. the padding of a vocabulary rounded up to 64, are never read).

use cudarc::driver::LaunchConfig;

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::dim;
use super::{Gpu, GpuBuf, GpuFloat};
use crate::error::check_len;
use crate::{KernelError, Result};

static MODULE: Module = ptx_module!("sample");
const SAMPLE: Kernels = kernels!("sample_rows");

/// Threads per block of the kernel (its `SAMPLE_BLOCK`).
const THREADS: u32 = 512;
/// Most candidates per row (the kernel's `SAMPLE_MAX_V`: its bitmap of seen ids).
pub const MAX_V: usize = 1 << 17;
/// The kernel's ids for "the row has a NaN" and "every token was filtered out".
const NAN_ID: u32 = u32::MAX;
const EMPTY_ID: u32 = u32::MAX - 1;

/// How tokens are chosen, as `gpt2_core::sample::SamplingParams`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Filters {
    /// Divides the logits; 0 means greedy (the argmax after the repetition penalty).
    pub temperature: f32,
    /// Keep only the k most likely tokens (ties with the k-th too); 0 = off.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 = off.
    pub top_p: f32,
    /// CTRL's penalty on every seen token's logit (divides if positive, multiplies if
    /// not); 1 = off.
    pub repetition_penalty: f32,
}

impl Filters {
    fn check(&self, op: &'static str) -> Result<()> {
        let ok = self.temperature.is_finite()
            && self.temperature >= 0.0
            && self.top_p > 0.0
            && self.top_p <= 1.0
            && self.repetition_penalty.is_finite()
            && self.repetition_penalty > 0.0;
        if ok {
            Ok(())
        } else {
            Err(KernelError::Shape {
                op,
                msg: format!(
                    "bad filters {self:?}: need a finite temperature ≥ 0, 0 < top_p ≤ 1 and a finite repetition_penalty > 0"
                ),
            })
        }
    }
}

/// One token per row of `logits`: row `r` is filtered with `filters` (its repetition
/// penalty over the ids in `histories[r]`; ids ≥ `v` and repeats are harmless) and drawn
/// with `uniforms[r]` ∈ [0, 1) (not used when greedy). Errors, as the CPU sampler: a NaN
/// among a row's candidates; every token filtered out (all `-inf`).
pub fn sample<T: GpuFloat>(
    gpu: &Gpu,
    logits: &GpuBuf<T>,
    stride: usize,
    v: usize,
    filters: &Filters,
    histories: &[&[u32]],
    uniforms: &[f64],
) -> Result<Vec<u32>> {
    let op = "cuda::sample::sample";
    filters.check(op)?;
    let rows = histories.len();
    check_len(op, "uniforms", uniforms.len(), rows)?;
    check_len(op, "logits", logits.len(), rows * stride)?;
    if v == 0 || v > stride || v > MAX_V {
        return Err(KernelError::Shape {
            op,
            msg: format!(
                "v = {v} candidates per row: need 1 ≤ v ≤ stride ({stride}) and v ≤ {MAX_V}"
            ),
        });
    }
    if let Some(u) = uniforms.iter().find(|u| !(0.0..1.0).contains(*u)) {
        return Err(KernelError::Shape {
            op,
            msg: format!("uniform number {u} is not in [0, 1)"),
        });
    }
    if rows == 0 {
        return Ok(Vec::new());
    }
    // Row r's seen ids are seen[start[r]..start[r + 1]]; the kernel reads them only for a
    // penalty, so without one nothing of the histories goes up.
    let penalised = filters.repetition_penalty != 1.0;
    let seen: Vec<u32> = if penalised {
        histories.concat()
    } else {
        Vec::new()
    };
    let start: Vec<u32> = std::iter::once(0)
        .chain(histories.iter().scan(0, |n, h| {
            *n += if penalised { h.len() } else { 0 };
            Some(*n)
        }))
        .map(|n| dim(op, "history length", n))
        .collect::<Result<_>>()?;
    // top_k ≥ v keeps everything: off.
    let top_k = if filters.top_k >= v {
        0
    } else {
        filters.top_k as u32
    };
    let (seen, start, uniforms) = (
        gpu.upload(&seen)?,
        gpu.upload(&start)?,
        gpu.upload(uniforms)?,
    );
    let out = gpu.alloc::<u32>(rows)?;
    let args = [
        out.arg(),
        logits.arg(),
        Arg::U32(v as u32),
        Arg::U32(dim(op, "stride", stride)?),
        seen.arg(),
        start.arg(),
        Arg::F32(filters.repetition_penalty),
        Arg::F32(filters.temperature),
        Arg::U32(top_k),
        Arg::F32(filters.top_p),
        uniforms.arg(),
    ];
    let cfg = LaunchConfig {
        grid_dim: (dim(op, "rows", rows)?, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    gpu.launch(&MODULE, SAMPLE.of::<T>(), cfg, &args)?;
    let ids = out.to_vec()?;
    for (row, &id) in ids.iter().enumerate() {
        let msg = match id {
            NAN_ID => "the logits contain NaN",
            EMPTY_ID => "every token was filtered out",
            _ => continue,
        };
        return Err(KernelError::Value {
            op,
            msg: format!("row {row}: {msg}"),
        });
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::SAMPLE]);
    }
}
