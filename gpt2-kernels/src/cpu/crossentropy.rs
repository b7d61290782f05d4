//! Fused softmax + cross-entropy over the vocabulary: `loss[n] = −log softmax(logits[n])[t_n]`
//! `= log Σ_j e^{logits[n, j]} − logits[n, t_n]`, over the first `v` columns only.
//!
//! Shapes: `logits` `(N, Vp)` with `Vp = logits.len() / N ≥ v` (llm.c pads the
//! vocabulary to a multiple of 128; the padded columns are ignored); `targets`,
//! `losses` `(N)`.
//!
//! [`forward_backward`] computes the loss and, in the same pass over each row,
//! overwrites `logits` with `dlogits = (softmax − onehot(t))·dloss` (zero in the padded
//! columns). Overwriting instead of accumulating is the one deliberate exception to
//! the crate's convention: it saves a `(B·T·Vp)` buffer, the largest in GPT-2.

use rayon::prelude::*;

use super::simd::Isa;
use crate::error::check_len;
use crate::{KernelError, Result};

/// Checks the shapes and targets; returns the padded row length `Vp` (0 if `N == 0`).
pub(crate) fn check(
    op: &'static str,
    losses: usize,
    logits: usize,
    targets: &[u32],
    v: usize,
) -> Result<usize> {
    let n = losses;
    check_len(op, "targets", targets.len(), n)?;
    let vp = logits.checked_div(n).unwrap_or(0);
    if vp * n != logits || (n > 0 && (v == 0 || vp < v)) {
        let msg =
            format!("`logits` has {logits} elements: not {n} rows of at least v = {v} (v ≥ 1)");
        return Err(KernelError::Shape { op, msg });
    }
    if let Some(row) = targets.iter().position(|&t| t as usize >= v) {
        return Err(KernelError::Index {
            op,
            what: "target",
            index: targets[row] as usize,
            row,
            bound: v,
        });
    }
    Ok(vp)
}

/// `losses[n] = −log softmax(logits[n, ..v])[targets[n]]`.
pub fn forward(
    isa: Isa,
    losses: &mut [f32],
    logits: &[f32],
    targets: &[u32],
    v: usize,
) -> Result<()> {
    let vp = check(
        "crossentropy::forward",
        losses.len(),
        logits.len(),
        targets,
        v,
    )?;
    if vp == 0 {
        return Ok(());
    }
    losses
        .par_iter_mut()
        .zip(logits.par_chunks(vp).zip(targets))
        .for_each(|(loss, (row, &t))| {
            let row = &row[..v];
            let m = isa.max(row);
            *loss = isa.sum_exp_shift(row, m).ln() + m - row[t as usize];
        });
    Ok(())
}

/// The loss, and `logits ← (softmax(logits) − onehot(targets))·dloss` in place (zero in
/// the padded columns). `dloss` is the gradient of the final loss with respect to each
/// row's loss, e.g. `1/N` for a mean.
pub fn forward_backward(
    isa: Isa,
    losses: &mut [f32],
    logits: &mut [f32],
    targets: &[u32],
    v: usize,
    dloss: f32,
) -> Result<()> {
    let vp = check(
        "crossentropy::forward_backward",
        losses.len(),
        logits.len(),
        targets,
        v,
    )?;
    if vp == 0 {
        return Ok(());
    }
    losses
        .par_iter_mut()
        .zip(logits.par_chunks_mut(vp).zip(targets))
        .for_each(|(loss, (row, &t))| {
            let (row, pad) = row.split_at_mut(v);
            let t = t as usize;
            let (m, target_logit) = (isa.max(row), row[t]);
            let s = isa.exp_shift(row, m);
            *loss = s.ln() + m - target_logit;
            isa.scale(row, dloss / s);
            row[t] -= dloss;
            pad.fill(0.0);
        });
    Ok(())
}

/// Naive cross-entropy, generic over the float type (see [`super::real`]).
pub mod reference {
    use super::check;
    use crate::Result;
    use crate::cpu::real::Real;

    /// `(max, Σ e^{x − max})` of a row.
    fn max_and_sum<F: Real>(row: &[F]) -> (F, F) {
        let m = row.iter().fold(F::NEG_INFINITY, |m, &a| m.max(a));
        let mut s = F::ZERO;
        for &x in row {
            s += (x - m).exp();
        }
        (m, s)
    }

    /// As [`super::forward`].
    pub fn forward<F: Real>(
        losses: &mut [F],
        logits: &[F],
        targets: &[u32],
        v: usize,
    ) -> Result<()> {
        let vp = check(
            "crossentropy::reference::forward",
            losses.len(),
            logits.len(),
            targets,
            v,
        )?;
        for n in 0..losses.len() {
            let row = &logits[n * vp..n * vp + v];
            let (m, s) = max_and_sum(row);
            losses[n] = s.ln() + m - row[targets[n] as usize];
        }
        Ok(())
    }

    /// As [`super::forward_backward`].
    pub fn forward_backward<F: Real>(
        losses: &mut [F],
        logits: &mut [F],
        targets: &[u32],
        v: usize,
        dloss: F,
    ) -> Result<()> {
        let op = "crossentropy::reference::forward_backward";
        let vp = check(op, losses.len(), logits.len(), targets, v)?;
        for n in 0..losses.len() {
            let row = &mut logits[n * vp..(n + 1) * vp];
            let t = targets[n] as usize;
            let (m, s) = max_and_sum(&row[..v]);
            losses[n] = s.ln() + m - row[t];
            for (j, x) in row.iter_mut().enumerate() {
                let onehot = if j == t { F::ONE } else { F::ZERO };
                *x = if j < v {
                    ((*x - m).exp() / s - onehot) * dloss
                } else {
                    F::ZERO
                };
            }
        }
        Ok(())
    }
}
