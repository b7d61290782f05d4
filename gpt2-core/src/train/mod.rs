//! Training: the loop ([`Trainer`]) that ties the model's forward and backward passes to
//! the optimizer ([`optim`]), the learning-rate schedule ([`schedule`]), the data
//! ([`data`]), evaluation ([`eval`]), checkpoints ([`checkpoint`]) and the loss plot
//! ([`plot`]).
//!
//! One optimizer step: zero the gradient arena; for each of `grad_accum` micro-batches,
//! forward (saving activations, with dropout) and backward (adding `1/(k·B·T)` of each
//! position's loss gradient); clip the global norm; one AdamW update at the schedule's
//! learning rate. Everything is deterministic (fixed reduction orders in the kernels,
//! counter-based dropout, seeded data order), so a run resumed from a checkpoint
//! continues bit for bit as if it had never stopped.
//!
//! With the `cuda` feature, [`Trainer::to_device`] moves the step to a GPU (`cuda.rs`:
//! mixed precision, no dropout); the data, the schedule and the bookkeeping stay here.

pub mod checkpoint;
#[cfg(feature = "cuda")]
mod cuda;
pub mod data;
pub mod eval;
pub mod optim;
pub mod plot;
pub mod schedule;

use std::path::{Path, PathBuf};

use gpt2_kernels::cpu::simd::Isa;
use gpt2_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Activations, Dropout, ParamArena};
use crate::tensor::Device;
use checkpoint::SaveDType;
use data::{DataLoader, Order, Position};
use eval::Evaluation;
use optim::{AdamW, AdamWConfig, clip_grad_norm};
use schedule::Schedule;

/// How to train: everything a run needs besides the model and the data. Saved in every
/// checkpoint, so that a resumed run uses the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// B: sequences per micro-batch.
    pub batch: usize,
    /// T: tokens per sequence.
    pub seq: usize,
    /// Micro-batches per optimizer step (their gradients are averaged).
    pub grad_accum: usize,
    /// The learning rate of each step; its `total` is the number of steps of the run.
    pub schedule: Schedule,
    /// AdamW's other settings.
    pub adamw: AdamWConfig,
    /// Global gradient-norm clipping threshold (0: off).
    pub grad_clip: f64,
    /// Seed of the dropout masks (and of the data order when shuffled).
    pub seed: u64,
    /// The order of the training batches.
    pub order: Order,
}

/// Settings of a run on a GPU (see [`Trainer::to_device_with`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// Recompute GELU's output in the backward pass instead of keeping it for every layer
    /// (as llm.c's `-r 1`): `(L − 1)·B·T·4C` fewer activations for one GELU per layer.
    pub recompute_gelu: bool,
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// The step's number, counted from 1.
    pub step: u64,
    /// The mean training loss over the step's micro-batches.
    pub loss: f32,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// The learning rate used.
    pub lr: f64,
    /// Tokens processed (`k·B·T`).
    pub tokens: usize,
}

/// Losses so far, for the plot: `(step, loss)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Train loss of every step.
    pub train: Vec<(u64, f32)>,
    /// Validation loss where it was measured.
    pub val: Vec<(u64, f32)>,
}

/// The part of a checkpoint besides the model and the optimizer's moments.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    step: u64,
    optimizer_steps: u64,
    data: Position,
    dropout_passes: u64,
    settings: TrainSettings,
    history: History,
}

/// A training run in memory: parameters, gradients, optimizer state, the activation
/// arena, the data loader and the step count.
#[derive(Debug)]
pub struct Trainer {
    params: ParamArena,
    grads: Vec<f32>,
    opt: AdamW,
    acts: Activations,
    data: DataLoader,
    settings: TrainSettings,
    step: u64,
    /// Forward passes with dropout so far: each gets its own mask counters.
    dropout_passes: u64,
    history: History,
    /// The run's state on a GPU, when [`Trainer::to_device`] moved it there.
    #[cfg(feature = "cuda")]
    device: Option<Box<cuda::CudaTrainState>>,
    /// Optimizer steps taken on the device since the host copy was last refreshed.
    #[cfg(feature = "cuda")]
    unsynced_steps: u64,
}

impl Trainer {
    /// A new run of `params` on `tokens` (the training split).
    pub fn new(params: ParamArena, tokens: Vec<u32>, settings: TrainSettings) -> Result<Trainer> {
        if settings.grad_accum == 0 {
            return Err(Error::Input("grad_accum must be at least 1".into()));
        }
        if settings.seq > params.config().n_ctx {
            return Err(Error::Input(format!(
                "sequence length {} exceeds the model's context of {}",
                settings.seq,
                params.config().n_ctx
            )));
        }
        let data = DataLoader::new(tokens, settings.batch, settings.seq, settings.order)?;
        Ok(Trainer {
            grads: vec![0.0; params.len()],
            opt: AdamW::new(&params, settings.adamw),
            acts: Activations::new(params.config(), settings.batch, settings.seq),
            data,
            params,
            settings,
            step: 0,
            dropout_passes: 0,
            history: History::default(),
            #[cfg(feature = "cuda")]
            device: None,
            #[cfg(feature = "cuda")]
            unsynced_steps: 0,
        })
    }

    /// Runs the following steps on `device`. To a GPU (`cuda:N`, `cuda` feature): the
    /// parameters and AdamW moments are uploaded, and steps run in mixed precision there
    /// (f32 master weights, bf16 compute); the model must have dropout 0. Back to the CPU:
    /// the state is downloaded first. Errors (no feature, no GPU, dropout) leave the run
    /// where it was.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.to_device_with(device, GpuOptions::default())
    }

    /// [`Trainer::to_device`] with settings for the GPU (ignored for the CPU).
    pub fn to_device_with(&mut self, device: Device, options: GpuOptions) -> Result<()> {
        let _ = options; // only read with the `cuda` feature
        match device {
            Device::Cpu => {
                self.sync()?;
                #[cfg(feature = "cuda")]
                {
                    self.device = None;
                }
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(ordinal) => {
                self.sync()?;
                let (m, v) = self.opt.moments();
                let shape = (self.settings.batch, self.settings.seq);
                let recompute = options.recompute_gelu;
                let state =
                    cuda::CudaTrainState::new(&self.params, (m, v), ordinal, shape, recompute)?;
                self.device = Some(Box::new(state));
                Ok(())
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(ordinal) => Err(Error::Device(format!(
                "cuda:{ordinal} requested, but this build has no GPU support (build with `--features cuda`)"
            ))),
        }
    }

    /// Refreshes the host copy of the parameters and optimizer moments from the GPU (a
    /// no-op on the CPU or when nothing changed). [`Trainer::evaluate`] and
    /// [`Trainer::save`] do it themselves; call it before reading [`Trainer::params`]
    /// of a run on the GPU.
    pub fn sync(&mut self) -> Result<()> {
        #[cfg(feature = "cuda")]
        if let Some(dev) = self.device.as_deref()
            && self.unsynced_steps > 0
        {
            let (m, v) = dev.download(&mut self.params)?;
            let steps = self.opt.steps() + self.unsynced_steps;
            self.opt = AdamW::from_state(&self.params, self.settings.adamw, steps, m, v)?;
            self.unsynced_steps = 0;
        }
        Ok(())
    }

    /// Continues the run saved in checkpoint `dir` on `tokens` (the same training split),
    /// exactly where it stopped. `total_steps`, if given, replaces the planned length of
    /// the run (the schedule's `total`), e.g. to train longer.
    pub fn resume(dir: &Path, tokens: Vec<u32>, total_steps: Option<u64>) -> Result<Trainer> {
        let state: TrainerState = checkpoint::read_json(&dir.join(checkpoint::STATE_FILE))?;
        let params = checkpoint::read_params(dir)?;
        let (m, v) = checkpoint::read_optimizer(dir)?;
        let mut settings = state.settings;
        if let Some(total) = total_steps {
            settings.schedule.total = total;
        }
        let opt = AdamW::from_state(&params, settings.adamw, state.optimizer_steps, m, v)?;
        let mut t = Trainer::new(params, tokens, settings)?;
        t.opt = opt;
        t.data.seek(state.data);
        (t.step, t.dropout_passes, t.history) = (state.step, state.dropout_passes, state.history);
        Ok(t)
    }

    /// Runs the kernels with another instruction set.
    pub fn with_isa(mut self, isa: Isa) -> Trainer {
        self.params = self.params.with_isa(isa);
        self
    }

    /// The parameters.
    pub fn params(&self) -> &ParamArena {
        &self.params
    }

    /// The settings.
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    /// Optimizer steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Losses so far.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The position of the next training batch.
    pub fn data_position(&self) -> Position {
        self.data.position()
    }

    /// One optimizer step (see the module docs).
    pub fn step(&mut self) -> Result<StepStats> {
        #[cfg(feature = "cuda")]
        if self.device.is_some() {
            return self.step_on_device();
        }
        let s = &self.settings;
        let (k, n) = (s.grad_accum, s.batch * s.seq);
        let dloss = 1.0 / (k * n) as f32;
        self.grads.fill(0.0);
        let view = self.params.view()?;
        let mut loss_sum = 0.0f64;
        for _ in 0..k {
            let (x, y) = self.data.next_batch();
            let dropout = Dropout::from_config(view.config, s.seed, self.dropout_passes);
            self.dropout_passes += 1;
            view.forward_train(&mut self.acts, &x, &dropout)?;
            let loss = view.backward(&mut self.acts, &x, &y, &dropout, dloss, &mut self.grads)?;
            loss_sum += f64::from(loss);
        }
        let isa = view.isa;
        let grad_norm = clip_grad_norm(isa, &mut self.grads, s.grad_clip)?;
        let lr = s.schedule.lr(self.step + 1);
        self.opt.step(isa, &mut self.params, &self.grads, lr)?;
        Ok(self.record_step(loss_sum, grad_norm, lr))
    }

    /// The bookkeeping that ends every optimizer step (CPU or GPU): count it and record
    /// its mean loss over the `grad_accum` micro-batches.
    fn record_step(&mut self, loss_sum: f64, grad_norm: f64, lr: f64) -> StepStats {
        let s = &self.settings;
        let (k, n) = (s.grad_accum, s.batch * s.seq);
        self.step += 1;
        let loss = (loss_sum / k as f64) as f32;
        self.history.train.push((self.step, loss));
        StepStats {
            step: self.step,
            loss,
            grad_norm,
            lr,
            tokens: k * n,
        }
    }

    /// [`Trainer::step`] on the GPU: the same data, schedule and bookkeeping.
    #[cfg(feature = "cuda")]
    fn step_on_device(&mut self) -> Result<StepStats> {
        let s = &self.settings;
        let (k, n) = (s.grad_accum, s.batch * s.seq);
        let dloss = 1.0 / (k * n) as f32;
        let dev = self.device.as_deref_mut().expect("called with a device");
        dev.zero_grads()?;
        let mut loss_sum = 0.0f64;
        for _ in 0..k {
            let (x, y) = self.data.next_batch();
            self.dropout_passes += 1;
            loss_sum += f64::from(dev.micro_batch(&x, &y, dloss)?);
        }
        let grad_norm = dev.clip(s.grad_clip)?;
        let lr = s.schedule.lr(self.step + 1);
        dev.adamw(&s.adamw, lr, self.opt.steps() + self.unsynced_steps + 1)?;
        self.unsynced_steps += 1;
        Ok(self.record_step(loss_sum, grad_norm, lr))
    }

    /// The loss on `tokens` (e.g. the validation split) without dropout, in batches of
    /// the training (B, T); see [`eval::evaluate`]. Runs on the CPU (after a
    /// [`Trainer::sync`] for a run on the GPU).
    pub fn evaluate(&mut self, tokens: &[u32], max_batches: Option<usize>) -> Result<Evaluation> {
        self.sync()?;
        let view = self.params.view()?;
        eval::evaluate(&view, tokens, &mut self.acts, max_batches)
    }

    /// Records a validation loss at the current step (for the plot and checkpoints).
    pub fn record_val(&mut self, loss: f32) {
        self.history.val.push((self.step, loss));
    }

    /// Saves a checkpoint of the current step into `out` (see [`checkpoint`]); returns
    /// its directory.
    pub fn save(&mut self, out: &Path, tokenizer: &Tokenizer) -> Result<PathBuf> {
        self.sync()?;
        let state = TrainerState {
            step: self.step,
            optimizer_steps: self.opt.steps(),
            data: self.data.position(),
            dropout_passes: self.dropout_passes,
            settings: self.settings.clone(),
            history: self.history.clone(),
        };
        checkpoint::save_atomic(out, self.step, |dir| {
            checkpoint::write_model_dir(dir, &self.params, tokenizer, SaveDType::F32)?;
            let (m, v) = self.opt.moments();
            checkpoint::write_optimizer(dir, m, v)?;
            checkpoint::write_json(&dir.join(checkpoint::STATE_FILE), &state)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Config;
    use schedule::ScheduleKind;

    /// Asking for a GPU that is not there (no `cuda` feature, no driver or no device) is
    /// a device error, and the run carries on on the CPU.
    #[test]
    fn to_device_without_a_gpu_is_a_device_error() {
        let mut cfg = Config::gpt2_sized(1, 2, 32);
        (cfg.vocab_size, cfg.n_ctx) = (100, 16);
        (cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop) = (0.0, 0.0, 0.0);
        let params = ParamArena::gpt2_init(&cfg, 1).unwrap();
        let tokens: Vec<u32> = (0..500).map(|i| (i * 7 % 100) as u32).collect();
        let settings = TrainSettings {
            batch: 2,
            seq: 8,
            grad_accum: 1,
            schedule: Schedule {
                kind: ScheduleKind::Constant,
                lr: 1e-3,
                warmup: 0,
                total: 2,
                min_lr_frac: 0.1,
            },
            adamw: AdamWConfig::default(),
            grad_clip: 1.0,
            seed: 0,
            order: Order::Sequential,
        };
        let mut t = Trainer::new(params, tokens, settings).unwrap();
        match t.to_device(Device::Cuda(0)) {
            Err(Error::Device(msg)) => assert!(msg.contains("cuda:0"), "{msg}"),
            Ok(()) => eprintln!("a GPU is present: nothing to check here"),
            Err(e) => panic!("expected a device error, got {e}"),
        }
        assert!(t.step().unwrap().loss.is_finite());
        t.to_device(Device::Cpu).unwrap();
    }
}
