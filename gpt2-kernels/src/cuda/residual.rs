//! Residual add on the GPU; the twin of [`crate::cpu::residual`].
//!
//! Shapes: all operands have the same length (elementwise).

use super::module::{Kernels, Module, kernels, ptx_module};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::error::check_len;

static MODULE: Module = ptx_module!("residual");
const FORWARD: Kernels = kernels!("residual_forward");
const BACKWARD: Kernels = kernels!("residual_backward");

/// `out = a + b`.
pub fn forward<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    a: &GpuBuf<T>,
    b: &GpuBuf<T>,
) -> Result<()> {
    check_len("cuda::residual::forward", "a", a.len(), out.len())?;
    check_len("cuda::residual::forward", "b", b.len(), out.len())?;
    let buffers = [out.arg(), a.arg(), b.arg()];
    gpu.launch_elementwise(&MODULE, FORWARD.of::<T>(), &buffers, out.len())
}

/// `da += dout`, `db += dout`.
pub fn backward<T: GpuFloat>(
    gpu: &Gpu,
    da: &mut GpuBuf<T>,
    db: &mut GpuBuf<T>,
    dout: &GpuBuf<T>,
) -> Result<()> {
    check_len("cuda::residual::backward", "da", da.len(), dout.len())?;
    check_len("cuda::residual::backward", "db", db.len(), dout.len())?;
    let buffers = [da.arg(), db.arg(), dout.arg()];
    gpu.launch_elementwise(&MODULE, BACKWARD.of::<T>(), &buffers, dout.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::BACKWARD]);
    }
}
