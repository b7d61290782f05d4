//! The forward pass: full sequences (logits for every position), incremental decoding
//! with a KV cache, and training (every activation kept, with dropout), all through the
//! same [`block`].
//!
//! Shapes as in [`crate::model`]: N rows in flight, C channels, F = 4·C, V vocabulary.
//! Inference uses a [`Scratch`] sized once per call for N rows and reused by every layer
//! (it keeps no activations, only the KV cache); training writes each layer's
//! activations into its own slices of an [`Activations`] arena.

use gpt2_kernels::cpu::simd::Isa;
use gpt2_kernels::cpu::{attention, crossentropy, dropout, embedding, layernorm, matmul, residual};

use super::ModelView;
use super::activations::{ActSlices, Activations, LayerActs, Scratch, ScratchSlices};
use super::config::Config;
use super::dropout::{Dropout, LayerSites, Site};
use super::params::BlockWeights;
use crate::error::{Error, Result};
use crate::profile::{self, Work};

/// Keys and values of every layer for a fixed set of sequences, allocated once up to
/// `n_ctx` positions: `k`, `v` are (L, S, maxT, C).
#[derive(Debug, Clone)]
pub struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
    lens: Vec<usize>,
    n_layer: usize,
    n_ctx: usize,
    c: usize,
}

impl KvCache {
    /// An empty cache for `n_seqs` sequences of up to `cfg.n_ctx` tokens.
    pub fn new(cfg: &Config, n_seqs: usize) -> KvCache {
        let n = cfg.n_layer * n_seqs * cfg.n_ctx * cfg.n_embd;
        KvCache {
            k: vec![0.0; n],
            v: vec![0.0; n],
            lens: vec![0; n_seqs],
            n_layer: cfg.n_layer,
            n_ctx: cfg.n_ctx,
            c: cfg.n_embd,
        }
    }

    /// Number of sequences.
    pub fn n_seqs(&self) -> usize {
        self.lens.len()
    }

    /// Tokens already cached for sequence `seq`.
    pub fn len(&self, seq: usize) -> usize {
        self.lens[seq]
    }

    /// Whether no sequence has any cached token.
    pub fn is_empty(&self) -> bool {
        self.lens.iter().all(|&l| l == 0)
    }

    /// Forgets sequence `seq` (its slots are reused).
    pub fn clear(&mut self, seq: usize) {
        self.lens[seq] = 0;
    }

    /// Bytes held by the cache.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 4
    }

    /// Offset of (layer, seq, position 0) in `k`/`v`.
    fn base(&self, layer: usize, seq: usize) -> usize {
        ((layer * self.lens.len() + seq) * self.n_ctx) * self.c
    }
}

/// New tokens for one sequence of a [`KvCache`].
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Which sequence of the cache.
    pub seq: usize,
    /// Its new tokens (at least one), appended after the cached ones.
    pub tokens: &'a [u32],
}

/// How attention sees the N rows in flight.
enum Attn<'c, 's> {
    /// B sequences of T tokens each, from position 0, no cache.
    Full { b: usize, t: usize },
    /// Ragged new tokens of several cached sequences.
    Cached {
        cache: &'c mut KvCache,
        segments: &'s [Segment<'s>],
    },
}

/// Training's dropout in one block: its sites, and scratch for a dropped branch.
struct BlockDropout<'s> {
    sites: LayerSites,
    branch: &'s mut [f32], // (N, C)
}

fn check_tokens(cfg: &Config, tokens: &[u32]) -> Result<()> {
    match tokens.iter().position(|&t| t as usize >= cfg.vocab_size) {
        Some(i) => Err(Error::Input(format!(
            "unknown token id {} at position {i}: the vocabulary has {} tokens",
            tokens[i], cfg.vocab_size
        ))),
        None => Ok(()),
    }
}

/// Checks that `tokens` form a (B, T) batch that fits the context.
fn check_batch(cfg: &Config, tokens: &[u32], b: usize, t: usize) -> Result<()> {
    if tokens.len() != b * t || t == 0 {
        return Err(Error::Input(format!(
            "{} tokens do not form a (B={b}, T={t}) batch with T ≥ 1",
            tokens.len()
        )));
    }
    if t > cfg.n_ctx {
        return Err(Error::Input(format!(
            "sequence of {t} tokens exceeds the context of {} positions",
            cfg.n_ctx
        )));
    }
    check_tokens(cfg, tokens)
}

impl ModelView<'_> {
    /// Full-sequence forward: `tokens` (B, T) → logits (B, T, V). If `hidden` is given it
    /// receives what Hugging Face calls `hidden_states`: the embeddings, the residual stream
    /// after each block but the last, and the final layer norm's output (L + 1 tensors of
    /// (B, T, C)).
    pub fn forward_full(
        &self,
        tokens: &[u32],
        b: usize,
        t: usize,
        hidden: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<Vec<f32>> {
        let cfg = self.config;
        check_batch(cfg, tokens, b, t)?;
        let positions: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let mut scratch = Scratch::new(cfg, b * t);
        let mut s = scratch.slices(cfg);
        self.run(tokens, &positions, Attn::Full { b, t }, &mut s, hidden)?;
        let mut logits = vec![0.0; b * t * cfg.vocab_size];
        self.lm_head(&mut logits, s.fin.lnf)?;
        Ok(logits)
    }

    /// Incremental forward with a KV cache: appends each segment's tokens to its sequence and
    /// returns the logits (S, V) of the last new token of each segment, in segment order.
    /// Segments must name distinct sequences; a sequence may not grow past `n_ctx`.
    pub fn forward_cached(
        &self,
        cache: &mut KvCache,
        segments: &[Segment<'_>],
    ) -> Result<Vec<f32>> {
        let cfg = self.config;
        if cache.n_layer != cfg.n_layer || cache.c != cfg.n_embd || cache.n_ctx != cfg.n_ctx {
            return Err(Error::Shape(
                "KV cache was made for another model config".into(),
            ));
        }
        let mut seen = vec![false; cache.n_seqs()];
        let mut tokens = Vec::new();
        let mut positions = Vec::new();
        for seg in segments {
            if seg.seq >= cache.n_seqs() || std::mem::replace(&mut seen[seg.seq], true) {
                return Err(Error::Input(format!(
                    "segment for sequence {} is out of range or repeated",
                    seg.seq
                )));
            }
            if seg.tokens.is_empty() {
                return Err(Error::Input(format!(
                    "segment for sequence {} has no tokens",
                    seg.seq
                )));
            }
            let start = cache.lens[seg.seq];
            if start + seg.tokens.len() > cfg.n_ctx {
                return Err(Error::Input(format!(
                    "sequence {} would hold {} tokens, more than the context of {} positions",
                    seg.seq,
                    start + seg.tokens.len(),
                    cfg.n_ctx
                )));
            }
            check_tokens(cfg, seg.tokens)?;
            tokens.extend_from_slice(seg.tokens);
            positions.extend((start..start + seg.tokens.len()).map(|p| p as u32));
        }
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let c = cfg.n_embd;
        let mut scratch = Scratch::new(cfg, tokens.len());
        let mut s = scratch.slices(cfg);
        let attn = Attn::Cached {
            cache: &mut *cache,
            segments,
        };
        self.run(&tokens, &positions, attn, &mut s, None)?;
        for seg in segments {
            cache.lens[seg.seq] += seg.tokens.len();
        }
        // Only the last row of each segment is needed: gather them, then one LM-head matmul.
        let mut last = Vec::with_capacity(segments.len() * c);
        let mut row = 0;
        for seg in segments {
            row += seg.tokens.len();
            last.extend_from_slice(&s.fin.lnf[(row - 1) * c..row * c]);
        }
        let mut logits = vec![0.0; segments.len() * cfg.vocab_size];
        self.lm_head(&mut logits, &last)?;
        Ok(logits)
    }

    /// Training forward: `tokens` (B, T) → logits (B, T, V) in `acts`, keeping every
    /// activation the backward pass needs, with `dropout` (see [`Dropout`]). With dropout
    /// off, the logits are bitwise those of [`ModelView::forward_full`]: the same blocks
    /// run on the same kernels.
    pub fn forward_train(
        &self,
        acts: &mut Activations,
        tokens: &[u32],
        dropout: &Dropout,
    ) -> Result<()> {
        let cfg = self.config;
        let (b, t) = (acts.batch(), acts.seq());
        check_acts(cfg, acts)?;
        check_batch(cfg, tokens, b, t)?;
        let sites = dropout.sites(cfg, b, t);
        let (positions, a) = acts.split();
        let ActSlices {
            encoded,
            layers,
            mut residual3,
            fin,
            logits,
            branch,
            ..
        } = a;
        self.embed(encoded, tokens, positions, sites.embd, branch)?;
        for (l, (bw, la)) in self.weights.blocks.iter().zip(layers).enumerate() {
            let (done, rest) = residual3.split_at_mut(l);
            let x = done.last().map_or(&*encoded, |r| &**r);
            let drop = BlockDropout {
                sites: sites.layers[l],
                branch: &mut *branch,
            };
            self.block(bw, l, &mut Attn::Full { b, t }, x, la, rest[0], Some(drop))?;
        }
        let x = residual3.last().map_or(&*encoded, |r| &**r);
        self.layernorm(
            fin.lnf,
            fin.lnf_mean,
            fin.lnf_rstd,
            x,
            (self.weights.ln_f_w, self.weights.ln_f_b),
        )?;
        self.lm_head(logits, fin.lnf)
    }

    /// The mean cross-entropy of the logits of the last [`ModelView::forward_train`]
    /// against `targets` (B, T); the per-position losses stay in `acts`.
    pub fn loss(&self, acts: &mut Activations, targets: &[u32]) -> Result<f32> {
        check_acts(self.config, acts)?;
        let (_, a) = acts.split();
        let v = self.config.vocab_size;
        let work = Work::bytes(4 * a.logits.len());
        profile::op("crossentropy fwd", work, || {
            crossentropy::forward(self.isa, a.losses, a.logits, targets, v)
        })?;
        Ok(mean(a.losses))
    }

    /// logits (M, V) = `ln` (M, C) · lm_headᵀ.
    fn lm_head(&self, logits: &mut [f32], ln: &[f32]) -> Result<()> {
        let (c, v) = (self.config.n_embd, self.config.vocab_size);
        let w = self.weights.lm_head;
        let work = Work::matmul(ln.len() / c, c, v, &w);
        profile::op("lm_head fwd", work, || {
            matmul::forward(self.isa, logits, ln, w, None, c, v)
        })?;
        Ok(())
    }

    /// `x` (N, C) = dropout(wte[tokens] + wpe[positions]); `branch` is scratch.
    fn embed(
        &self,
        x: &mut [f32],
        tokens: &[u32],
        positions: &[u32],
        site: Option<Site>,
        branch: &mut [f32],
    ) -> Result<()> {
        let (w, isa, c) = (&self.weights, self.isa, self.config.n_embd);
        // Reads a wte row and a wpe row, writes a row of x, per token.
        let work = Work::bytes(3 * 4 * x.len());
        profile::op("embedding fwd", work, || match site {
            None => embedding::forward(isa, x, tokens, positions, w.wte, w.wpe, c),
            Some(s) => {
                embedding::forward(isa, branch, tokens, positions, w.wte, w.wpe, c)?;
                dropout::forward(isa, x, branch, s.p, s.seed, s.offset)
            }
        })?;
        Ok(())
    }

    /// Inference: embeddings, every block (ping-ponging between the two residual-stream
    /// buffers of `s`, reusing its one layer of activations), and the final layer norm
    /// into `s.fin.lnf` (N, C).
    fn run(
        &self,
        tokens: &[u32],
        positions: &[u32],
        mut attn: Attn<'_, '_>,
        s: &mut ScratchSlices<'_>,
        mut hidden: Option<&mut Vec<Vec<f32>>>,
    ) -> Result<()> {
        let [xa, xb] = &mut s.x;
        self.embed(xa, tokens, positions, None, &mut [])?;
        for (l, bw) in self.weights.blocks.iter().enumerate() {
            let (x, out) = if l % 2 == 0 {
                (&**xa, &mut **xb)
            } else {
                (&**xb, &mut **xa)
            };
            if let Some(h) = hidden.as_deref_mut() {
                h.push(x.to_vec());
            }
            self.block(bw, l, &mut attn, x, reborrow(&mut s.layer), out, None)?;
        }
        let x = if self.weights.blocks.len().is_multiple_of(2) {
            &**xa
        } else {
            &**xb
        };
        let fin = &mut s.fin;
        self.layernorm(
            fin.lnf,
            fin.lnf_mean,
            fin.lnf_rstd,
            x,
            (self.weights.ln_f_w, self.weights.ln_f_b),
        )?;
        if let Some(h) = hidden {
            h.push(fin.lnf.to_vec());
        }
        Ok(())
    }

    /// One transformer block: `out` (N, C) = the block applied to the residual stream `x`
    /// (N, C), keeping its activations in `a`:
    /// `residual2 = x + drop(c_proj(attention(c_attn(ln_1(x)))))`,
    /// `out = residual2 + drop(c_proj(gelu(c_fc(ln_2(residual2)))))`.
    #[allow(clippy::too_many_arguments)] // the block's operands, as in llm.c
    fn block(
        &self,
        bw: &BlockWeights<'_>,
        layer: usize,
        attn: &mut Attn<'_, '_>,
        x: &[f32],
        a: LayerActs<'_>,
        out: &mut [f32],
        drop: Option<BlockDropout<'_>>,
    ) -> Result<()> {
        let (cfg, isa) = (self.config, self.isa);
        let (c, f, nh) = (cfg.n_embd, cfg.n_inner, cfg.n_head);
        let (sites, branch) = match drop {
            Some(d) => (Some(d.sites), d.branch),
            None => (None, &mut [][..]),
        };
        let n = x.len() / c;
        // Attention branch.
        self.layernorm(a.ln1, a.ln1_mean, a.ln1_rstd, x, (bw.ln_1_w, bw.ln_1_b))?;
        let (w, b) = (bw.c_attn_w, Some(bw.c_attn_b));
        profile::op("matmul fwd", Work::matmul(n, c, 3 * c, &w), || {
            matmul::forward(isa, a.qkv, a.ln1, w, b, c, 3 * c)
        })?;
        match attn {
            Attn::Full { b, t } => {
                let p = sites.and_then(|s| s.attn);
                // Causal: two (T, T)·(T, HS) products over half the square.
                let flops = (*b * nh) as f64 * 2.0 * (*t * *t * (c / nh)) as f64;
                let bytes = 4 * (a.qkv.len() + a.atty.len());
                profile::op(
                    "attention fwd",
                    Work {
                        flops,
                        bytes: bytes as f64,
                    },
                    || attention::forward_train(isa, a.atty, a.lse, a.qkv, *b, *t, nh, p),
                )?;
            }
            Attn::Cached { cache, segments } => {
                // Each new query reads the cached keys and values of its sequence.
                let ctx: usize = segments
                    .iter()
                    .map(|s| s.tokens.len() * (cache.lens[s.seq] + s.tokens.len()))
                    .sum();
                let work = Work {
                    flops: 4.0 * (ctx * c) as f64,
                    bytes: (2 * 4 * ctx * c) as f64,
                };
                profile::op("attention fwd (KV cache)", work, || {
                    cached_attention(isa, cfg, layer, cache, segments, a.qkv, a.atty)
                })?
            }
        }
        let (w, b) = (bw.c_proj_w, Some(bw.c_proj_b));
        profile::op("matmul fwd", Work::matmul(n, c, c, &w), || {
            matmul::forward(isa, a.attproj, a.atty, w, b, c, c)
        })?;
        let site = sites.and_then(|s| s.attn_branch);
        add_branch(isa, a.residual2, x, a.attproj, site, branch)?;
        // MLP branch.
        let ln2 = (bw.ln_2_w, bw.ln_2_b);
        self.layernorm(a.ln2, a.ln2_mean, a.ln2_rstd, a.residual2, ln2)?;
        let (w, b) = (bw.c_fc_w, Some(bw.c_fc_b));
        profile::op("matmul+gelu fwd", Work::matmul(n, c, f, &w), || {
            matmul::forward_gelu(isa, a.fch_gelu, Some(a.fch), a.ln2, w, b, c, f)
        })?;
        let (w, b) = (bw.mlp_proj_w, Some(bw.mlp_proj_b));
        profile::op("matmul fwd", Work::matmul(n, f, c, &w), || {
            matmul::forward(isa, a.fcproj, a.fch_gelu, w, b, f, c)
        })?;
        let site = sites.and_then(|s| s.mlp_branch);
        add_branch(isa, out, a.residual2, a.fcproj, site, branch)
    }

    /// `out` (N, C) = layernorm(`x`) with `(weight, bias)`, keeping the row statistics.
    fn layernorm(
        &self,
        out: &mut [f32],
        mean: &mut [f32],
        rstd: &mut [f32],
        x: &[f32],
        (w, b): (&[f32], &[f32]),
    ) -> Result<()> {
        profile::op("layernorm fwd", Work::bytes(2 * 4 * x.len()), || {
            layernorm::forward(self.isa, out, mean, rstd, x, w, b)
        })?;
        Ok(())
    }
}

/// `out = x + dropout(branch)`; `scratch` (N, C) holds the dropped branch.
fn add_branch(
    isa: Isa,
    out: &mut [f32],
    x: &[f32],
    branch: &[f32],
    site: Option<Site>,
    scratch: &mut [f32],
) -> Result<()> {
    profile::op(
        "residual fwd",
        Work::bytes(3 * 4 * x.len()),
        || match site {
            None => residual::forward(isa, out, x, branch),
            Some(s) => {
                dropout::forward(isa, scratch, branch, s.p, s.seed, s.offset)?;
                residual::forward(isa, out, x, scratch)
            }
        },
    )?;
    Ok(())
}

/// Appends each segment's keys and values to the cache, then attends its queries to the
/// cached sequence.
fn cached_attention(
    isa: Isa,
    cfg: &Config,
    layer: usize,
    cache: &mut KvCache,
    segments: &[Segment<'_>],
    qkv: &[f32],
    atty: &mut [f32],
) -> Result<()> {
    let (c, nh) = (cfg.n_embd, cfg.n_head);
    let mut row = 0;
    for seg in segments {
        let n_new = seg.tokens.len();
        let start = cache.lens[seg.seq];
        let base = cache.base(layer, seg.seq);
        // qkv row r is [q | k | v], each C wide.
        for i in 0..n_new {
            let qkv_row = &qkv[(row + i) * 3 * c..(row + i + 1) * 3 * c];
            let at = base + (start + i) * c;
            cache.k[at..at + c].copy_from_slice(&qkv_row[c..2 * c]);
            cache.v[at..at + c].copy_from_slice(&qkv_row[2 * c..]);
        }
        let end = base + cache.n_ctx * c;
        attention::forward_cached(
            isa,
            &mut atty[row * c..(row + n_new) * c],
            &qkv[row * 3 * c..(row + n_new) * 3 * c],
            3 * c,
            &cache.k[base..end],
            &cache.v[base..end],
            start + n_new,
            c,
            nh,
        )?;
        row += n_new;
    }
    Ok(())
}

/// Shortens the borrows of a layer's slices, so one [`LayerActs`] serves every layer.
fn reborrow<'a>(a: &'a mut LayerActs<'_>) -> LayerActs<'a> {
    LayerActs {
        ln1: a.ln1,
        ln1_mean: a.ln1_mean,
        ln1_rstd: a.ln1_rstd,
        qkv: a.qkv,
        atty: a.atty,
        lse: a.lse,
        attproj: a.attproj,
        residual2: a.residual2,
        ln2: a.ln2,
        ln2_mean: a.ln2_mean,
        ln2_rstd: a.ln2_rstd,
        fch: a.fch,
        fch_gelu: a.fch_gelu,
        fcproj: a.fcproj,
    }
}

/// Checks that `acts` was made for a model of this config's sizes.
pub(super) fn check_acts(cfg: &Config, acts: &Activations) -> Result<()> {
    let sizes = |c: &Config| {
        (
            c.vocab_size,
            c.n_ctx,
            c.n_embd,
            c.n_layer,
            c.n_head,
            c.n_inner,
        )
    };
    if sizes(acts.config()) != sizes(cfg) {
        return Err(Error::Shape(
            "activations were allocated for another model config".into(),
        ));
    }
    Ok(())
}

/// The mean of `x`, summed in `f64`.
pub(super) fn mean(x: &[f32]) -> f32 {
    (x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len().max(1) as f64) as f32
}
