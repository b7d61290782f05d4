//! GELU, tanh approximation, exactly as GPT-2 (`gelu_new` in Hugging Face,
//! `F.gelu(x, approximate="tanh")` in PyTorch):
//! `gelu(x) = ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
//!
//! Shapes: all operands have the same length (any shape, elementwise).

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
        .for_each(|(o, x)| isa.gelu(o, x));
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
