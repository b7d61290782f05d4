//! GPT-2: configuration, parameters, loading, the forward pass (inference and
//! training), and the backward pass.
//!
//! Training keeps the parameters in one [`ParamArena`] (gradients and optimizer moments
//! are arenas of the same layout) and the activations of a (B, T) batch in one
//! [`Activations`] arena; [`ModelView::forward_train`] and [`ModelView::backward`] run
//! the same blocks as inference, with [`Dropout`].
//!
//! Shape legend (as llm.c): B batch, T time (sequence length), C channels (`n_embd`),
//! NH heads, HS = C/NH head size, F = `n_inner` (4·C), V vocabulary, L layers,
//! N = rows in flight (B·T in a full pass, the new tokens of all sequences with a KV cache).
//!
//! The path of one token: [`embedding`](gpt2_kernels::cpu::embedding) →
//! L × [ln_1 → c_attn → attention → c_proj → +residual → ln_2 → c_fc → GELU → c_proj →
//! +residual] → ln_f → lm_head (tied to `wte`) → logits → [`crate::sample`].

mod activations;
mod arena;
mod backward;
mod config;
#[cfg(feature = "cuda")]
pub mod cuda;
mod dropout;
mod forward;
mod load;
mod params;
pub mod reference;

use gpt2_kernels::cpu::matmul::WeightLayout;
use gpt2_kernels::cpu::simd::Isa;

pub use activations::Activations;
pub use arena::ParamArena;
pub use config::{Config, GPT2_HEAD_SIZE};
pub use dropout::Dropout;
pub use forward::{KvCache, Segment};
pub use load::{LLMC_MAGIC, SAFETENSORS_FILE, find_in_hf_cache};
pub use params::{
    BlockWeights, PARAMS_PER_BLOCK, ParamKind, ParamSlice, ParamSpec, Weights, param_specs,
};

use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// What the forward pass needs from a model: its sizes, its weights and the instruction
/// set to run the CPU kernels with. Made by [`Gpt2::view`] for a loaded model and by the
/// trainer for its parameter arena, so generation and evaluation work on both.
#[derive(Debug, Clone)]
pub struct ModelView<'a> {
    /// The sizes.
    pub config: &'a Config,
    /// All weights, borrowed.
    pub weights: Weights<'a>,
    /// The instruction set for the CPU kernels.
    pub isa: Isa,
}

/// A GPT-2 ready for inference: its config and its parameters as tensors (memory-mapped
/// from the checkpoint where possible).
#[derive(Debug, Clone)]
pub struct Gpt2 {
    config: Config,
    layout: WeightLayout,
    /// One tensor per [`param_specs`] entry, in that order. Matmul weights are f32 or bf16,
    /// everything else f32.
    params: Vec<Tensor>,
    /// A separate LM head (V, C) when it differs in dtype from `wte` (bf16 weights).
    lm_head: Option<Tensor>,
    isa: Isa,
}

impl Gpt2 {
    /// Assembles a model from its parameter tensors (in [`param_specs`] order), checking
    /// every shape and dtype.
    pub fn from_params(
        config: Config,
        layout: WeightLayout,
        params: Vec<Tensor>,
        lm_head: Option<Tensor>,
    ) -> Result<Gpt2> {
        config.validate()?;
        let wte_rows = params.first().map_or(0, |t| t.shape()[0]);
        let specs = param_specs(&config, layout, wte_rows);
        if params.len() != specs.len() {
            return Err(Error::Shape(format!(
                "{} parameter tensors, expected {}",
                params.len(),
                specs.len()
            )));
        }
        for (spec, t) in specs.iter().zip(&params) {
            if t.shape() != spec.shape.as_slice() {
                return Err(Error::Shape(format!(
                    "{}: shape {:?}, expected {:?}",
                    spec.name,
                    t.shape(),
                    spec.shape
                )));
            }
            let ok = t.dtype() == DType::F32
                || (t.dtype() == DType::BF16 && spec.kind == ParamKind::Matmul);
            if !ok {
                return Err(Error::DType {
                    context: spec.name.clone(),
                    expected: DType::F32,
                    found: t.dtype(),
                });
            }
        }
        if wte_rows < config.vocab_size {
            return Err(Error::Shape(format!(
                "wte has {wte_rows} rows for a vocabulary of {}",
                config.vocab_size
            )));
        }
        let model = Gpt2 {
            config,
            layout,
            params,
            lm_head,
            isa: Isa::best(),
        };
        model.weights()?; // every slice must be reachable
        Ok(model)
    }

    /// A model with random weights (GPT-2's init, see [`ParamArena::gpt2_init`]), for
    /// benches and tests; deterministic in `seed`.
    pub fn random(config: Config, seed: u64) -> Result<Gpt2> {
        ParamArena::gpt2_init(&config, seed)?.to_model()
    }

    /// The model's sizes.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The layout of the matmul weights (Hugging Face Conv1D or PyTorch Linear).
    pub fn layout(&self) -> WeightLayout {
        self.layout
    }

    /// The parameter tensors, in [`param_specs`] order.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// The instruction set the CPU kernels run with (default: the best this CPU has).
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Runs the kernels with another instruction set (e.g. [`Isa::scalar`] to compare).
    pub fn with_isa(mut self, isa: Isa) -> Gpt2 {
        self.isa = isa;
        self
    }

    /// The same model with bf16 matmul weights and a bf16 LM head (f32 accumulation):
    /// half the bytes to stream per decoded token. Embeddings, biases and layer norms stay
    /// f32.
    pub fn with_bf16_weights(mut self) -> Result<Gpt2> {
        let specs = param_specs(&self.config, self.layout, self.params[0].shape()[0]);
        for (spec, t) in specs.iter().zip(self.params.iter_mut()) {
            if spec.kind == ParamKind::Matmul {
                *t = t.to_dtype(DType::BF16)?;
            }
        }
        if self.lm_head.is_none() {
            self.lm_head = Some(
                self.params[0]
                    .narrow(0, 0, self.config.vocab_size)?
                    .to_dtype(DType::BF16)?,
            );
        }
        Ok(self)
    }

    /// Bytes of weights read to produce one token at batch 1 (every matmul weight and the
    /// LM head): the numerator of the memory-bandwidth bound on decoding speed.
    pub fn weight_bytes_per_token(&self) -> usize {
        let specs = param_specs(&self.config, self.layout, self.params[0].shape()[0]);
        let matmul: usize = specs
            .iter()
            .zip(&self.params)
            .filter(|(s, _)| s.kind == ParamKind::Matmul)
            .map(|(_, t)| t.numel() * t.dtype().size())
            .sum();
        let head = self
            .lm_head
            .as_ref()
            .map_or(self.config.vocab_size * self.config.n_embd * 4, |t| {
                t.numel() * t.dtype().size()
            });
        matmul + head
    }

    /// The model as the forward pass sees it (see [`ModelView::forward_full`] and
    /// [`ModelView::forward_cached`]).
    pub fn view(&self) -> Result<ModelView<'_>> {
        Ok(ModelView {
            config: &self.config,
            weights: self.weights()?,
            isa: self.isa,
        })
    }

    /// The borrowed view of all weights that the forward pass reads.
    pub fn weights(&self) -> Result<Weights<'_>> {
        let slices = self
            .params
            .iter()
            .map(slice_of)
            .collect::<Result<Vec<_>>>()?;
        let lm_head = self.lm_head.as_ref().map(slice_of).transpose()?;
        Weights::from_slices(&self.config, self.layout, &slices, lm_head)
    }
}

fn slice_of(t: &Tensor) -> Result<ParamSlice<'_>> {
    Ok(match t.dtype() {
        DType::BF16 => ParamSlice::Bf16(t.as_slice()?),
        _ => ParamSlice::F32(t.as_slice()?),
    })
}
