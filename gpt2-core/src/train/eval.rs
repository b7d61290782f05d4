//! Evaluation: the loss of a model on a token sequence, every token after the first
//! scored exactly once, and the derived perplexity and bits per byte.
//!
//! The sequence is cut into windows of `T + 1` tokens starting at multiples of `T` (each
//! predicts its last `T` tokens from the ones before, within the window), run `B` at a
//! time; a shorter last window scores the tokens left over.

use crate::error::{Error, Result};
use crate::model::{Activations, Dropout, ModelView};

/// The summed loss over the scored tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Tokens scored (all but the first of the sequence).
    pub tokens: usize,
    /// `Σ −ln p(token | context)` over them, in nats.
    pub nats: f64,
}

impl Evaluation {
    /// The mean loss per token (nats).
    pub fn loss(&self) -> f64 {
        self.nats / self.tokens.max(1) as f64
    }

    /// `e^loss`.
    pub fn perplexity(&self) -> f64 {
        self.loss().exp()
    }

    /// Bits per byte of the scored text, `bytes` long: `nats / bytes / ln 2`. Unlike the
    /// loss per token, it compares models with different vocabularies.
    pub fn bits_per_byte(&self, bytes: usize) -> f64 {
        self.nats / bytes.max(1) as f64 / std::f64::consts::LN_2
    }
}

/// Evaluates `view` on `tokens` with batches of `acts`' (B, T) (shorter batches get
/// arenas of their own). `max_batches` limits the work to that many full batches (and
/// then skips the leftovers, unless there is no full batch); `None` scores everything.
pub fn evaluate(
    view: &ModelView<'_>,
    tokens: &[u32],
    acts: &mut Activations,
    max_batches: Option<usize>,
) -> Result<Evaluation> {
    let (b, t) = (acts.batch(), acts.seq());
    if tokens.len() < 2 {
        return Err(Error::Input(format!(
            "{} tokens: evaluation needs at least 2",
            tokens.len()
        )));
    }
    let n_windows = (tokens.len() - 1) / t;
    let limit = max_batches.map_or(usize::MAX, |m| m.saturating_mul(b));
    let mut eval = Evaluation {
        tokens: 0,
        nats: 0.0,
    };
    // Scores `rows` windows of `len + 1` tokens from `start`, adding to `eval`.
    let score = |eval: &mut Evaluation, acts: &mut Activations, start, rows, len| -> Result<()> {
        let (mut x, mut y) = (
            Vec::with_capacity(rows * len),
            Vec::with_capacity(rows * len),
        );
        for r in 0..rows {
            let w = &tokens[start + r * len..start + r * len + len + 1];
            x.extend_from_slice(&w[..len]);
            y.extend_from_slice(&w[1..]);
        }
        view.forward_train(acts, &x, &Dropout::OFF)?;
        view.loss(acts, &y)?;
        eval.nats += acts.losses().iter().map(|&l| f64::from(l)).sum::<f64>();
        eval.tokens += y.len();
        Ok(())
    };
    let full = n_windows.min(limit);
    let mut w = 0;
    while w + b <= full {
        score(&mut eval, acts, w * t, b, t)?;
        w += b;
    }
    // Leftovers: always without a limit, and with one when no full batch fits.
    if max_batches.is_none() || eval.tokens == 0 {
        if w < n_windows {
            let rows = n_windows - w;
            let mut tail = Activations::new(view.config, rows, t);
            score(&mut eval, &mut tail, w * t, rows, t)?;
        }
        let rest = tokens.len() - 1 - n_windows * t;
        if rest > 0 {
            let mut tail = Activations::new(view.config, 1, rest);
            score(&mut eval, &mut tail, n_windows * t, 1, rest)?;
        }
    }
    Ok(eval)
}
