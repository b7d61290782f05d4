//! Layer normalisation on the GPU; the twin of [`crate::cpu::layernorm`] (biased
//! variance, `eps = 1e-5` inside the square root).
//!
//! Shapes: `inp`, `out`, `dout`, `dinp` `(N, C)`; `weight`, `bias`, `dweight`, `dbias`
//! `(C)`; `mean`, `rstd` `(N)` (f32 whatever the element type). `C = weight.len()`.
//!
//! The forward runs one warp per row. The backward's `dweight`/`dbias` are sums over all
//! rows: one block per group of 32 rows writes its partial sums to a
//! scratch buffer, and a second kernel adds the partials in group order — deterministic,
//! without atomics.

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::{BLOCK, blocks, dim};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::cpu::layernorm as cpu;

static MODULE: Module = ptx_module!("layernorm");
const FORWARD: Kernels = kernels!("layernorm_forward");
const BACKWARD: Kernels = kernels!("layernorm_backward");
const BACKWARD_REDUCE: Kernels = kernels!("layernorm_backward_reduce");

/// Rows per block of the backward (`ROWS` in `layernorm.cu`).
const ROWS_PER_BLOCK: usize = 32;
/// Rows per block of the forward: one per warp.
const FORWARD_ROWS_PER_BLOCK: usize = BLOCK as usize / 32;

/// Checks that the CPU-checked sizes `(N, C)` fit the kernels' 32-bit sizes.
fn dims(op: &'static str, (n, c): (usize, usize)) -> Result<(usize, usize)> {
    dim(op, "N", n)?;
    dim(op, "C", c)?;
    Ok((n, c))
}

/// `out = layernorm(inp)`, saving each row's `mean` and `rstd`.
pub fn forward<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    mean: &mut GpuBuf<f32>,
    rstd: &mut GpuBuf<f32>,
    inp: &GpuBuf<T>,
    weight: &GpuBuf<T>,
    bias: &GpuBuf<T>,
) -> Result<()> {
    let op = "cuda::layernorm::forward";
    let stats = (mean.len(), rstd.len());
    let params = (weight.len(), bias.len());
    let (n, c) = dims(
        op,
        cpu::check_forward(op, out.len(), stats, inp.len(), params)?,
    )?;
    if n == 0 {
        return Ok(());
    }
    let args = [
        out.arg(),
        mean.arg(),
        rstd.arg(),
        inp.arg(),
        weight.arg(),
        bias.arg(),
        Arg::U32(n as u32),
        Arg::U32(c as u32),
    ];
    let grid = n.div_ceil(FORWARD_ROWS_PER_BLOCK) as u32;
    gpu.launch(&MODULE, FORWARD.of::<T>(), blocks(grid), &args)
}

/// Accumulates the gradients of `inp`, `weight` and `bias`.
#[allow(clippy::too_many_arguments)] // the op's operands, as the CPU twin
pub fn backward<T: GpuFloat>(
    gpu: &Gpu,
    dinp: &mut GpuBuf<T>,
    dweight: &mut GpuBuf<T>,
    dbias: &mut GpuBuf<T>,
    dout: &GpuBuf<T>,
    inp: &GpuBuf<T>,
    weight: &GpuBuf<T>,
    mean: &GpuBuf<f32>,
    rstd: &GpuBuf<f32>,
) -> Result<()> {
    let op = "cuda::layernorm::backward";
    let stats = (mean.len(), rstd.len());
    let grads = (dinp.len(), dweight.len(), dbias.len());
    let checked = cpu::check_backward(op, grads, dout.len(), inp.len(), weight.len(), stats)?;
    let (n, c) = dims(op, checked)?;
    if n == 0 || c == 0 {
        return Ok(());
    }
    let groups = n.div_ceil(ROWS_PER_BLOCK);
    let part_dweight = gpu.alloc::<f32>(groups * c)?;
    let part_dbias = gpu.alloc::<f32>(groups * c)?;
    let (n, c, groups) = (n as u32, c as u32, groups as u32);
    let args = [
        dinp.arg(),
        part_dweight.arg(),
        part_dbias.arg(),
        dout.arg(),
        inp.arg(),
        weight.arg(),
        mean.arg(),
        rstd.arg(),
        Arg::U32(n),
        Arg::U32(c),
    ];
    gpu.launch(&MODULE, BACKWARD.of::<T>(), blocks(groups), &args)?;
    let args = [
        dweight.arg(),
        dbias.arg(),
        part_dweight.arg(),
        part_dbias.arg(),
        Arg::U32(groups),
        Arg::U32(c),
    ];
    let grid = c.div_ceil(BLOCK);
    gpu.launch(&MODULE, BACKWARD_REDUCE.of::<T>(), blocks(grid), &args)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::BACKWARD, super::BACKWARD_REDUCE]);
    }
}
