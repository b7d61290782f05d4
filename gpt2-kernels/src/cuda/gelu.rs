//! GELU (tanh approximation) on the GPU; the twin of [`crate::cpu::gelu`].
//!
//! Shapes: all operands have the same length (elementwise).

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::elementwise;
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::error::check_len;

static MODULE: Module = ptx_module!("gelu");
const FORWARD: Kernels = kernels!("gelu_forward");
const BACKWARD: Kernels = kernels!("gelu_backward");

/// `out = gelu(inp)`.
pub fn forward<T: GpuFloat>(gpu: &Gpu, out: &mut GpuBuf<T>, inp: &GpuBuf<T>) -> Result<()> {
    check_len("cuda::gelu::forward", "inp", inp.len(), out.len())?;
    let n = out.len();
    if n == 0 {
        return Ok(());
    }
    let args = [out.arg(), inp.arg(), Arg::U64(n as u64)];
    gpu.launch(&MODULE, FORWARD.of::<T>(), elementwise(n), &args)
}

/// `dinp += gelu'(inp) · dout`.
pub fn backward<T: GpuFloat>(
    gpu: &Gpu,
    dinp: &mut GpuBuf<T>,
    inp: &GpuBuf<T>,
    dout: &GpuBuf<T>,
) -> Result<()> {
    check_len("cuda::gelu::backward", "inp", inp.len(), dinp.len())?;
    check_len("cuda::gelu::backward", "dout", dout.len(), dinp.len())?;
    let n = dinp.len();
    if n == 0 {
        return Ok(());
    }
    let args = [dinp.arg(), inp.arg(), dout.arg(), Arg::U64(n as u64)];
    gpu.launch(&MODULE, BACKWARD.of::<T>(), elementwise(n), &args)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::BACKWARD]);
    }
}
