//! Element type conversions on the GPU; the twin of [`crate::cpu::cast`]'s f32 ↔ bf16.
//! `f32 → bf16` rounds to nearest even (NaNs stay NaN), `bf16 → f32` is exact.

use half::bf16;

use super::module::{Module, ptx_module};
use super::{Gpu, GpuBuf, GpuElem};
use crate::Result;
use crate::error::check_len;

static MODULE: Module = ptx_module!("cast");
const F32_TO_BF16: &str = "cast_f32_to_bf16";
const BF16_TO_F32: &str = "cast_bf16_to_f32";

fn launch<A: GpuElem, B: GpuElem>(
    gpu: &Gpu,
    (op, kernel): (&'static str, &'static str),
    out: &mut GpuBuf<A>,
    inp: &GpuBuf<B>,
) -> Result<()> {
    check_len(op, "inp", inp.len(), out.len())?;
    gpu.launch_elementwise(&MODULE, kernel, &[out.arg(), inp.arg()], out.len())
}

/// `out = bf16(inp)`, rounding to nearest even.
pub fn f32_to_bf16(gpu: &Gpu, out: &mut GpuBuf<bf16>, inp: &GpuBuf<f32>) -> Result<()> {
    launch(gpu, ("cuda::cast::f32_to_bf16", F32_TO_BF16), out, inp)
}

/// `out = f32(inp)` (exact).
pub fn bf16_to_f32(gpu: &Gpu, out: &mut GpuBuf<f32>, inp: &GpuBuf<bf16>) -> Result<()> {
    launch(gpu, ("cuda::cast::bf16_to_f32", BF16_TO_F32), out, inp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        for k in [super::F32_TO_BF16, super::BF16_TO_F32] {
            assert!(super::MODULE.params(k).is_some(), "{k}");
        }
    }
}
