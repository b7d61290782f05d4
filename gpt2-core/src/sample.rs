//! Choosing the next token from logits, in Hugging Face's order: repetition penalty,
//! temperature, top-k, top-p, then a seeded draw (or the argmax when temperature is 0).
//!
//! Each filter is a small public function on a logits row so that it can be tested on
//! hand-made logits against Hugging Face's candidate sets. Filters mark removed tokens with
//! `-inf`, as Hugging Face's warpers do.

use gpt2_kernels::rng::Rng;

use crate::error::{Error, Result};

/// How to pick tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Divides the logits; 0 means greedy (argmax after the repetition penalty).
    pub temperature: f32,
    /// Keep only the k most likely tokens (ties with the k-th are kept); 0 = off.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 = off.
    pub top_p: f32,
    /// CTRL's repetition penalty over prompt and output: a seen token's logit is divided by
    /// it when positive and multiplied when negative; 1 = off.
    pub repetition_penalty: f32,
}

impl Default for SamplingParams {
    /// Temperature 1, no filters: plain ancestral sampling.
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> SamplingParams {
        SamplingParams {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Checks the ranges: temperature ≥ 0, 0 < top_p ≤ 1, repetition_penalty > 0, all finite.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::Input(format!(
                "temperature must be a finite number ≥ 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Input(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::Input(format!(
                "repetition_penalty must be a finite number > 0, got {}",
                self.repetition_penalty
            )));
        }
        Ok(())
    }
}

/// The same settings for the device sampler (`gpt2_kernels::cuda::sample`).
#[cfg(feature = "cuda")]
impl From<&SamplingParams> for gpt2_kernels::cuda::sample::Filters {
    fn from(p: &SamplingParams) -> Self {
        gpt2_kernels::cuda::sample::Filters {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            repetition_penalty: p.repetition_penalty,
        }
    }
}

/// CTRL-style repetition penalty (Hugging Face's `RepetitionPenaltyLogitsProcessor`): each
/// distinct token of `history` gets its logit divided by `penalty` if positive, multiplied if
/// negative. Ids outside `logits` are ignored.
pub fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = vec![false; logits.len()];
    for &id in history {
        let i = id as usize;
        if i < logits.len() && !std::mem::replace(&mut seen[i], true) {
            let l = logits[i];
            logits[i] = if l < 0.0 { l * penalty } else { l / penalty };
        }
    }
}

/// Divides every logit by `temperature` (> 0).
pub fn apply_temperature(logits: &mut [f32], temperature: f32) {
    if temperature != 1.0 {
        logits.iter_mut().for_each(|l| *l /= temperature);
    }
}

/// Hugging Face's `TopKLogitsWarper`: sets to `-inf` every logit smaller than the k-th
/// largest (so ties with the k-th survive). `k = 0` or `k ≥ len` keeps everything. Linear
/// time (selection, no sort).
pub fn top_k_filter(logits: &mut [f32], k: usize) {
    if k == 0 || k >= logits.len() {
        return;
    }
    let mut vals = logits.to_vec();
    let (_, kth, _) = vals.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let kth = *kth;
    logits
        .iter_mut()
        .filter(|l| **l < kth)
        .for_each(|l| *l = f32::NEG_INFINITY);
}

/// Hugging Face's `TopPLogitsWarper`: keeps the smallest set of most likely tokens whose
/// probability reaches `p` (at least one), setting the rest to `-inf`. Ties are ordered as
/// a stable ascending sort orders them (higher index counts as more likely), like
/// Hugging Face. Sorts only as many candidates as it needs: the top 64, then 4× more each
/// time the mass is not yet reached, not all 50257 logits.
pub fn top_p_filter(logits: &mut [f32], p: f32) {
    if p >= 1.0 || logits.is_empty() {
        return;
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    let total: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    // Most likely first; among equal logits the higher index first.
    let order = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(b.cmp(a));
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    let mut m = 64.min(idx.len());
    let keep = loop {
        if m < idx.len() {
            idx.select_nth_unstable_by(m - 1, order);
        }
        idx[..m].sort_unstable_by(order);
        // Keep token i while the mass of the tokens before it is still below p.
        let mut cum = 0.0f64;
        let mut found = None;
        for (j, &i) in idx[..m].iter().enumerate() {
            if cum >= p as f64 {
                found = Some(j);
                break;
            }
            cum += ((logits[i] - max) as f64).exp() / total;
        }
        match found {
            Some(j) => break j,
            None if m == idx.len() => break m,
            None => m = (m * 4).min(idx.len()),
        }
    };
    let mut kept = vec![false; logits.len()];
    idx[..keep].iter().for_each(|&i| kept[i] = true);
    logits
        .iter_mut()
        .zip(kept)
        .filter(|(_, k)| !k)
        .for_each(|(l, _)| *l = f32::NEG_INFINITY);
}

/// The index of the largest logit (the first one on ties, as `torch.argmax`).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

/// Picks tokens from logits with [`SamplingParams`] and its own seeded random stream.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Rng,
}

impl Sampler {
    /// A sampler whose draws are fixed by `seed`.
    pub fn new(params: SamplingParams, seed: u64) -> Result<Sampler> {
        params.validate()?;
        Ok(Sampler {
            params,
            rng: Rng::new(seed),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The uniform number in [0, 1) that [`Sampler::sample`] would draw with these
    /// parameters (none when greedy: 0), for a sampler that runs elsewhere (the GPU's):
    /// the random stream advances exactly as if this sampler had drawn.
    #[cfg(feature = "cuda")]
    pub(crate) fn next_uniform(&mut self) -> f64 {
        if self.params.temperature == 0.0 {
            0.0
        } else {
            self.rng.next_f64()
        }
    }

    /// Chooses the next token. `logits` (V) is modified in place by the filters; `history`
    /// (prompt and output so far) feeds the repetition penalty.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::Input(
                "cannot sample from an empty logits row".into(),
            ));
        }
        if logits.iter().any(|l| l.is_nan()) {
            return Err(Error::Input("logits contain NaN".into()));
        }
        let p = &self.params;
        apply_repetition_penalty(logits, history, p.repetition_penalty);
        if p.temperature == 0.0 {
            return Ok(argmax(logits) as u32);
        }
        apply_temperature(logits, p.temperature);
        top_k_filter(logits, p.top_k);
        top_p_filter(logits, p.top_p);
        // Draw from softmax(logits) by inverse CDF, in f64.
        let max = logits[argmax(logits)];
        if max == f32::NEG_INFINITY {
            return Err(Error::Input("every token was filtered out".into()));
        }
        let total: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
        let target = self.rng.next_f64() * total;
        let mut cum = 0.0;
        let mut last_candidate = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l == f32::NEG_INFINITY {
                continue;
            }
            cum += ((l - max) as f64).exp();
            last_candidate = i;
            if cum > target {
                return Ok(i as u32);
            }
        }
        Ok(last_candidate as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(l: &[f32]) -> Vec<usize> {
        l.iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn top_k_keeps_ties_with_the_kth() {
        let mut l = vec![1.0, 3.0, 2.0, 3.0, 2.0, -1.0];
        top_k_filter(&mut l, 3);
        assert_eq!(kept(&l), vec![1, 2, 3, 4]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probabilities 0.5, 0.3, 0.2 (as logits of their logs)
        let base: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
        for (p, want) in [
            (0.4, vec![0]),
            (0.5, vec![0]),
            (0.55, vec![0, 1]),
            (0.85, vec![0, 1, 2]),
        ] {
            let mut l = base.clone();
            top_p_filter(&mut l, p);
            assert_eq!(kept(&l), want, "p = {p}");
        }
    }

    #[test]
    fn top_p_grows_past_the_first_window() {
        // 1000 equal logits: reaching p = 0.5 needs 500 tokens, beyond the first 64.
        let mut l = vec![0.0f32; 1000];
        top_p_filter(&mut l, 0.5);
        assert_eq!(kept(&l).len(), 500);
        // Ties: the higher indices count as more likely (stable ascending sort, reversed).
        assert_eq!(kept(&l)[0], 500);
    }

    #[test]
    fn repetition_penalty_divides_positive_and_multiplies_negative_once() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut l, &[0, 1, 0, 7], 2.0);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn same_seed_same_draws_and_greedy_is_argmax() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let params = SamplingParams {
            temperature: 0.8,
            top_k: 20,
            top_p: 0.9,
            repetition_penalty: 1.1,
        };
        let run = |seed| {
            let mut s = Sampler::new(params.clone(), seed).unwrap();
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[1, 2]).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let mut g = Sampler::new(SamplingParams::greedy(), 0).unwrap();
        assert_eq!(
            g.sample(&mut logits.clone(), &[]).unwrap() as usize,
            argmax(&logits)
        );
    }

    #[test]
    fn bad_params_and_nan_are_errors() {
        assert!(
            Sampler::new(
                SamplingParams {
                    top_p: 0.0,
                    ..Default::default()
                },
                0
            )
            .is_err()
        );
        assert!(
            Sampler::new(
                SamplingParams {
                    temperature: -1.0,
                    ..Default::default()
                },
                0
            )
            .is_err()
        );
        let mut s = Sampler::new(SamplingParams::default(), 0).unwrap();
        assert!(s.sample(&mut [f32::NAN, 1.0], &[]).is_err());
        assert!(s.sample(&mut [], &[]).is_err());
    }
}
