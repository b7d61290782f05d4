//! Residual connection: `out = a + b`; its backward passes `dout` to both branches.
//!
//! Shapes: all operands have the same length (elementwise).

use rayon::prelude::*;

use super::CHUNK;
use super::simd::Isa;
use crate::Result;
use crate::error::check_len;

/// `out = a + b`.
pub fn forward(isa: Isa, out: &mut [f32], a: &[f32], b: &[f32]) -> Result<()> {
    check_len("residual::forward", "a", a.len(), out.len())?;
    check_len("residual::forward", "b", b.len(), out.len())?;
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (x, y))| isa.add(o, x, y));
    Ok(())
}

/// `da += dout`, `db += dout`.
pub fn backward(isa: Isa, da: &mut [f32], db: &mut [f32], dout: &[f32]) -> Result<()> {
    check_len("residual::backward", "da", da.len(), dout.len())?;
    check_len("residual::backward", "db", db.len(), dout.len())?;
    da.par_chunks_mut(CHUNK)
        .zip(db.par_chunks_mut(CHUNK).zip(dout.par_chunks(CHUNK)))
        .for_each(|(x, (y, g))| {
            isa.axpy(x, 1.0, g);
            isa.axpy(y, 1.0, g);
        });
    Ok(())
}

/// Naive residual, generic over the float type (see [`super::real`]).
pub mod reference {
    use crate::Result;
    use crate::cpu::real::Real;
    use crate::error::check_len;

    /// As [`super::forward`].
    pub fn forward<F: Real>(out: &mut [F], a: &[F], b: &[F]) -> Result<()> {
        check_len("residual::reference::forward", "a", a.len(), out.len())?;
        check_len("residual::reference::forward", "b", b.len(), out.len())?;
        for i in 0..out.len() {
            out[i] = a[i] + b[i];
        }
        Ok(())
    }

    /// As [`super::backward`].
    pub fn backward<F: Real>(da: &mut [F], db: &mut [F], dout: &[F]) -> Result<()> {
        check_len("residual::reference::backward", "da", da.len(), dout.len())?;
        check_len("residual::reference::backward", "db", db.len(), dout.len())?;
        for i in 0..dout.len() {
            da[i] += dout[i];
            db[i] += dout[i];
        }
        Ok(())
    }
}
