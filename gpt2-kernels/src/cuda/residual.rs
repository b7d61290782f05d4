//! Residual add on the GPU; the twin of [`crate::cpu::residual`].
//!
//! Shapes: all operands have the same length (elementwise).

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::elementwise;
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
    let n = out.len();
    if n == 0 {
        return Ok(());
    }
    let args = [out.arg(), a.arg(), b.arg(), Arg::U64(n as u64)];
    gpu.launch(&MODULE, FORWARD.of::<T>(), elementwise(n), &args)
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
    let n = dout.len();
    if n == 0 {
        return Ok(());
    }
    let args = [da.arg(), db.arg(), dout.arg(), Arg::U64(n as u64)];
    gpu.launch(&MODULE, BACKWARD.of::<T>(), elementwise(n), &args)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::FORWARD, super::BACKWARD]);
    }
}
