//! Inverted dropout on the GPU; the twin of [`crate::cpu::dropout`]. Element `i` is kept
//! iff `rng::uniform(seed, offset + i) >= p`: the kernels port [`crate::rng`] bit for
//! bit, so the GPU's mask is the CPU's.
//!
//! Shapes: all operands have the same length (elementwise).

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::elementwise;
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::cpu::dropout as cpu;
use crate::error::check_len;

static MODULE: Module = ptx_module!("dropout");
const FORWARD: Kernels = kernels!("dropout_forward");
const BACKWARD: Kernels = kernels!("dropout_backward");

/// The launch shared by both passes: `(x, y)` are `(out, inp)` or `(dinp, dout)`.
fn launch<T: GpuFloat>(
    gpu: &Gpu,
    kernels: Kernels,
    (x, y): (&mut GpuBuf<T>, &GpuBuf<T>),
    (p, scale): (f32, f32),
    (seed, offset): (u64, u64),
) -> Result<()> {
    let n = x.len();
    if n == 0 {
        return Ok(());
    }
    let args = [
        x.arg(),
        y.arg(),
        Arg::U64(n as u64),
        Arg::F32(p),
        Arg::F32(scale),
        Arg::U64(seed),
        Arg::U64(offset),
    ];
    gpu.launch(&MODULE, kernels.of::<T>(), elementwise(n), &args)
}

/// `out = mask ⊙ inp / (1 − p)`.
pub fn forward<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    inp: &GpuBuf<T>,
    p: f32,
    seed: u64,
    offset: u64,
) -> Result<()> {
    let op = "cuda::dropout::forward";
    check_len(op, "inp", inp.len(), out.len())?;
    let scale = cpu::keep_scale(op, p)?;
    launch(gpu, FORWARD, (out, inp), (p, scale), (seed, offset))
}

/// `dinp += mask ⊙ dout / (1 − p)`, with the mask recomputed from `(seed, offset)`.
pub fn backward<T: GpuFloat>(
    gpu: &Gpu,
    dinp: &mut GpuBuf<T>,
    dout: &GpuBuf<T>,
    p: f32,
    seed: u64,
    offset: u64,
) -> Result<()> {
    let op = "cuda::dropout::backward";
    check_len(op, "dout", dout.len(), dinp.len())?;
    let scale = cpu::keep_scale(op, p)?;
    launch(gpu, BACKWARD, (dinp, dout), (p, scale), (seed, offset))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::BACKWARD]);
    }
}
