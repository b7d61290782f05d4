//! All parameters of a GPT-2 in one `Vec<f32>`, for training: the tensors of
//! [`param_specs`] back to back, in that order, in Hugging Face's Conv1D layout
//! ([`WeightLayout::InOut`]) with `wte` exactly `V` rows. Gradients and the optimizer's
//! moments are arenas of the same length and layout, so the optimizer is one loop over
//! flat buffers and a tensor is the same range in each.

use gpt2_kernels::cpu::matmul::WeightLayout;
use gpt2_kernels::cpu::simd::Isa;
use gpt2_kernels::rng::Rng;

use super::config::Config;
use super::params::{ParamKind, ParamSlice, ParamSpec, Weights, param_specs};
use super::{Gpt2, ModelView};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The parameters of a GPT-2 in one arena (see the module docs).
#[derive(Debug, Clone)]
pub struct ParamArena {
    config: Config,
    specs: Vec<ParamSpec>,
    /// `offsets[i]..offsets[i + 1]` is tensor `i`; the last entry is the total.
    offsets: Vec<usize>,
    data: Vec<f32>,
    isa: Isa,
}

impl ParamArena {
    /// All parameters zero.
    pub fn zeros(config: &Config) -> Result<ParamArena> {
        config.validate()?;
        let specs = param_specs(config, WeightLayout::InOut, config.vocab_size);
        let mut offsets = vec![0];
        for s in &specs {
            offsets.push(offsets.last().copied().unwrap_or(0) + s.numel());
        }
        let total = offsets.last().copied().unwrap_or(0);
        Ok(ParamArena {
            config: config.clone(),
            specs,
            offsets,
            data: vec![0.0; total],
            isa: Isa::best(),
        })
    }

    /// GPT-2's initialisation (Hugging Face's `_init_weights`, nanoGPT's): weights and
    /// embeddings N(0, 0.02), the residual projections (`attn.c_proj`, `mlp.c_proj`)
    /// N(0, 0.02/√(2L)), biases 0, layer-norm gains 1. Deterministic in `seed`.
    pub fn gpt2_init(config: &Config, seed: u64) -> Result<ParamArena> {
        let mut arena = ParamArena::zeros(config)?;
        let mut rng = Rng::new(seed);
        let proj_std = 0.02 / (2.0 * config.n_layer as f64).sqrt();
        for i in 0..arena.specs.len() {
            let (kind, name) = (arena.specs[i].kind, arena.specs[i].name.clone());
            let t = arena.tensor_mut(i);
            match kind {
                ParamKind::Vector if name.contains("ln_") && name.ends_with("weight") => {
                    t.fill(1.0);
                }
                ParamKind::Vector => t.fill(0.0),
                _ => {
                    let std = if name.ends_with("c_proj.weight") {
                        proj_std
                    } else {
                        0.02
                    };
                    for x in t {
                        *x = (std * rng.next_normal()) as f32;
                    }
                }
            }
        }
        Ok(arena)
    }

    /// The parameters of a loaded model, converted to f32 and to the Conv1D layout (an
    /// llm.c model's `(out, in)` weights are transposed once here; its padded vocabulary
    /// rows are dropped).
    pub fn from_model(model: &Gpt2) -> Result<ParamArena> {
        let mut arena = ParamArena::zeros(model.config())?;
        let v = model.config().vocab_size;
        for (i, t) in model.params().iter().enumerate() {
            let t = match (i, arena.specs[i].kind, model.layout()) {
                (0, _, _) => t.narrow(0, 0, v)?,
                (_, ParamKind::Matmul, WeightLayout::OutIn) => t.transpose(0, 1)?,
                _ => t.clone(),
            };
            let data = t.to_vec_f32()?;
            arena.tensor_mut(i).copy_from_slice(&data);
        }
        Ok(arena.with_isa(model.isa()))
    }

    /// Runs the kernels with another instruction set.
    pub fn with_isa(mut self, isa: Isa) -> ParamArena {
        self.isa = isa;
        self
    }

    /// The instruction set the kernels run with.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The model's sizes (and dropout probabilities).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the dropout probabilities of the config (the sizes cannot change).
    pub fn set_dropout(&mut self, embd: f32, attn: f32, resid: f32) -> Result<()> {
        let mut cfg = self.config.clone();
        (cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop) = (embd, attn, resid);
        cfg.validate()?;
        self.config = cfg;
        Ok(())
    }

    /// The tensors, in arena order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Total number of parameters.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no parameters (never, for a valid config).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The whole arena.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The whole arena, mutable (the optimizer's view).
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The range of tensor `i` in this arena and in every arena of the same layout.
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets[i + 1]
    }

    /// Tensor `i` (in [`ParamArena::specs`] order).
    pub fn tensor(&self, i: usize) -> &[f32] {
        &self.data[self.range(i)]
    }

    /// Tensor `i`, mutable.
    pub fn tensor_mut(&mut self, i: usize) -> &mut [f32] {
        let r = self.range(i);
        &mut self.data[r]
    }

    /// The index of the tensor called `name` (Hugging Face's name, with or without the
    /// `transformer.` prefix).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        let name = name.strip_prefix("transformer.").unwrap_or(name);
        self.specs.iter().position(|s| s.name == name)
    }

    /// Splits any buffer of this arena's length (gradients, moments) into its tensors.
    pub fn split<'a>(&self, buf: &'a [f32]) -> Result<Vec<&'a [f32]>> {
        self.check_len(buf.len())?;
        Ok((0..self.specs.len()).map(|i| &buf[self.range(i)]).collect())
    }

    /// Checks that a buffer has the arena's length.
    pub fn check_len(&self, len: usize) -> Result<()> {
        if len != self.data.len() {
            return Err(Error::Shape(format!(
                "buffer of {len} elements for a parameter arena of {}",
                self.data.len()
            )));
        }
        Ok(())
    }

    /// The borrowed view of all weights that the forward pass reads.
    pub fn weights(&self) -> Result<Weights<'_>> {
        let slices: Vec<ParamSlice<'_>> = (0..self.specs.len())
            .map(|i| ParamSlice::F32(self.tensor(i)))
            .collect();
        Weights::from_slices(&self.config, WeightLayout::InOut, &slices, None)
    }

    /// The model as the forward and backward passes see it (sampling and evaluation
    /// during training run on the arena directly).
    pub fn view(&self) -> Result<ModelView<'_>> {
        Ok(ModelView {
            config: &self.config,
            weights: self.weights()?,
            isa: self.isa,
        })
    }

    /// A [`Gpt2`] with a copy of these parameters.
    pub fn to_model(&self) -> Result<Gpt2> {
        let params = (0..self.specs.len())
            .map(|i| Tensor::from_slice(self.tensor(i), &self.specs[i].shape))
            .collect::<Result<Vec<_>>>()?;
        Ok(
            Gpt2::from_params(self.config.clone(), WeightLayout::InOut, params, None)?
                .with_isa(self.isa),
        )
    }
}
