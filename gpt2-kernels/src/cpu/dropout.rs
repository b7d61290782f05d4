//! Inverted dropout with a counter-based mask: element `i` is kept iff
//! `rng::uniform(seed, offset + i) >= p`, and kept values are scaled by `1/(1 − p)`.
//!
//! The mask is a pure function of `(seed, offset + i)`, so the backward recomputes it
//! instead of storing it, any thread can do any element, and a CUDA kernel using
//! [`crate::rng`] draws the same mask. The caller gives each dropout site its own
//! `offset` range (e.g. layer index × tensor size). `p == 0` copies (inference).
//!
//! The work is the 64-bit integer hash, which AVX2 cannot vectorise (it has no 64-bit
//! multiply), so both instruction sets run the same scalar loop; `isa` is taken for
//! the uniform kernel signature.
//!
//! Shapes: all operands have the same length (elementwise).

use rayon::prelude::*;

use super::CHUNK;
use super::simd::Isa;
use crate::error::check_len;
use crate::rng;
use crate::{KernelError, Result};

/// Checks `p ∈ [0, 1)` and returns the scale `1/(1 − p)` of kept elements.
pub(crate) fn keep_scale(op: &'static str, p: f32) -> Result<f32> {
    if !(0.0..1.0).contains(&p) {
        return Err(KernelError::Shape {
            op,
            msg: format!("dropout probability {p} is not in [0, 1)"),
        });
    }
    Ok(1.0 / (1.0 - p))
}

/// Whether element `i` survives.
#[inline]
pub(crate) fn kept(p: f32, seed: u64, offset: u64, i: usize) -> bool {
    rng::uniform(seed, offset.wrapping_add(i as u64)) >= p
}

/// `out = mask ⊙ inp / (1 − p)`.
pub fn forward(
    _isa: Isa,
    out: &mut [f32],
    inp: &[f32],
    p: f32,
    seed: u64,
    offset: u64,
) -> Result<()> {
    let op = "dropout::forward";
    check_len(op, "inp", inp.len(), out.len())?;
    let scale = keep_scale(op, p)?;
    if p == 0.0 {
        out.copy_from_slice(inp);
        return Ok(());
    }
    out.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(k, (o, x))| {
            for (j, (o, &x)) in o.iter_mut().zip(x).enumerate() {
                *o = if kept(p, seed, offset, k * CHUNK + j) {
                    x * scale
                } else {
                    0.0
                };
            }
        });
    Ok(())
}

/// `dinp += mask ⊙ dout / (1 − p)`, with the mask recomputed from `(seed, offset)`.
pub fn backward(
    _isa: Isa,
    dinp: &mut [f32],
    dout: &[f32],
    p: f32,
    seed: u64,
    offset: u64,
) -> Result<()> {
    let op = "dropout::backward";
    check_len(op, "dout", dout.len(), dinp.len())?;
    let scale = keep_scale(op, p)?;
    dinp.par_chunks_mut(CHUNK)
        .zip(dout.par_chunks(CHUNK))
        .enumerate()
        .for_each(|(k, (d, g))| {
            for (j, (d, &g)) in d.iter_mut().zip(g).enumerate() {
                if kept(p, seed, offset, k * CHUNK + j) {
                    *d += g * scale;
                }
            }
        });
    Ok(())
}

/// Naive dropout, generic over the float type (see [`super::real`]).
pub mod reference {
    use super::{keep_scale, kept};
    use crate::Result;
    use crate::cpu::real::Real;
    use crate::error::check_len;

    /// As [`super::forward`].
    pub fn forward<F: Real>(
        out: &mut [F],
        inp: &[F],
        p: f32,
        seed: u64,
        offset: u64,
    ) -> Result<()> {
        let op = "dropout::reference::forward";
        check_len(op, "inp", inp.len(), out.len())?;
        let scale = F::from_f32(keep_scale(op, p)?);
        for i in 0..out.len() {
            out[i] = if kept(p, seed, offset, i) {
                inp[i] * scale
            } else {
                F::ZERO
            };
        }
        Ok(())
    }

    /// As [`super::backward`].
    pub fn backward<F: Real>(
        dinp: &mut [F],
        dout: &[F],
        p: f32,
        seed: u64,
        offset: u64,
    ) -> Result<()> {
        let op = "dropout::reference::backward";
        check_len(op, "dout", dout.len(), dinp.len())?;
        let scale = F::from_f32(keep_scale(op, p)?);
        for i in 0..dinp.len() {
            if kept(p, seed, offset, i) {
                dinp[i] += dout[i] * scale;
            }
        }
        Ok(())
    }
}
