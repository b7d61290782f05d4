//! Layer normalisation over the last dimension, as `torch.nn.LayerNorm` (biased
//! variance, `eps` inside the square root):
//! `out = (x − mean)·rstd·weight + bias` with `rstd = 1/√(var + EPS)`.
//!
//! Shapes: `inp`, `out`, `dout`, `dinp` `(N, C)`; `weight`, `bias` `(C)`; `mean`,
//! `rstd` `(N)` (saved by the forward for the backward). `C = weight.len()`.
//!
//! The forward computes the variance in two passes (`Σ(x − mean)²`), which does not
//! cancel like `E[x²] − mean²`. The backward's `dweight`/`dbias` are sums over rows:
//! rows are split into fixed groups of 32, each task sums its group,
//! and the group sums are added in order — the same result on any pool.

use rayon::prelude::*;

use super::rows_of;
use super::simd::Isa;
use crate::Result;
use crate::error::check_len;

/// The `eps` of GPT-2's layernorms.
pub const EPS: f32 = 1e-5;

/// Rows per task in the backward (the unit of its `dweight`/`dbias` reduction).
const ROWS_PER_TASK: usize = 32;

/// Checks the forward's shapes; returns `(N, C)`.
pub(crate) fn check_forward(
    op: &'static str,
    out: usize,
    (mean, rstd): (usize, usize),
    inp: usize,
    (weight, bias): (usize, usize),
) -> Result<(usize, usize)> {
    let c = weight;
    let n = rows_of(op, "inp", inp, c)?;
    check_len(op, "bias", bias, c)?;
    check_len(op, "out", out, n * c)?;
    check_len(op, "mean", mean, n)?;
    check_len(op, "rstd", rstd, n)?;
    Ok((n, c))
}

/// Checks the backward's shapes; returns `(N, C)`.
pub(crate) fn check_backward(
    op: &'static str,
    (dinp, dweight, dbias): (usize, usize, usize),
    dout: usize,
    inp: usize,
    weight: usize,
    (mean, rstd): (usize, usize),
) -> Result<(usize, usize)> {
    let (n, c) = check_forward(op, dinp, (mean, rstd), inp, (weight, dbias))?;
    check_len(op, "dweight", dweight, c)?;
    check_len(op, "dout", dout, n * c)?;
    Ok((n, c))
}

/// `out = layernorm(inp)`, saving each row's `mean` and `rstd`.
pub fn forward(
    isa: Isa,
    out: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    inp: &[f32],
    weight: &[f32],
    bias: &[f32],
) -> Result<()> {
    let dims = (mean.len(), rstd.len());
    let (_, c) = check_forward(
        "layernorm::forward",
        out.len(),
        dims,
        inp.len(),
        (weight.len(), bias.len()),
    )?;
    out.par_chunks_mut(c)
        .zip(inp.par_chunks(c))
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .with_min_len(8)
        .for_each(|((o, x), (m, r))| {
            let mu = isa.sum(x) / c as f32;
            let var = isa.sum_sq_diff(x, mu) / c as f32;
            let rs = 1.0 / (var + EPS).sqrt();
            isa.layernorm_row(o, x, (mu, rs), weight, bias);
            (*m, *r) = (mu, rs);
        });
    Ok(())
}

/// Accumulates the gradients of `inp`, `weight` and `bias`.
#[allow(clippy::too_many_arguments)] // the op's operands, as in llm.c
pub fn backward(
    isa: Isa,
    dinp: &mut [f32],
    dweight: &mut [f32],
    dbias: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    mean: &[f32],
    rstd: &[f32],
) -> Result<()> {
    let (_, c) = check_backward(
        "layernorm::backward",
        (dinp.len(), dweight.len(), dbias.len()),
        dout.len(),
        inp.len(),
        weight.len(),
        (mean.len(), rstd.len()),
    )?;
    let group = ROWS_PER_TASK * c;
    let partials: Vec<Vec<f32>> = dinp
        .par_chunks_mut(group)
        .zip(dout.par_chunks(group))
        .zip(inp.par_chunks(group))
        .zip(
            mean.par_chunks(ROWS_PER_TASK)
                .zip(rstd.par_chunks(ROWS_PER_TASK)),
        )
        .map(|(((di, g), x), (m, r))| {
            // This group's [dweight | dbias].
            let mut acc = vec![0.0f32; 2 * c];
            let (dw, db) = acc.split_at_mut(c);
            for (i, di) in di.chunks_mut(c).enumerate() {
                let row = i * c..(i + 1) * c;
                isa.layernorm_backward_row(
                    (di, dw, db),
                    &g[row.clone()],
                    &x[row],
                    weight,
                    (m[i], r[i]),
                );
            }
            acc
        })
        .collect();
    for acc in &partials {
        isa.axpy(dweight, 1.0, &acc[..c]);
        isa.axpy(dbias, 1.0, &acc[c..]);
    }
    Ok(())
}

/// Naive layernorm, generic over the float type (see [`super::real`]).
pub mod reference {
    use super::{EPS, check_backward, check_forward};
    use crate::Result;
    use crate::cpu::real::Real;

    /// As [`super::forward`].
    pub fn forward<F: Real>(
        out: &mut [F],
        mean: &mut [F],
        rstd: &mut [F],
        inp: &[F],
        weight: &[F],
        bias: &[F],
    ) -> Result<()> {
        let dims = (mean.len(), rstd.len());
        let op = "layernorm::reference::forward";
        let (n, c) = check_forward(op, out.len(), dims, inp.len(), (weight.len(), bias.len()))?;
        let cf = F::from_f64(c as f64);
        for i in 0..n {
            let x = &inp[i * c..(i + 1) * c];
            let mut m = F::ZERO;
            for &v in x {
                m += v;
            }
            m = m / cf;
            let mut var = F::ZERO;
            for &v in x {
                var += (v - m) * (v - m);
            }
            let r = F::ONE / (var / cf + F::from_f32(EPS)).sqrt();
            for j in 0..c {
                out[i * c + j] = (x[j] - m) * r * weight[j] + bias[j];
            }
            (mean[i], rstd[i]) = (m, r);
        }
        Ok(())
    }

    /// As [`super::backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward<F: Real>(
        dinp: &mut [F],
        dweight: &mut [F],
        dbias: &mut [F],
        dout: &[F],
        inp: &[F],
        weight: &[F],
        mean: &[F],
        rstd: &[F],
    ) -> Result<()> {
        let (n, c) = check_backward(
            "layernorm::reference::backward",
            (dinp.len(), dweight.len(), dbias.len()),
            dout.len(),
            inp.len(),
            weight.len(),
            (mean.len(), rstd.len()),
        )?;
        let cf = F::from_f64(c as f64);
        for i in 0..n {
            let norm = |j: usize| (inp[i * c + j] - mean[i]) * rstd[i];
            let (mut mean_dn, mut mean_dn_n) = (F::ZERO, F::ZERO);
            for j in 0..c {
                let dn = weight[j] * dout[i * c + j];
                mean_dn += dn;
                mean_dn_n += dn * norm(j);
            }
            mean_dn = mean_dn / cf;
            mean_dn_n = mean_dn_n / cf;
            for j in 0..c {
                let g = dout[i * c + j];
                dbias[j] += g;
                dweight[j] += norm(j) * g;
                dinp[i * c + j] += (weight[j] * g - mean_dn - norm(j) * mean_dn_n) * rstd[i];
            }
        }
        Ok(())
    }
}
