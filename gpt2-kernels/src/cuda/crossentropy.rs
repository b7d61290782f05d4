//! Fused softmax + cross-entropy on the GPU; the twin of [`crate::cpu::crossentropy`].
//! One block per row; `targets` stay on the host, are checked there, and are uploaded.
//!
//! Shapes: `logits` `(N, Vp)` with `Vp = logits.len() / N ≥ v` (the padded columns are
//! ignored, and zeroed by [`forward_backward`]); `targets`, `losses` `(N)`.

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::{blocks, dim};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::cpu::crossentropy as cpu;

static MODULE: Module = ptx_module!("crossentropy");
const FORWARD: Kernels = kernels!("crossentropy_forward");
const FORWARD_BACKWARD: Kernels = kernels!("crossentropy_forward_backward");

/// Checks the shapes and targets as the CPU twin does; returns `(N, Vp)` as kernel sizes.
fn check(
    op: &'static str,
    losses: usize,
    logits: usize,
    targets: &[u32],
    v: usize,
) -> Result<(u32, u32)> {
    let vp = cpu::check(op, losses, logits, targets, v)?;
    Ok((dim(op, "rows", losses)?, dim(op, "Vp", vp)?))
}

/// `losses[n] = −log softmax(logits[n, ..v])[targets[n]]`.
pub fn forward<T: GpuFloat>(
    gpu: &Gpu,
    losses: &mut GpuBuf<f32>,
    logits: &GpuBuf<T>,
    targets: &[u32],
    v: usize,
) -> Result<()> {
    let op = "cuda::crossentropy::forward";
    let (n, vp) = check(op, losses.len(), logits.len(), targets, v)?;
    if n == 0 {
        return Ok(());
    }
    let targets = gpu.upload(targets)?;
    let args = [
        losses.arg(),
        logits.arg(),
        targets.arg(),
        Arg::U32(v as u32),
        Arg::U32(vp),
    ];
    gpu.launch(&MODULE, FORWARD.of::<T>(), blocks(n), &args)
}

/// The loss, and `logits ← (softmax(logits) − onehot(targets))·dloss` in place (zero in
/// the padded columns). `dloss` is the gradient of the final loss with respect to each
/// row's loss, e.g. `1/N` for a mean.
pub fn forward_backward<T: GpuFloat>(
    gpu: &Gpu,
    losses: &mut GpuBuf<f32>,
    logits: &mut GpuBuf<T>,
    targets: &[u32],
    v: usize,
    dloss: f32,
) -> Result<()> {
    let op = "cuda::crossentropy::forward_backward";
    let (n, vp) = check(op, losses.len(), logits.len(), targets, v)?;
    if n == 0 {
        return Ok(());
    }
    let targets = gpu.upload(targets)?;
    let args = [
        losses.arg(),
        logits.arg(),
        targets.arg(),
        Arg::U32(v as u32),
        Arg::U32(vp),
        Arg::F32(dloss),
    ];
    gpu.launch(&MODULE, FORWARD_BACKWARD.of::<T>(), blocks(n), &args)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::FORWARD_BACKWARD]);
    }
}
