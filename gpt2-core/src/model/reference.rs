//! The readable fallback: GPT-2's full-sequence forward written with the kernels' naive
//! `reference` implementations, one op after another, allocating as it goes. Slow, but
//! shares no fast code with `forward.rs`, so the tests use it as an oracle for the fast
//! path (KV cache, SIMD, threads) at real GPT-2 sizes.

use gpt2_kernels::cpu::{attention, embedding, gelu, layernorm, matmul, residual};

use super::config::Config;
use super::params::Weights;
use crate::error::{Error, Result};

/// `tokens` (B, T) → logits (B, T, V), naively.
pub fn forward(
    cfg: &Config,
    w: &Weights<'_>,
    tokens: &[u32],
    b: usize,
    t: usize,
) -> Result<Vec<f32>> {
    let (c, f, nh, v) = (cfg.n_embd, cfg.n_inner, cfg.n_head, cfg.vocab_size);
    if tokens.len() != b * t || t == 0 || t > cfg.n_ctx {
        return Err(Error::Input(format!(
            "{} tokens do not form a (B={b}, T={t}) batch within the context",
            tokens.len()
        )));
    }
    let n = b * t;
    let positions: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
    let mut x = vec![0.0; n * c];
    embedding::reference::forward(&mut x, tokens, &positions, w.wte, w.wpe, c)?;
    let (mut mean, mut rstd) = (vec![0.0; n], vec![0.0; n]);
    for bw in &w.blocks {
        let mut ln = vec![0.0; n * c];
        layernorm::reference::forward(&mut ln, &mut mean, &mut rstd, &x, bw.ln_1_w, bw.ln_1_b)?;
        let mut qkv = vec![0.0; n * 3 * c];
        matmul::reference::forward(&mut qkv, &ln, bw.c_attn_w, Some(bw.c_attn_b), c, 3 * c)?;
        let (mut atty, mut lse) = (vec![0.0; n * c], vec![0.0; nh * n]);
        attention::reference::forward(&mut atty, &mut lse, &qkv, b, t, nh)?;
        let mut proj = vec![0.0; n * c];
        matmul::reference::forward(&mut proj, &atty, bw.c_proj_w, Some(bw.c_proj_b), c, c)?;
        let mut x2 = vec![0.0; n * c];
        residual::reference::forward(&mut x2, &x, &proj)?;
        layernorm::reference::forward(&mut ln, &mut mean, &mut rstd, &x2, bw.ln_2_w, bw.ln_2_b)?;
        let mut fc = vec![0.0; n * f];
        matmul::reference::forward(&mut fc, &ln, bw.c_fc_w, Some(bw.c_fc_b), c, f)?;
        let mut fc_gelu = vec![0.0; n * f];
        gelu::reference::forward(&mut fc_gelu, &fc)?;
        matmul::reference::forward(
            &mut proj,
            &fc_gelu,
            bw.mlp_proj_w,
            Some(bw.mlp_proj_b),
            f,
            c,
        )?;
        residual::reference::forward(&mut x, &x2, &proj)?;
    }
    let mut ln = vec![0.0; n * c];
    layernorm::reference::forward(&mut ln, &mut mean, &mut rstd, &x, w.ln_f_w, w.ln_f_b)?;
    let mut logits = vec![0.0; n * v];
    matmul::reference::forward(&mut logits, &ln, w.lm_head, None, c, v)?;
    Ok(logits)
}
