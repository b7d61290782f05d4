//! Training on the GPU (`cuda` feature), mixed precision as llm.c: f32 master weights
//! and AdamW moments on the device, bf16 compute copies of the weights, bf16
//! activations and gradients, f32 losses and norms. One optimizer step has no host
//! round trip but the losses (N floats per micro-batch) and the gradient norm.
//!
//! [`super::Trainer::to_device`] moves a run here; the host copy of the parameters and
//! moments is refreshed only when asked ([`super::Trainer::sync`]: evaluation,
//! checkpoints and samples run from it).
//!
//! Not here: dropout (the model's config must have it at 0), a vocabulary padded beyond
//! `vocab_size`. Not yet run on a GPU in this repository (CI has none):
//! `gpt2-core/tests/cuda_model.rs` compares a few steps with the CPU trainer wherever
//! a device is present.

use gpt2_kernels::cpu::adamw::AdamWParams;
use gpt2_kernels::cuda::{GpuBuf, adamw, cast};
use half::bf16;

use super::optim::AdamWConfig;
use crate::error::{Error, Result};
use crate::model::ParamArena;
use crate::model::cuda::{CudaActivations, CudaGpt2};

/// A run's state on the device.
pub(crate) struct CudaTrainState {
    /// The bf16 compute copy the forward and backward read.
    model: CudaGpt2<bf16>,
    /// f32 master weights, one buffer per parameter (as `model.params`).
    master: Vec<GpuBuf<f32>>,
    grads: Vec<GpuBuf<bf16>>,
    m: Vec<GpuBuf<f32>>,
    v: Vec<GpuBuf<f32>>,
    /// Whether AdamW decays each parameter.
    decays: Vec<bool>,
    acts: CudaActivations<bf16>,
}

impl std::fmt::Debug for CudaTrainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaTrainState")
            .field("gpu", &self.model.gpu().name())
            .field("params", &self.master.len())
            .finish()
    }
}

impl CudaTrainState {
    /// Uploads `params` and the moments `(m, v)` (laid out as `params`) to GPU `ordinal`,
    /// for batches of (B, T); `recompute_gelu` as [`CudaActivations::new`].
    pub(crate) fn new(
        params: &ParamArena,
        (m, v): (&[f32], &[f32]),
        ordinal: usize,
        (b, t): (usize, usize),
        recompute_gelu: bool,
    ) -> Result<CudaTrainState> {
        let cfg = params.config();
        if cfg.embd_pdrop != 0.0 || cfg.attn_pdrop != 0.0 || cfg.resid_pdrop != 0.0 {
            return Err(Error::Input(
                "dropout is not implemented on the GPU: set it to 0 (train --dropout 0)".into(),
            ));
        }
        let model = CudaGpt2::<bf16>::upload(&params.to_model()?, ordinal)?;
        let gpu = model.gpu().clone();
        let n = params.specs().len();
        // Tensor `i` of an arena-shaped buffer, zero-padded to its device length (only
        // `wte` differs: Vp ≥ V rows).
        let upload = |buf: &[f32], i: usize| {
            let mut host = buf[params.range(i)].to_vec();
            host.resize(model.params[i].len(), 0.0);
            gpu.upload(&host)
        };
        let all = params.as_slice();
        let mut state = CudaTrainState {
            master: (0..n)
                .map(|i| upload(all, i))
                .collect::<std::result::Result<_, _>>()?,
            grads: model.zeros_like_params()?,
            m: (0..n)
                .map(|i| upload(m, i))
                .collect::<std::result::Result<_, _>>()?,
            v: (0..n)
                .map(|i| upload(v, i))
                .collect::<std::result::Result<_, _>>()?,
            decays: params.specs().iter().map(|s| s.kind.decays()).collect(),
            acts: CudaActivations::new(&model, b, t, recompute_gelu)?,
            model,
        };
        // The compute copy is the master rounded to bf16, by the same kernel AdamW uses.
        for (w, p) in state.master.iter().zip(&mut state.model.params) {
            cast::f32_to_bf16(&gpu, p, w)?;
        }
        state.model.gpu().synchronize()?;
        Ok(state)
    }

    /// Zeroes the gradients (once per optimizer step).
    pub(crate) fn zero_grads(&mut self) -> Result<()> {
        for g in &mut self.grads {
            g.fill_zero()?;
        }
        Ok(())
    }

    /// Forward and backward of one micro-batch, adding `dloss`-scaled gradients; returns
    /// its mean loss.
    pub(crate) fn micro_batch(&mut self, x: &[u32], y: &[u32], dloss: f32) -> Result<f32> {
        self.model.forward_train(&mut self.acts, x)?;
        self.model
            .backward(&mut self.acts, x, y, dloss, &mut self.grads)
    }

    /// Clips the global gradient norm to `max_norm` (≤ 0: only measures), as the CPU's
    /// `clip_grad_norm`; returns the norm before clipping.
    pub(crate) fn clip(&mut self, max_norm: f64) -> Result<f64> {
        let gpu = self.model.gpu().clone();
        let grads: Vec<&GpuBuf<bf16>> = self.grads.iter().collect();
        let norm = adamw::sum_of_squares_all(&gpu, &grads)?.sqrt();
        if max_norm > 0.0 {
            let coef = (max_norm / (norm + 1e-6)).min(1.0);
            if coef < 1.0 {
                for g in &mut self.grads {
                    adamw::scale(&gpu, g, coef as f32)?;
                }
            }
        }
        Ok(norm)
    }

    /// One AdamW update (`step` counted from 1) at learning rate `lr`, refreshing the
    /// bf16 compute copy.
    pub(crate) fn adamw(&mut self, config: &AdamWConfig, lr: f64, step: u64) -> Result<()> {
        let gpu = self.model.gpu().clone();
        let hp = AdamWParams {
            lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
        };
        let params = self.master.iter_mut().zip(&mut self.model.params);
        let state = self.grads.iter().zip(self.m.iter_mut().zip(&mut self.v));
        for (((w, copy), (g, (m, v))), &decays) in params.zip(state).zip(&self.decays) {
            let wd = if decays { config.weight_decay } else { 0.0 };
            adamw::step_with_bf16_copy(&gpu, w, copy, g, m, v, &hp, step, wd)?;
        }
        Ok(())
    }

    /// Copies the master weights into `params` and returns the moments `(m, v)`, laid out
    /// as `params`.
    pub(crate) fn download(&self, params: &mut ParamArena) -> Result<(Vec<f32>, Vec<f32>)> {
        let (mut m, mut v) = (vec![0.0; params.len()], vec![0.0; params.len()]);
        for i in 0..self.master.len() {
            // `wte`'s padding rows (zero, and never updated) stay on the device.
            let r = params.range(i);
            let len = r.len();
            params
                .tensor_mut(i)
                .copy_from_slice(&self.master[i].to_vec()?[..len]);
            m[r.clone()].copy_from_slice(&self.m[i].to_vec()?[..len]);
            v[r].copy_from_slice(&self.v[i].to_vec()?[..len]);
        }
        Ok((m, v))
    }
}
