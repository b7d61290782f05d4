//! GPT-2's parameters: their names, shapes and order, and `Weights`, the borrowed view of
//! all of them that the forward pass reads.
//!
//! Names are Hugging Face's, without the `transformer.` prefix (`h.3.attn.c_attn.weight`).
//! Matmul weights come in one of two layouts for the whole model: Hugging Face's Conv1D
//! `(in, out)` ([`WeightLayout::InOut`]) or PyTorch/llm.c's Linear `(out, in)`
//! ([`WeightLayout::OutIn`]); the kernels read either without transposing.

use gpt2_kernels::cpu::matmul::{Weight, WeightData, WeightLayout};

use super::config::Config;
use crate::error::{Error, Result};

/// What role a parameter plays; decides weight decay and the layout of its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `wte` or `wpe`: (rows, C).
    Embedding,
    /// A matmul weight: (in, out) or (out, in) by the model's [`WeightLayout`].
    Matmul,
    /// A layer-norm gain or bias, or a matmul bias: 1-D.
    Vector,
}

impl ParamKind {
    /// Whether AdamW applies weight decay: to the tensors of two or more dimensions only,
    /// as nanoGPT does (embeddings and matmul weights, not biases or layer norms).
    pub fn decays(self) -> bool {
        !matches!(self, ParamKind::Vector)
    }
}

/// One parameter tensor: name, shape and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Hugging Face name without the `transformer.` prefix.
    pub name: String,
    /// Its shape, in the model's layout.
    pub shape: Vec<usize>,
    /// Its role.
    pub kind: ParamKind,
}

impl ParamSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The parameters of one block, in order: (suffix, in, out) for matmul weights, (suffix, n)
/// for vectors. `F` = `n_inner`.
const BLOCK: [(&str, ParamKind); 12] = [
    ("ln_1.weight", ParamKind::Vector),
    ("ln_1.bias", ParamKind::Vector),
    ("attn.c_attn.weight", ParamKind::Matmul),
    ("attn.c_attn.bias", ParamKind::Vector),
    ("attn.c_proj.weight", ParamKind::Matmul),
    ("attn.c_proj.bias", ParamKind::Vector),
    ("ln_2.weight", ParamKind::Vector),
    ("ln_2.bias", ParamKind::Vector),
    ("mlp.c_fc.weight", ParamKind::Matmul),
    ("mlp.c_fc.bias", ParamKind::Vector),
    ("mlp.c_proj.weight", ParamKind::Matmul),
    ("mlp.c_proj.bias", ParamKind::Vector),
];

/// Number of parameter tensors in one block.
pub const PARAMS_PER_BLOCK: usize = BLOCK.len();

/// Every parameter of a GPT-2 with `cfg`'s sizes, in a fixed order: `wte`, `wpe`, the 12
/// tensors of each block, `ln_f.weight`, `ln_f.bias`. `wte_rows` is `cfg.vocab_size`, or
/// more for checkpoints that pad the vocabulary (llm.c).
pub fn param_specs(cfg: &Config, layout: WeightLayout, wte_rows: usize) -> Vec<ParamSpec> {
    let (c, f) = (cfg.n_embd, cfg.n_inner);
    let mut v = vec![
        ParamSpec {
            name: "wte.weight".into(),
            shape: vec![wte_rows, c],
            kind: ParamKind::Embedding,
        },
        ParamSpec {
            name: "wpe.weight".into(),
            shape: vec![cfg.n_ctx, c],
            kind: ParamKind::Embedding,
        },
    ];
    for l in 0..cfg.n_layer {
        for (suffix, kind) in BLOCK {
            let shape = match suffix {
                "attn.c_attn.weight" => vec![c, 3 * c],
                "attn.c_attn.bias" => vec![3 * c],
                "attn.c_proj.weight" => vec![c, c],
                "mlp.c_fc.weight" => vec![c, f],
                "mlp.c_fc.bias" => vec![f],
                "mlp.c_proj.weight" => vec![f, c],
                _ => vec![c],
            };
            // (in, out) in Conv1D layout; (out, in) in Linear layout.
            let shape = match (kind, layout) {
                (ParamKind::Matmul, WeightLayout::OutIn) => vec![shape[1], shape[0]],
                _ => shape,
            };
            v.push(ParamSpec {
                name: format!("h.{l}.{suffix}"),
                shape,
                kind,
            });
        }
    }
    v.push(ParamSpec {
        name: "ln_f.weight".into(),
        shape: vec![c],
        kind: ParamKind::Vector,
    });
    v.push(ParamSpec {
        name: "ln_f.bias".into(),
        shape: vec![c],
        kind: ParamKind::Vector,
    });
    v
}

/// The weights of one transformer block, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct BlockWeights<'a> {
    /// (C) gain of the first layer norm.
    pub ln_1_w: &'a [f32],
    /// (C) bias of the first layer norm.
    pub ln_1_b: &'a [f32],
    /// C → 3C: the query, key and value projections side by side.
    pub c_attn_w: Weight<'a>,
    /// (3C)
    pub c_attn_b: &'a [f32],
    /// C → C: the attention output projection.
    pub c_proj_w: Weight<'a>,
    /// (C)
    pub c_proj_b: &'a [f32],
    /// (C) gain of the second layer norm.
    pub ln_2_w: &'a [f32],
    /// (C) bias of the second layer norm.
    pub ln_2_b: &'a [f32],
    /// C → F: the MLP's expansion.
    pub c_fc_w: Weight<'a>,
    /// (F)
    pub c_fc_b: &'a [f32],
    /// F → C: the MLP's projection back.
    pub mlp_proj_w: Weight<'a>,
    /// (C)
    pub mlp_proj_b: &'a [f32],
}

/// All weights of a GPT-2, borrowed: what the forward pass reads. Built by
/// [`crate::model::Gpt2::weights`] (loaded or memory-mapped tensors) and by the trainer
/// (its parameter arena).
#[derive(Debug, Clone)]
pub struct Weights<'a> {
    /// (Vp, C) token embedding rows for the lookup; Vp ≥ V when the vocabulary is padded.
    pub wte: &'a [f32],
    /// (maxT, C) position embeddings.
    pub wpe: &'a [f32],
    /// The blocks, first to last.
    pub blocks: Vec<BlockWeights<'a>>,
    /// (C) final layer norm gain.
    pub ln_f_w: &'a [f32],
    /// (C) final layer norm bias.
    pub ln_f_b: &'a [f32],
    /// C → V: the LM head, tied to `wte` (its first V rows, read as an (out, in) matrix;
    /// possibly a bf16 copy).
    pub lm_head: Weight<'a>,
}

/// Where [`Weights::from_slices`] gets each parameter: one f32 or bf16 slice per spec.
#[derive(Debug, Clone, Copy)]
pub enum ParamSlice<'a> {
    /// f32 data.
    F32(&'a [f32]),
    /// bf16 data (only allowed for matmul weights and the LM head).
    Bf16(&'a [half::bf16]),
}

impl<'a> Weights<'a> {
    /// Assembles the view from one slice per [`param_specs`] entry (same order), checking
    /// every length. `lm_head` overrides the tied head (e.g. with a bf16 copy of `wte`).
    pub fn from_slices(
        cfg: &Config,
        layout: WeightLayout,
        slices: &[ParamSlice<'a>],
        lm_head: Option<ParamSlice<'a>>,
    ) -> Result<Weights<'a>> {
        let n = 4 + PARAMS_PER_BLOCK * cfg.n_layer;
        if slices.len() != n {
            return Err(Error::Shape(format!(
                "expected {n} parameter tensors, got {}",
                slices.len()
            )));
        }
        let wte_len = match slices[0] {
            ParamSlice::F32(s) => s.len(),
            ParamSlice::Bf16(_) => {
                return Err(Error::Shape(
                    "wte must be f32 for the embedding lookup".into(),
                ));
            }
        };
        let specs = param_specs(cfg, layout, wte_len / cfg.n_embd.max(1));
        for (spec, s) in specs.iter().zip(slices) {
            let len = match s {
                ParamSlice::F32(s) => s.len(),
                ParamSlice::Bf16(s) => s.len(),
            };
            if len != spec.numel() {
                return Err(Error::Shape(format!(
                    "{}: {len} elements, expected {:?}",
                    spec.name, spec.shape
                )));
            }
        }
        let vector = |i: usize| match slices[i] {
            ParamSlice::F32(s) => Ok(s),
            ParamSlice::Bf16(_) => Err(Error::Shape(format!("{} must be f32", specs[i].name))),
        };
        let matmul = |i: usize| {
            let data = match slices[i] {
                ParamSlice::F32(s) => WeightData::F32(s),
                ParamSlice::Bf16(s) => WeightData::Bf16(s),
            };
            Weight { data, layout }
        };
        let wte = vector(0)?;
        let real_rows = cfg.vocab_size * cfg.n_embd;
        if wte.len() < real_rows {
            return Err(Error::Shape(format!(
                "wte has {} rows, fewer than the vocabulary of {}",
                wte.len() / cfg.n_embd,
                cfg.vocab_size
            )));
        }
        let lm_head = match lm_head {
            None => Weight {
                data: WeightData::F32(&wte[..real_rows]),
                layout: WeightLayout::OutIn,
            },
            Some(ParamSlice::F32(s)) if s.len() == real_rows => Weight {
                data: WeightData::F32(s),
                layout: WeightLayout::OutIn,
            },
            Some(ParamSlice::Bf16(s)) if s.len() == real_rows => Weight {
                data: WeightData::Bf16(s),
                layout: WeightLayout::OutIn,
            },
            Some(_) => {
                return Err(Error::Shape(
                    "lm_head must have vocab_size × n_embd elements".into(),
                ));
            }
        };
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            let b = 2 + PARAMS_PER_BLOCK * l;
            blocks.push(BlockWeights {
                ln_1_w: vector(b)?,
                ln_1_b: vector(b + 1)?,
                c_attn_w: matmul(b + 2),
                c_attn_b: vector(b + 3)?,
                c_proj_w: matmul(b + 4),
                c_proj_b: vector(b + 5)?,
                ln_2_w: vector(b + 6)?,
                ln_2_b: vector(b + 7)?,
                c_fc_w: matmul(b + 8),
                c_fc_b: vector(b + 9)?,
                mlp_proj_w: matmul(b + 10),
                mlp_proj_b: vector(b + 11)?,
            });
        }
        Ok(Weights {
            wte,
            wpe: vector(1)?,
            blocks,
            ln_f_w: vector(n - 2)?,
            ln_f_b: vector(n - 1)?,
            lm_head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_count_the_124m_parameters() {
        let cfg = Config::default();
        let specs = param_specs(&cfg, WeightLayout::InOut, cfg.vocab_size);
        assert_eq!(specs.len(), 4 + 12 * 12);
        assert_eq!(
            specs.iter().map(ParamSpec::numel).sum::<usize>(),
            cfg.num_params()
        );
        assert_eq!(specs[4].name, "h.0.attn.c_attn.weight");
        assert_eq!(specs[4].shape, vec![768, 2304]);
        let linear = param_specs(&cfg, WeightLayout::OutIn, cfg.vocab_size);
        assert_eq!(linear[4].shape, vec![2304, 768]);
        assert_eq!(specs.iter().filter(|s| s.kind.decays()).count(), 2 + 4 * 12);
    }
}
