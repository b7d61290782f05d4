//! The backward pass: [`ModelView::forward_train`]'s ops in reverse, each op's backward
//! kernel reading the activations the forward kept in [`Activations`]:
//!
//! ```text
//! loss → logits (fused softmax + cross-entropy) → lm_head (tied: dW into wte's gradient)
//!      → ln_f → blocks L-1 .. 0 → dropout → embeddings (wte, wpe)
//! ```
//!
//! Gradients go into one arena laid out as the model's [`param_specs`] (the same as a
//! [`super::ParamArena`]) and, like every backward kernel, **accumulate**: zero the arena
//! once per optimizer step and gradient accumulation comes for free.
//!
//! The gradient of the residual stream is one (N, C) buffer, `dres`, updated in place:
//! it enters a block as d`out`, becomes d`residual2` once the MLP branch's layer norm has
//! added its part, and leaves as d`x` after the attention branch. Dropout masks are
//! regenerated from the same [`Dropout`] the forward used.

use gpt2_kernels::cpu::matmul::{Weight, WeightLayout};
use gpt2_kernels::cpu::simd::Isa;
use gpt2_kernels::cpu::{attention, crossentropy, dropout, embedding, gelu, layernorm, matmul};

use super::ModelView;
use super::activations::{Activations, GradBufs, LayerActs};
use super::config::Config;
use super::dropout::{Dropout, LayerSites, Site};
use super::forward::{check_acts, mean};
use super::params::{BlockWeights, PARAMS_PER_BLOCK, ParamSpec, param_specs};
use crate::error::{Error, Result};
use crate::profile::{self, Work};

/// The gradients of one block's parameters, in [`BlockWeights`] order.
struct BlockGrads<'a> {
    ln_1_w: &'a mut [f32],
    ln_1_b: &'a mut [f32],
    c_attn_w: &'a mut [f32],
    c_attn_b: &'a mut [f32],
    c_proj_w: &'a mut [f32],
    c_proj_b: &'a mut [f32],
    ln_2_w: &'a mut [f32],
    ln_2_b: &'a mut [f32],
    c_fc_w: &'a mut [f32],
    c_fc_b: &'a mut [f32],
    mlp_proj_w: &'a mut [f32],
    mlp_proj_b: &'a mut [f32],
}

/// The gradient arena carved into tensors.
struct Grads<'a> {
    wte: &'a mut [f32],
    wpe: &'a mut [f32],
    blocks: Vec<BlockGrads<'a>>,
    ln_f_w: &'a mut [f32],
    ln_f_b: &'a mut [f32],
}

impl<'a> Grads<'a> {
    /// Carves `arena` by `specs` (whose lengths it must add up to).
    fn carve(arena: &'a mut [f32], specs: &[ParamSpec]) -> Result<Grads<'a>> {
        let total: usize = specs.iter().map(ParamSpec::numel).sum();
        if arena.len() != total {
            return Err(Error::Shape(format!(
                "gradient arena has {} elements, the model has {total} parameters",
                arena.len()
            )));
        }
        let mut rest = arena;
        let mut tensors = specs.iter().map(|s| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(s.numel());
            rest = tail;
            head
        });
        let mut next = || tensors.next().unwrap_or_default();
        let (wte, wpe) = (next(), next());
        let n_layer = (specs.len() - 4) / PARAMS_PER_BLOCK;
        let blocks = (0..n_layer)
            .map(|_| BlockGrads {
                ln_1_w: next(),
                ln_1_b: next(),
                c_attn_w: next(),
                c_attn_b: next(),
                c_proj_w: next(),
                c_proj_b: next(),
                ln_2_w: next(),
                ln_2_b: next(),
                c_fc_w: next(),
                c_fc_b: next(),
                mlp_proj_w: next(),
                mlp_proj_b: next(),
            })
            .collect();
        Ok(Grads {
            wte,
            wpe,
            blocks,
            ln_f_w: next(),
            ln_f_b: next(),
        })
    }
}

/// The [`param_specs`] of a view's weights: their layout and `wte`'s row count.
fn specs_of(view: &ModelView<'_>) -> Vec<ParamSpec> {
    let cfg: &Config = view.config;
    let layout = view
        .weights
        .blocks
        .first()
        .map_or(WeightLayout::InOut, |b| b.c_attn_w.layout);
    param_specs(cfg, layout, view.weights.wte.len() / cfg.n_embd)
}

impl ModelView<'_> {
    /// The backward pass of the last [`ModelView::forward_train`] on `acts` (same
    /// `tokens` and `dropout`): computes each position's loss against `targets` (B, T),
    /// then **adds** `∂(dloss · Σ losses)/∂θ` to `grads` (laid out as [`param_specs`] for
    /// this model's layout, e.g. a [`super::ParamArena`]). `dloss = 1/(B·T)` gives the
    /// gradient of the mean loss; `1/(k·B·T)` averages k micro-batches. Returns the mean
    /// loss. Overwrites the logits in `acts` with their gradient.
    #[allow(clippy::too_many_arguments)] // a training step's operands
    pub fn backward(
        &self,
        acts: &mut Activations,
        tokens: &[u32],
        targets: &[u32],
        dropout: &Dropout,
        dloss: f32,
        grads: &mut [f32],
    ) -> Result<f32> {
        let (cfg, isa, w) = (self.config, self.isa, &self.weights);
        let (c, v) = (cfg.n_embd, cfg.vocab_size);
        let (b, t) = (acts.batch(), acts.seq());
        check_acts(cfg, acts)?;
        for (name, ids) in [("tokens", tokens), ("targets", targets)] {
            if ids.len() != b * t {
                return Err(Error::Input(format!(
                    "{} {name} for a (B={b}, T={t}) batch",
                    ids.len()
                )));
            }
        }
        let specs = specs_of(self);
        let mut g = Grads::carve(grads, &specs)?;
        let sites = dropout.sites(cfg, b, t);
        let (positions, a) = acts.split();
        let mut gb = a.grads;

        // Loss → dlogits, in place.
        // Reads the logits, writes dlogits in place.
        let work = Work::bytes(2 * 4 * a.logits.len());
        profile::op("crossentropy fwd+bwd", work, || {
            crossentropy::forward_backward(isa, a.losses, a.logits, targets, v, dloss)
        })?;
        // The tied LM head: logits = lnf · wteᵀ, so dW lands in wte's first V rows.
        gb.dln.fill(0.0);
        let dwte_head = &mut g.wte[..v * c];
        let fin = &a.fin;
        let (dlogits, lnf) = (&*a.logits, &*fin.lnf);
        let work = Work::matmul_backward(b * t, c, v, &w.lm_head);
        profile::op("lm_head bwd", work, || {
            let (dx, dw) = (Some(&mut *gb.dln), Some(dwte_head));
            matmul::backward(isa, dx, dw, None, dlogits, lnf, w.lm_head, c, v)
        })?;
        gb.dres.fill(0.0);
        let x_last = a.residual3.last().map_or(&*a.encoded, |r| &**r);
        let stats = (&*fin.lnf_mean, &*fin.lnf_rstd);
        layernorm_backward(
            isa,
            gb.dres,
            (g.ln_f_w, g.ln_f_b),
            gb.dln,
            x_last,
            w.ln_f_w,
            stats,
        )?;

        for l in (0..cfg.n_layer).rev() {
            let x = if l == 0 {
                &*a.encoded
            } else {
                &*a.residual3[l - 1]
            };
            let layer = Layer {
                bw: &w.blocks[l],
                acts: &a.layers[l],
                x,
                sites: sites.layers[l],
            };
            self.block_backward(&layer, &mut g.blocks[l], &mut gb, a.branch, (b, t))?;
        }

        let demb = branch_grad(isa, gb.dres, sites.embd, a.branch)?;
        // Reads a row of demb, updates a wte row and a wpe row, per token.
        profile::op("embedding bwd", Work::bytes(5 * 4 * demb.len()), || {
            embedding::backward(isa, g.wte, g.wpe, demb, tokens, positions, c)
        })?;
        Ok(mean(a.losses))
    }

    /// One block's backward: `gb.dres` enters as the gradient of the block's output and
    /// leaves as that of its input `x`; the parameter gradients accumulate into `g`.
    fn block_backward(
        &self,
        layer: &Layer<'_, '_>,
        g: &mut BlockGrads<'_>,
        gb: &mut GradBufs<'_>,
        branch: &mut [f32],
        (b, t): (usize, usize),
    ) -> Result<()> {
        let (cfg, isa) = (self.config, self.isa);
        let (c, f, nh) = (cfg.n_embd, cfg.n_inner, cfg.n_head);
        let (bw, a) = (layer.bw, layer.acts);
        // MLP branch: out = residual2 + drop(fcproj).
        let dfcproj = branch_grad(isa, gb.dres, layer.sites.mlp_branch, branch)?;
        let proj_grads = (&mut *g.mlp_proj_w, &mut *g.mlp_proj_b);
        let w_proj = bw.mlp_proj_w;
        linear_backward(
            isa,
            gb.dfch_gelu,
            proj_grads,
            dfcproj,
            a.fch_gelu,
            w_proj,
            (f, c),
        )?;
        gb.dfch.fill(0.0);
        profile::op("gelu bwd", Work::bytes(3 * 4 * a.fch.len()), || {
            gelu::backward(isa, gb.dfch, a.fch, gb.dfch_gelu)
        })?;
        let fc_grads = (&mut *g.c_fc_w, &mut *g.c_fc_b);
        linear_backward(isa, gb.dln, fc_grads, gb.dfch, a.ln2, bw.c_fc_w, (c, f))?;
        let ln2_grads = (&mut *g.ln_2_w, &mut *g.ln_2_b);
        let stats = (&*a.ln2_mean, &*a.ln2_rstd);
        layernorm_backward(
            isa,
            gb.dres,
            ln2_grads,
            gb.dln,
            a.residual2,
            bw.ln_2_w,
            stats,
        )?;
        // Attention branch: residual2 = x + drop(attproj).
        let dattproj = branch_grad(isa, gb.dres, layer.sites.attn_branch, branch)?;
        let proj_grads = (&mut *g.c_proj_w, &mut *g.c_proj_b);
        linear_backward(
            isa,
            gb.datty,
            proj_grads,
            dattproj,
            a.atty,
            bw.c_proj_w,
            (c, c),
        )?;
        gb.dqkv.fill(0.0);
        // Causal: four (T, T)·(T, HS) products over half the square.
        let flops = (b * nh) as f64 * 4.0 * (t * t * (c / nh)) as f64;
        let bytes = 4 * (2 * a.qkv.len() + 2 * a.atty.len());
        profile::op(
            "attention bwd",
            Work {
                flops,
                bytes: bytes as f64,
            },
            || {
                let (dqkv, datty, p) = (&mut *gb.dqkv, &*gb.datty, layer.sites.attn);
                attention::backward_train(isa, dqkv, datty, a.qkv, a.atty, a.lse, b, t, nh, p)
            },
        )?;
        // The key bias shifts every score of a row by the same q·b_k, which the softmax
        // ignores: its gradient is exactly zero. The kernels' sum of dK is zero only up
        // to rounding, and AdamW would turn that noise into ±lr steps (it divides by
        // √v ≈ |noise|), so the key part of dbias is restored to what it was.
        let key_bias = g.c_attn_b[c..2 * c].to_vec();
        let qkv_grads = (&mut *g.c_attn_w, &mut *g.c_attn_b);
        linear_backward(
            isa,
            gb.dln,
            qkv_grads,
            gb.dqkv,
            a.ln1,
            bw.c_attn_w,
            (c, 3 * c),
        )?;
        g.c_attn_b[c..2 * c].copy_from_slice(&key_bias);
        let ln1_grads = (&mut *g.ln_1_w, &mut *g.ln_1_b);
        let stats = (&*a.ln1_mean, &*a.ln1_rstd);
        layernorm_backward(isa, gb.dres, ln1_grads, gb.dln, layer.x, bw.ln_1_w, stats)?;
        Ok(())
    }
}

/// What a block's backward reads: its weights, its activations, its input, its dropout.
struct Layer<'r, 'a> {
    bw: &'r BlockWeights<'r>,
    acts: &'r LayerActs<'a>,
    x: &'r [f32],
    sites: LayerSites,
}

/// `dinp = dout · Wᵀ` (overwriting `dinp`), `dW += inpᵀ · dout`, `db += Σ dout` for a
/// linear layer of `k` inputs and `n` outputs.
fn linear_backward(
    isa: Isa,
    dinp: &mut [f32],
    (dw, db): (&mut [f32], &mut [f32]),
    dout: &[f32],
    inp: &[f32],
    w: Weight<'_>,
    (k, n): (usize, usize),
) -> Result<()> {
    dinp.fill(0.0);
    let work = Work::matmul_backward(inp.len() / k, k, n, &w);
    profile::op("matmul bwd", work, || {
        matmul::backward(isa, Some(dinp), Some(dw), Some(db), dout, inp, w, k, n)
    })?;
    Ok(())
}

/// `dx += ∂ layernorm(x) / ∂x · dout`, `(dw, db) +=` the weight and bias gradients,
/// from the forward's row `(mean, rstd)`.
fn layernorm_backward(
    isa: Isa,
    dx: &mut [f32],
    (dw, db): (&mut [f32], &mut [f32]),
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    (mean, rstd): (&[f32], &[f32]),
) -> Result<()> {
    // Reads x and dout, updates dx.
    profile::op("layernorm bwd", Work::bytes(4 * 4 * x.len()), || {
        layernorm::backward(isa, dx, dw, db, dout, x, w, mean, rstd)
    })?;
    Ok(())
}

/// The gradient of a dropout site's input given its output's `dout`: `dout` itself
/// without dropout, else the masked gradient in `scratch`.
fn branch_grad<'s>(
    isa: Isa,
    dout: &'s [f32],
    site: Option<Site>,
    scratch: &'s mut [f32],
) -> Result<&'s [f32]> {
    match site {
        None => Ok(dout),
        Some(s) => {
            scratch.fill(0.0);
            profile::op("dropout bwd", Work::bytes(2 * 4 * dout.len()), || {
                dropout::backward(isa, scratch, dout, s.p, s.seed, s.offset)
            })?;
            Ok(scratch)
        }
    }
}
