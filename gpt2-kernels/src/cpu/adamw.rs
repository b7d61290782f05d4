//! AdamW with decoupled weight decay, as `torch.optim.AdamW` (single-tensor CPU path,
//! `amsgrad = False`), step `t` counted from 1:
//!
//! ```text
//! p ← p·(1 − lr·wd)
//! m ← m + (1 − β1)·(g − m)                 (torch's lerp; = β1·m + (1 − β1)·g)
//! v ← β2·v + (1 − β2)·g²
//! p ← p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
//! ```
//!
//! As in PyTorch, the hyperparameters and bias corrections are computed in `f64`
//! (Python floats there) and rounded to `f32` once per step; the per-element work is
//! `f32` in the order above.
//!
//! Also here: [`sum_of_squares`] and [`scale`] for global-norm gradient clipping.

use rayon::prelude::*;

use super::CHUNK;
use super::simd::{AdamWCoeffs, Isa};
use crate::error::check_len;
use crate::{KernelError, Result};

/// AdamW's hyperparameters (`f64`, like the Python floats PyTorch keeps them in, so that
/// `1 − β2` and the bias corrections round exactly as there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// Learning rate.
    pub lr: f64,
    /// Decay rate of the first moment.
    pub beta1: f64,
    /// Decay rate of the second moment.
    pub beta2: f64,
    /// Added to the denominator for numerical stability.
    pub eps: f64,
}

impl Default for AdamWParams {
    /// PyTorch's defaults: `lr = 1e-3`, `betas = (0.9, 0.999)`, `eps = 1e-8`.
    fn default() -> Self {
        AdamWParams {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Checks the shapes and the step; returns the per-step coefficients.
pub(crate) fn coefficients(
    op: &'static str,
    (params, grads, m, v): (usize, usize, usize, usize),
    hp: &AdamWParams,
    step: u64,
    weight_decay: f32,
) -> Result<AdamWCoeffs> {
    check_len(op, "grads", grads, params)?;
    check_len(op, "m", m, params)?;
    check_len(op, "v", v, params)?;
    if step == 0 {
        return Err(KernelError::Shape {
            op,
            msg: "AdamW steps are counted from 1, got step 0".into(),
        });
    }
    let t = step as f64;
    let bias_correction1 = 1.0 - hp.beta1.powf(t);
    let bias_correction2 = 1.0 - hp.beta2.powf(t);
    Ok(AdamWCoeffs {
        decay: (1.0 - hp.lr * f64::from(weight_decay)) as f32,
        one_minus_beta1: (1.0 - hp.beta1) as f32,
        beta2: hp.beta2 as f32,
        one_minus_beta2: (1.0 - hp.beta2) as f32,
        bias_correction2_sqrt: bias_correction2.sqrt() as f32,
        step_size: (hp.lr / bias_correction1) as f32,
        eps: hp.eps as f32,
    })
}

/// One AdamW step (`step` counted from 1) over a flat parameter buffer, updating
/// `params`, `m` and `v` in place.
#[allow(clippy::too_many_arguments)] // the optimizer's state, as in llm.c
pub fn step(
    isa: Isa,
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    hp: &AdamWParams,
    step: u64,
    weight_decay: f32,
) -> Result<()> {
    let lens = (params.len(), grads.len(), m.len(), v.len());
    let k = coefficients("adamw::step", lens, hp, step, weight_decay)?;
    params
        .par_chunks_mut(CHUNK)
        .zip(grads.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| isa.adamw(p, g, m, v, &k));
    Ok(())
}

/// `Σ x_i²` in `f64`, for the global gradient norm. Each fixed chunk of 2^14
/// elements is summed by one task and the chunk sums are added in order, so the result
/// does not depend on the number of threads.
pub fn sum_of_squares(isa: Isa, x: &[f32]) -> f64 {
    let partials: Vec<f64> = x.par_chunks(CHUNK).map(|c| isa.sum_sq_f64(c)).collect();
    partials.iter().sum()
}

/// `x ← s·x` (e.g. gradient clipping by `max_norm / norm`).
pub fn scale(isa: Isa, x: &mut [f32], s: f32) -> Result<()> {
    x.par_chunks_mut(CHUNK).for_each(|c| isa.scale(c, s));
    Ok(())
}

/// Naive AdamW, generic over the float type (see [`super::real`]).
pub mod reference {
    use super::AdamWParams;
    use crate::Result;
    use crate::cpu::real::Real;

    /// As [`super::step`], entirely in `F` (hyperparameters converted from `f64`).
    #[allow(clippy::too_many_arguments)]
    pub fn step<F: Real>(
        params: &mut [F],
        grads: &[F],
        m: &mut [F],
        v: &mut [F],
        hp: &AdamWParams,
        step: u64,
        weight_decay: f32,
    ) -> Result<()> {
        let lens = (params.len(), grads.len(), m.len(), v.len());
        super::coefficients("adamw::reference::step", lens, hp, step, weight_decay)?;
        let f = F::from_f64;
        let (lr, b1, b2, eps) = (f(hp.lr), f(hp.beta1), f(hp.beta2), f(hp.eps));
        let t = step as f64;
        let bc1 = f(1.0 - hp.beta1.powf(t));
        let bc2 = f(1.0 - hp.beta2.powf(t));
        for i in 0..params.len() {
            let g = grads[i];
            params[i] *= F::ONE - lr * F::from_f32(weight_decay);
            m[i] = b1 * m[i] + (F::ONE - b1) * g;
            v[i] = b2 * v[i] + (F::ONE - b2) * g * g;
            let (m_hat, v_hat) = (m[i] / bc1, v[i] / bc2);
            params[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        Ok(())
    }

    /// As [`super::sum_of_squares`], summed sequentially in `f64`.
    pub fn sum_of_squares<F: Real>(x: &[F]) -> f64 {
        x.iter().map(|&a| a.to_f64() * a.to_f64()).sum()
    }
}
