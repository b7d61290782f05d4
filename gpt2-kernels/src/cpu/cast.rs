//! Conversions between `f32` and the 16-bit floats `bf16` and `f16`, rounding to
//! nearest even, bit-for-bit as the `half` crate (NaN stays NaN, overflow gives ±∞).
//!
//! `bf16` is the top half of an `f32`, so both directions are integer bit manipulation
//! ([`Isa`]'s AVX2 path does 8 at a time). `f16` goes through `half`'s slice
//! conversions, which use the F16C instructions when the CPU has them.
//!
//! Shapes: `out` and `inp` have the same length.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use super::CHUNK;
use super::simd::Isa;
use crate::Result;
use crate::error::check_len;

/// `out[i] = bf16(inp[i])`.
pub fn f32_to_bf16(isa: Isa, out: &mut [bf16], inp: &[f32]) -> Result<()> {
    check_len("cast::f32_to_bf16", "inp", inp.len(), out.len())?;
    out.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK))
        .for_each(|(o, x)| isa.f32_to_bf16(o.reinterpret_cast_mut(), x));
    Ok(())
}

/// `out[i] = f32(inp[i])` (exact).
pub fn bf16_to_f32(isa: Isa, out: &mut [f32], inp: &[bf16]) -> Result<()> {
    check_len("cast::bf16_to_f32", "inp", inp.len(), out.len())?;
    out.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK))
        .for_each(|(o, h)| isa.bf16_to_f32(o, h.reinterpret_cast()));
    Ok(())
}

/// `out[i] = f16(inp[i])`. `isa` is unused: `half` picks F16C itself.
pub fn f32_to_f16(_isa: Isa, out: &mut [f16], inp: &[f32]) -> Result<()> {
    check_len("cast::f32_to_f16", "inp", inp.len(), out.len())?;
    out.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK))
        .for_each(|(o, x)| o.convert_from_f32_slice(x));
    Ok(())
}

/// `out[i] = f32(inp[i])` (exact). `isa` is unused: `half` picks F16C itself.
pub fn f16_to_f32(_isa: Isa, out: &mut [f32], inp: &[f16]) -> Result<()> {
    check_len("cast::f16_to_f32", "inp", inp.len(), out.len())?;
    out.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK))
        .for_each(|(o, h)| h.convert_to_f32_slice(o));
    Ok(())
}

/// Element-by-element conversions with `half`'s scalar functions.
pub mod reference {
    use half::{bf16, f16};

    use crate::Result;
    use crate::error::check_len;

    /// As [`super::f32_to_bf16`].
    pub fn f32_to_bf16(out: &mut [bf16], inp: &[f32]) -> Result<()> {
        check_len("cast::reference::f32_to_bf16", "inp", inp.len(), out.len())?;
        out.iter_mut()
            .zip(inp)
            .for_each(|(o, &x)| *o = bf16::from_f32(x));
        Ok(())
    }

    /// As [`super::bf16_to_f32`].
    pub fn bf16_to_f32(out: &mut [f32], inp: &[bf16]) -> Result<()> {
        check_len("cast::reference::bf16_to_f32", "inp", inp.len(), out.len())?;
        out.iter_mut().zip(inp).for_each(|(o, &h)| *o = h.to_f32());
        Ok(())
    }

    /// As [`super::f32_to_f16`].
    pub fn f32_to_f16(out: &mut [f16], inp: &[f32]) -> Result<()> {
        check_len("cast::reference::f32_to_f16", "inp", inp.len(), out.len())?;
        out.iter_mut()
            .zip(inp)
            .for_each(|(o, &x)| *o = f16::from_f32(x));
        Ok(())
    }

    /// As [`super::f16_to_f32`].
    pub fn f16_to_f32(out: &mut [f32], inp: &[f16]) -> Result<()> {
        check_len("cast::reference::f16_to_f32", "inp", inp.len(), out.len())?;
        out.iter_mut().zip(inp).for_each(|(o, &h)| *o = h.to_f32());
        Ok(())
    }
}
