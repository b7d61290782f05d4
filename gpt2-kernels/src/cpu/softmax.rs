//! Row softmax: `out[n, j] = e^{inp[n, j]} / Σ_k e^{inp[n, k]}` (computed with the row
//! maximum subtracted, so it never overflows).
//!
//! Shapes: `inp`, `out`, `dout`, `dinp` `(N, V)`.

use rayon::prelude::*;

use super::rows_of;
use super::simd::Isa;
use crate::Result;
use crate::error::check_len;

/// Checks that `a` and `b` are the same whole number of rows of `v`; returns `N`.
pub(crate) fn check(
    op: &'static str,
    (a_name, a): (&'static str, usize),
    (b_name, b): (&'static str, usize),
    v: usize,
) -> Result<usize> {
    let n = rows_of(op, a_name, a, v)?;
    check_len(op, b_name, b, a)?;
    Ok(n)
}

/// `out = softmax(inp)` over each row of `v`.
pub fn forward(isa: Isa, out: &mut [f32], inp: &[f32], v: usize) -> Result<()> {
    check(
        "softmax::forward",
        ("inp", inp.len()),
        ("out", out.len()),
        v,
    )?;
    out.par_chunks_mut(v)
        .zip(inp.par_chunks(v))
        .with_min_len(4)
        .for_each(|(o, x)| {
            o.copy_from_slice(x);
            let s = isa.exp_shift(o, isa.max(x));
            isa.scale(o, 1.0 / s);
        });
    Ok(())
}

/// `dinp += out ⊙ (dout − ⟨out, dout⟩)` per row: the softmax's vector–Jacobian product.
pub fn backward(isa: Isa, dinp: &mut [f32], out: &[f32], dout: &[f32], v: usize) -> Result<()> {
    let op = "softmax::backward";
    check(op, ("out", out.len()), ("dout", dout.len()), v)?;
    check_len(op, "dinp", dinp.len(), out.len())?;
    dinp.par_chunks_mut(v)
        .zip(out.par_chunks(v).zip(dout.par_chunks(v)))
        .with_min_len(4)
        .for_each_init(
            || vec![0.0f32; v],
            |tmp, (di, (p, g))| {
                tmp.copy_from_slice(g);
                isa.softmax_vjp(tmp, p, isa.dot(p, g));
                isa.axpy(di, 1.0, tmp);
            },
        );
    Ok(())
}

/// Naive softmax, generic over the float type (see [`super::real`]).
pub mod reference {
    use super::check;
    use crate::Result;
    use crate::cpu::real::Real;
    use crate::error::check_len;

    /// As [`super::forward`].
    pub fn forward<F: Real>(out: &mut [F], inp: &[F], v: usize) -> Result<()> {
        check(
            "softmax::reference::forward",
            ("inp", inp.len()),
            ("out", out.len()),
            v,
        )?;
        for (o, x) in out.chunks_mut(v).zip(inp.chunks(v)) {
            let m = x.iter().fold(F::NEG_INFINITY, |m, &a| m.max(a));
            let mut s = F::ZERO;
            for (oj, &xj) in o.iter_mut().zip(x) {
                *oj = (xj - m).exp();
                s += *oj;
            }
            for oj in o.iter_mut() {
                *oj = *oj / s;
            }
        }
        Ok(())
    }

    /// As [`super::backward`]: `dinp_j += Σ_k dout_k · ∂out_k/∂inp_j`, with the full
    /// Jacobian `∂out_k/∂inp_j = out_k (δ_kj − out_j)`.
    pub fn backward<F: Real>(dinp: &mut [F], out: &[F], dout: &[F], v: usize) -> Result<()> {
        let op = "softmax::reference::backward";
        check(op, ("out", out.len()), ("dout", dout.len()), v)?;
        check_len(op, "dinp", dinp.len(), out.len())?;
        for ((di, p), g) in dinp.chunks_mut(v).zip(out.chunks(v)).zip(dout.chunks(v)) {
            for j in 0..v {
                for k in 0..v {
                    let delta = if j == k { F::ONE } else { F::ZERO };
                    di[j] += g[k] * p[k] * (delta - p[j]);
                }
            }
        }
        Ok(())
    }
}
