//! Row softmax on the GPU; the twin of [`crate::cpu::softmax`]. One block per row.
//!
//! Shapes: `inp`, `out`, `dout`, `dinp` `(N, V)`.

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::{blocks, dim};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::cpu::softmax as cpu;
use crate::error::check_len;

static MODULE: Module = ptx_module!("softmax");
const FORWARD: Kernels = kernels!("softmax_forward");
const BACKWARD: Kernels = kernels!("softmax_backward");

/// `out = softmax(inp)` over each row of `v`.
pub fn forward<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    inp: &GpuBuf<T>,
    v: usize,
) -> Result<()> {
    let op = "cuda::softmax::forward";
    let n = cpu::check(op, ("inp", inp.len()), ("out", out.len()), v)?;
    if n == 0 {
        return Ok(());
    }
    let args = [out.arg(), inp.arg(), Arg::U32(dim(op, "v", v)?)];
    gpu.launch(
        &MODULE,
        FORWARD.of::<T>(),
        blocks(dim(op, "rows", n)?),
        &args,
    )
}

/// `dinp += out ⊙ (dout − ⟨out, dout⟩)` per row.
pub fn backward<T: GpuFloat>(
    gpu: &Gpu,
    dinp: &mut GpuBuf<T>,
    out: &GpuBuf<T>,
    dout: &GpuBuf<T>,
    v: usize,
) -> Result<()> {
    let op = "cuda::softmax::backward";
    let n = cpu::check(op, ("out", out.len()), ("dout", dout.len()), v)?;
    check_len(op, "dinp", dinp.len(), out.len())?;
    if n == 0 {
        return Ok(());
    }
    let args = [
        dinp.arg(),
        out.arg(),
        dout.arg(),
        Arg::U32(dim(op, "v", v)?),
    ];
    gpu.launch(
        &MODULE,
        BACKWARD.of::<T>(),
        blocks(dim(op, "rows", n)?),
        &args,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::BACKWARD]);
    }
}
