//! The forward pass for inference: full sequences (logits for every position) and
//! incremental decoding with a KV cache, both through the same blocks.
//!
//! Shapes as in [`crate::model`]: N rows in flight, C channels, F = 4·C, V vocabulary.
//! Scratch buffers are sized once per call for N rows and reused by every layer: inference
//! keeps no activations, only the KV cache.

use gpt2_kernels::cpu::simd::Isa;
use gpt2_kernels::cpu::{attention, embedding, gelu, layernorm, matmul, residual};

use super::ModelView;
use super::config::Config;
use super::params::{BlockWeights, Weights};
use crate::error::{Error, Result};

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

/// Per-call scratch for N rows, reused by every layer.
struct Scratch {
    x: Vec<f32>,       // (N, C) residual stream
    ln: Vec<f32>,      // (N, C) layer-norm output
    mean: Vec<f32>,    // (N)
    rstd: Vec<f32>,    // (N)
    qkv: Vec<f32>,     // (N, 3C)
    atty: Vec<f32>,    // (N, C) attention output, heads side by side
    lse: Vec<f32>,     // (NH, N) log-sum-exp of each attention row (needed only for backward)
    proj: Vec<f32>,    // (N, C) output of a projection back to C
    fc: Vec<f32>,      // (N, F)
    fc_gelu: Vec<f32>, // (N, F)
}

impl Scratch {
    fn new(cfg: &Config, n: usize) -> Scratch {
        let (c, f) = (cfg.n_embd, cfg.n_inner);
        Scratch {
            x: vec![0.0; n * c],
            ln: vec![0.0; n * c],
            mean: vec![0.0; n],
            rstd: vec![0.0; n],
            qkv: vec![0.0; n * 3 * c],
            atty: vec![0.0; n * c],
            lse: vec![0.0; cfg.n_head * n],
            proj: vec![0.0; n * c],
            fc: vec![0.0; n * f],
            fc_gelu: vec![0.0; n * f],
        }
    }
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
        let (cfg, w, isa) = (self.config, &self.weights, self.isa);
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
        check_tokens(cfg, tokens)?;
        let positions: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let mut s = Scratch::new(cfg, b * t);
        run(
            cfg,
            w,
            isa,
            tokens,
            &positions,
            Attn::Full { b, t },
            &mut s,
            hidden,
        )?;
        let mut logits = vec![0.0; b * t * cfg.vocab_size];
        matmul::forward(
            isa,
            &mut logits,
            &s.ln,
            w.lm_head,
            None,
            cfg.n_embd,
            cfg.vocab_size,
        )?;
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
        let (cfg, w, isa) = (self.config, &self.weights, self.isa);
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
        let mut s = Scratch::new(cfg, tokens.len());
        run(
            cfg,
            w,
            isa,
            &tokens,
            &positions,
            Attn::Cached {
                cache: &mut *cache,
                segments,
            },
            &mut s,
            None,
        )?;
        for seg in segments {
            cache.lens[seg.seq] += seg.tokens.len();
        }
        // Only the last row of each segment is needed: gather them, then one LM-head matmul.
        let mut last = Vec::with_capacity(segments.len() * c);
        let mut row = 0;
        for seg in segments {
            row += seg.tokens.len();
            last.extend_from_slice(&s.ln[(row - 1) * c..row * c]);
        }
        let mut logits = vec![0.0; segments.len() * cfg.vocab_size];
        matmul::forward(isa, &mut logits, &last, w.lm_head, None, c, cfg.vocab_size)?;
        Ok(logits)
    }
}

/// Embeddings, every block, and the final layer norm into `s.ln` (N, C).
#[allow(clippy::too_many_arguments)]
fn run(
    cfg: &Config,
    w: &Weights<'_>,
    isa: Isa,
    tokens: &[u32],
    positions: &[u32],
    mut attn: Attn<'_, '_>,
    s: &mut Scratch,
    mut hidden: Option<&mut Vec<Vec<f32>>>,
) -> Result<()> {
    embedding::forward(isa, &mut s.x, tokens, positions, w.wte, w.wpe, cfg.n_embd)?;
    for (l, bw) in w.blocks.iter().enumerate() {
        if let Some(h) = hidden.as_deref_mut() {
            h.push(s.x.clone());
        }
        block(cfg, bw, isa, l, &mut attn, s)?;
    }
    layernorm::forward(
        isa,
        &mut s.ln,
        &mut s.mean,
        &mut s.rstd,
        &s.x,
        w.ln_f_w,
        w.ln_f_b,
    )?;
    if let Some(h) = hidden {
        h.push(s.ln.clone());
    }
    Ok(())
}

/// One transformer block on the residual stream `s.x` (N, C), in place.
fn block(
    cfg: &Config,
    bw: &BlockWeights<'_>,
    isa: Isa,
    layer: usize,
    attn: &mut Attn<'_, '_>,
    s: &mut Scratch,
) -> Result<()> {
    let (c, f, nh) = (cfg.n_embd, cfg.n_inner, cfg.n_head);
    // Attention branch: x + c_proj(attention(c_attn(ln_1(x)))).
    layernorm::forward(
        isa,
        &mut s.ln,
        &mut s.mean,
        &mut s.rstd,
        &s.x,
        bw.ln_1_w,
        bw.ln_1_b,
    )?;
    matmul::forward(
        isa,
        &mut s.qkv,
        &s.ln,
        bw.c_attn_w,
        Some(bw.c_attn_b),
        c,
        3 * c,
    )?; // (N, 3C)
    match attn {
        Attn::Full { b, t } => {
            attention::forward(isa, &mut s.atty, &mut s.lse, &s.qkv, *b, *t, nh)?
        }
        Attn::Cached { cache, segments } => {
            let mut row = 0;
            for seg in segments.iter() {
                let n_new = seg.tokens.len();
                let start = cache.lens[seg.seq];
                let base = cache.base(layer, seg.seq);
                // Append this segment's keys and values: qkv row r is [q | k | v], each C wide.
                for i in 0..n_new {
                    let qkv_row = &s.qkv[(row + i) * 3 * c..(row + i + 1) * 3 * c];
                    let at = base + (start + i) * c;
                    cache.k[at..at + c].copy_from_slice(&qkv_row[c..2 * c]);
                    cache.v[at..at + c].copy_from_slice(&qkv_row[2 * c..]);
                }
                let end = base + cache.n_ctx * c;
                attention::forward_cached(
                    isa,
                    &mut s.atty[row * c..(row + n_new) * c],
                    &s.qkv[row * 3 * c..(row + n_new) * 3 * c],
                    3 * c,
                    &cache.k[base..end],
                    &cache.v[base..end],
                    start + n_new,
                    c,
                    nh,
                )?;
                row += n_new;
            }
        }
    }
    matmul::forward(
        isa,
        &mut s.proj,
        &s.atty,
        bw.c_proj_w,
        Some(bw.c_proj_b),
        c,
        c,
    )?;
    residual_inplace(isa, &mut s.x, &s.proj)?;
    // MLP branch: x + c_proj(gelu(c_fc(ln_2(x)))).
    layernorm::forward(
        isa,
        &mut s.ln,
        &mut s.mean,
        &mut s.rstd,
        &s.x,
        bw.ln_2_w,
        bw.ln_2_b,
    )?;
    matmul::forward(isa, &mut s.fc, &s.ln, bw.c_fc_w, Some(bw.c_fc_b), c, f)?; // (N, F)
    gelu::forward(isa, &mut s.fc_gelu, &s.fc)?;
    matmul::forward(
        isa,
        &mut s.proj,
        &s.fc_gelu,
        bw.mlp_proj_w,
        Some(bw.mlp_proj_b),
        f,
        c,
    )?;
    residual_inplace(isa, &mut s.x, &s.proj)?;
    Ok(())
}

/// x += branch, through the residual kernel (which reads two inputs and writes one output).
fn residual_inplace(isa: Isa, x: &mut [f32], branch: &[f32]) -> Result<()> {
    let prev = x.to_vec();
    residual::forward(isa, x, &prev, branch)?;
    Ok(())
}
