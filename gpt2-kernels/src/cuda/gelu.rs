//! GELU (tanh approximation) on the GPU; the twin of [`crate::cpu::gelu`].
//!
//! Shapes: all operands have the same length (elementwise).

use super::module::{Kernels, Module, kernels, ptx_module};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::error::check_len;

static MODULE: Module = ptx_module!("gelu");
const FORWARD: Kernels = kernels!("gelu_forward");
const BACKWARD: Kernels = kernels!("gelu_backward");

/// `out = gelu(inp)`.
pub fn forward<T: GpuFloat>(gpu: &Gpu, out: &mut GpuBuf<T>, inp: &GpuBuf<T>) -> Result<()> {
    check_len("cuda::gelu::forward", "inp", inp.len(), out.len())?;
    let buffers = [out.arg(), inp.arg()];
    gpu.launch_elementwise(&MODULE, FORWARD.of::<T>(), &buffers, out.len())
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
    let buffers = [dinp.arg(), inp.arg(), dout.arg()];
    gpu.launch_elementwise(&MODULE, BACKWARD.of::<T>(), &buffers, dinp.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::BACKWARD]);
    }
}
