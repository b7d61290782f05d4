//! GELU, tanh approximation, exactly as GPT-2 (`gelu_new` in Hugging Face,
//! `F.gelu(x, approximate="tanh")` in PyTorch):
//! `gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
//!
//! Shapes: all operands have the same length (any shape, elementwise).
//!
//! The vector code is the SIMD layer's `gelu_in_place` (also used by the matmul
//! epilogue that fuses GELU into the MLP's first linear layer), computed as
//! `x / (1 + e^{−2u})` with `u` the tanh's argument.

use rayon::prelude::*;

use super::CHUNK;
use super::simd::Isa;
use crate::Result;
use crate::error::check_len;

/// `out = gelu(inp)`.
pub fn forward(isa: Isa, out: &mut [f32], inp: &[f32]) -> Result<()> {
    check_len("gelu::forward", "inp", inp.len(), out.len())?;
    out.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK))
        .for_each(|(o, x)| {
            o.copy_from_slice(x);
            isa.gelu_in_place(o);
        });
    Ok(())
}

/// `dinp += gelu'(inp) · dout`.
pub fn backward(isa: Isa, dinp: &mut [f32], inp: &[f32], dout: &[f32]) -> Result<()> {
    check_len("gelu::backward", "inp", inp.len(), dinp.len())?;
    check_len("gelu::backward", "dout", dout.len(), dinp.len())?;
    dinp.par_chunks_mut(CHUNK)
        .zip(inp.par_chunks(CHUNK).zip(dout.par_chunks(CHUNK)))
        .for_each(|(d, (x, g))| isa.gelu_backward(d, x, g));
    Ok(())
}

/// Naive GELU, generic over the float type (see [`super::real`]).
pub mod reference {
    use crate::Result;
    use crate::cpu::real::Real;
    use crate::error::check_len;

    /// `√(2/π)` and the cubic coefficient, in the reference's precision.
    fn consts<F: Real>() -> (F, F) {
        (
            F::from_f64((2.0 / std::f64::consts::PI).sqrt()),
            F::from_f64(0.044715),
        )
    }

    /// As [`super::forward`].
    pub fn forward<F: Real>(out: &mut [F], inp: &[F]) -> Result<()> {
        check_len("gelu::reference::forward", "inp", inp.len(), out.len())?;
        let (beta, kappa) = consts::<F>();
        let half = F::from_f64(0.5);
        for (o, &x) in out.iter_mut().zip(inp) {
            *o = half * x * (F::ONE + (beta * (x + kappa * x * x * x)).tanh());
        }
        Ok(())
    }

    /// As [`super::backward`]: the derivative of the forward above, by the product rule.
    pub fn backward<F: Real>(dinp: &mut [F], inp: &[F], dout: &[F]) -> Result<()> {
        check_len("gelu::reference::backward", "inp", inp.len(), dinp.len())?;
        check_len("gelu::reference::backward", "dout", dout.len(), dinp.len())?;
        let (beta, kappa) = consts::<F>();
        let half = F::from_f64(0.5);
        for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
            let t = (beta * (x + kappa * x * x * x)).tanh();
            let dinner = beta * (F::ONE + F::from_f64(3.0) * kappa * x * x);
            *d += g * (half * (F::ONE + t) + half * x * (F::ONE - t * t) * dinner);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's formula in f64, written as `x·σ(2u)`, which equals
    /// `0.5·x·(1 + tanh(u))` but keeps its digits where `1 + tanh(u)` cancels (x < −5).
    fn gelu_f64(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        x / (1.0 + (-2.0 * u).exp())
    }

    /// Every ISA matches GELU to 1e-6 relative per element, plus the error that rounding
    /// x itself to f32 causes (`ε·|x·gelu'(x)|`, ε = 2⁻²³: GELU's condition number grows
    /// like x² for x < 0, so no f32 implementation does better there), from deep
    /// negative inputs to large positive ones, with lengths that leave a scalar tail
    /// (and 1e-37 absolute: below f32's normal range GELU flushes to 0).
    #[test]
    fn forward_matches_the_tanh_formula() {
        let xs: Vec<f32> = (0..2403)
            .map(|i| -12.0 + i as f32 * 0.01)
            .chain([0.0, -0.0, 1e-20, -1e-20, 300.0, -300.0])
            .collect();
        for isa in Isa::available() {
            let mut got = vec![0.0; xs.len()];
            forward(isa, &mut got, &xs).unwrap();
            for (&x, &g) in xs.iter().zip(&got) {
                let (x64, h) = (x as f64, 1e-6);
                let (want, slope) = (
                    gelu_f64(x64),
                    (gelu_f64(x64 + h) - gelu_f64(x64 - h)) / (2.0 * h),
                );
                let tol = 1e-6 * want.abs() + f32::EPSILON as f64 * (x64 * slope).abs() + 1e-37;
                assert!(
                    (g as f64 - want).abs() <= tol,
                    "{isa}: gelu({x}) = {g:e}, want {want:e}"
                );
            }
        }
        // The sigmoid form is the tanh form, where the latter does not cancel.
        for x in [-3.0f64, -1.0, -0.1, 0.5, 2.0, 7.0] {
            let s = (2.0 / std::f64::consts::PI).sqrt();
            let tanh_form = 0.5 * x * (1.0 + (s * (x + 0.044715 * x * x * x)).tanh());
            assert!((gelu_f64(x) - tanh_form).abs() <= 1e-12 * tanh_form.abs());
        }
    }
}
