//! The optimizer: AdamW over the parameter arena, exactly as `torch.optim.AdamW` with
//! two parameter groups (nanoGPT's): weight decay on the tensors of two or more
//! dimensions ([`ParamKind::decays`](crate::model::ParamKind::decays): embeddings and
//! matmul weights), none on biases and layer norms. Also global-norm gradient clipping
//! as `torch.nn.utils.clip_grad_norm_`.
//!
//! The update itself is [`gpt2_kernels::cpu::adamw::step`], run once per maximal run
//! of consecutive tensors with the same decay.

use std::ops::Range;

use gpt2_kernels::cpu::adamw::{self, AdamWParams};
use gpt2_kernels::cpu::simd::Isa;

use crate::error::{Error, Result};
use crate::model::ParamArena;
use crate::profile::{self, Work};

/// AdamW's settings besides the learning rate, which the schedule gives per step.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Decay rate of the first moment (`β1`).
    pub beta1: f64,
    /// Decay rate of the second moment (`β2`).
    pub beta2: f64,
    /// Added to the denominator (`ε`).
    pub eps: f64,
    /// Decoupled weight decay of the decayed tensors.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    /// nanoGPT's: `β = (0.9, 0.95)`, `ε = 1e-8`, weight decay 0.1.
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        }
    }
}

/// AdamW's state: the two moments (arenas shaped like the parameters) and the number of
/// steps taken.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    steps: u64,
    /// Runs of the arena with the same decay: (range, decays).
    groups: Vec<(Range<usize>, bool)>,
}

impl AdamW {
    /// A fresh optimizer (zero moments, no steps) for `params`.
    pub fn new(params: &ParamArena, config: AdamWConfig) -> AdamW {
        let mut groups: Vec<(Range<usize>, bool)> = Vec::new();
        for (i, spec) in params.specs().iter().enumerate() {
            let (r, decays) = (params.range(i), spec.kind.decays());
            match groups.last_mut() {
                Some((last, d)) if *d == decays && last.end == r.start => last.end = r.end,
                _ => groups.push((r, decays)),
            }
        }
        AdamW {
            config,
            m: vec![0.0; params.len()],
            v: vec![0.0; params.len()],
            steps: 0,
            groups,
        }
    }

    /// An optimizer resumed from saved state (`steps` taken, moments `m` and `v`).
    pub fn from_state(
        params: &ParamArena,
        config: AdamWConfig,
        steps: u64,
        m: Vec<f32>,
        v: Vec<f32>,
    ) -> Result<AdamW> {
        params.check_len(m.len())?;
        params.check_len(v.len())?;
        let mut opt = AdamW::new(params, config);
        (opt.m, opt.v, opt.steps) = (m, v, steps);
        Ok(opt)
    }

    /// The settings.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The first and second moments.
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }

    /// One update of `params` with gradients `grads` (an arena of the same layout) at
    /// learning rate `lr`.
    pub fn step(
        &mut self,
        isa: Isa,
        params: &mut ParamArena,
        grads: &[f32],
        lr: f64,
    ) -> Result<()> {
        params.check_len(grads.len())?;
        if self.m.len() != params.len() {
            return Err(Error::Shape(
                "optimizer state was made for another model".into(),
            ));
        }
        let hp = AdamWParams {
            lr,
            beta1: self.config.beta1,
            beta2: self.config.beta2,
            eps: self.config.eps,
        };
        let step = self.steps + 1;
        let p = params.as_mut_slice();
        for (r, decays) in &self.groups {
            let wd = if *decays {
                self.config.weight_decay
            } else {
                0.0
            };
            let (m, v) = (&mut self.m[r.clone()], &mut self.v[r.clone()]);
            // Reads param, grad, m, v; writes param, m, v.
            profile::op("adamw", Work::bytes(7 * 4 * r.len()), || {
                let (p, g) = (&mut p[r.clone()], &grads[r.clone()]);
                adamw::step(isa, p, g, m, v, &hp, step, wd)
            })?;
        }
        self.steps = step;
        Ok(())
    }
}

/// Scales `grads` so that their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`: `coef = max_norm / (norm + 1e-6)`, clamped to 1.
/// Returns the norm before clipping (computed in `f64`). `max_norm ≤ 0` only measures.
pub fn clip_grad_norm(isa: Isa, grads: &mut [f32], max_norm: f64) -> Result<f64> {
    profile::op("grad clip", Work::bytes(3 * 4 * grads.len()), || {
        let norm = adamw::sum_of_squares(isa, grads).sqrt();
        if max_norm > 0.0 {
            let coef = (max_norm / (norm + 1e-6)).min(1.0);
            if coef < 1.0 {
                adamw::scale(isa, grads, coef as f32)?;
            }
        }
        Ok(norm)
    })
}
