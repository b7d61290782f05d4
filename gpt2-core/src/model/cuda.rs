//! GPT-2 inference on the GPU (`cuda` feature): the weights uploaded once, a KV cache on
//! the device, and the same block as [`super::ModelView::forward_cached`] made of the
//! CUDA twins of the CPU kernels (`gpt2_kernels::cuda`).
//!
//! Storage and activations are `T` (`f32`, or `bf16` with f32 arithmetic inside every
//! kernel); per-row statistics stay f32. One sequence per cache. The only host traffic
//! of a step is the new token ids going up and the last row's logits (V floats) coming
//! back for the sampler.
//!
//! What this deliberately does not do (yet): training on the GPU, sampling on the
//! device, CUDA-graph capture of the decode step, batched sequences. It has not run on
//! a GPU in this repository's CI (which has none): `gpt2-core/tests/cuda_model.rs`
//! compares it with the CPU forward wherever a device is present, and skips otherwise.

use std::sync::Arc;

use gpt2_kernels::cpu::matmul::{Weight, WeightData};
use gpt2_kernels::cuda::matmul::{self, Version, Weight as GpuWeight, WeightLayout};
use gpt2_kernels::cuda::{Gpu, MemoryStats};
use gpt2_kernels::cuda::{GpuBuf, GpuFloat, attention, embedding, layernorm, residual};

use super::{Config, Gpt2};
use crate::error::{Error, Result};
use crate::generate::Decoder;
use crate::tensor::Element;

/// One block's weights on the device.
struct CudaBlock<T: GpuFloat> {
    ln_1_w: GpuBuf<T>,
    ln_1_b: GpuBuf<T>,
    c_attn_w: GpuBuf<T>,
    c_attn_b: GpuBuf<T>,
    c_proj_w: GpuBuf<T>,
    c_proj_b: GpuBuf<T>,
    ln_2_w: GpuBuf<T>,
    ln_2_b: GpuBuf<T>,
    c_fc_w: GpuBuf<T>,
    c_fc_b: GpuBuf<T>,
    mlp_proj_w: GpuBuf<T>,
    mlp_proj_b: GpuBuf<T>,
}

/// A GPT-2 whose weights live on one GPU, as `T`.
pub struct CudaGpt2<T: GpuFloat> {
    gpu: Arc<Gpu>,
    config: Config,
    layout: WeightLayout,
    /// (Vp, C) token embedding (Vp ≥ V when padded, as llm.c's).
    wte: GpuBuf<T>,
    /// (maxT, C)
    wpe: GpuBuf<T>,
    blocks: Vec<CudaBlock<T>>,
    ln_f_w: GpuBuf<T>,
    ln_f_b: GpuBuf<T>,
    /// (V, C): the tied LM head, `wte`'s first V rows.
    lm_head: GpuBuf<T>,
}

/// The keys and values of one sequence on the device: per layer, the `(n_ctx, 3C)`
/// `c_attn` output rows of every position so far (queries included: keeping whole rows
/// makes appending one contiguous copy).
pub struct CudaKvCache<T: GpuFloat> {
    qkv: Vec<GpuBuf<T>>,
    len: usize,
}

impl<T: GpuFloat> CudaKvCache<T> {
    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the sequence (the memory is kept for the next one).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// Uploads f32 host values as `T`.
fn upload<T: GpuFloat + Element>(gpu: &Gpu, host: &[f32]) -> Result<GpuBuf<T>> {
    let v: Vec<T> = host.iter().map(|&x| T::from_f32(x)).collect();
    Ok(gpu.upload(&v)?)
}

/// Uploads a CPU matmul weight (f32 or bf16) as `T`, keeping its layout.
fn upload_weight<T: GpuFloat + Element>(gpu: &Gpu, w: &Weight<'_>) -> Result<GpuBuf<T>> {
    let v: Vec<T> = match w.data {
        WeightData::F32(d) => d.iter().map(|&x| T::from_f32(x)).collect(),
        WeightData::Bf16(d) => d.iter().map(|&x| T::from_f32(x.to_f32())).collect(),
    };
    Ok(gpu.upload(&v)?)
}

impl<T: GpuFloat + Element> CudaGpt2<T> {
    /// Uploads `model` to GPU `ordinal`, converting every parameter to `T`. Without the
    /// driver, a GPU or that ordinal: [`Error::Device`].
    pub fn upload(model: &Gpt2, ordinal: usize) -> Result<CudaGpt2<T>> {
        let gpu = crate::tensor::cuda_device(ordinal)?;
        let w = model.weights()?;
        let g = &*gpu;
        let blocks = w
            .blocks
            .iter()
            .map(|b| {
                Ok(CudaBlock {
                    ln_1_w: upload(g, b.ln_1_w)?,
                    ln_1_b: upload(g, b.ln_1_b)?,
                    c_attn_w: upload_weight(g, &b.c_attn_w)?,
                    c_attn_b: upload(g, b.c_attn_b)?,
                    c_proj_w: upload_weight(g, &b.c_proj_w)?,
                    c_proj_b: upload(g, b.c_proj_b)?,
                    ln_2_w: upload(g, b.ln_2_w)?,
                    ln_2_b: upload(g, b.ln_2_b)?,
                    c_fc_w: upload_weight(g, &b.c_fc_w)?,
                    c_fc_b: upload(g, b.c_fc_b)?,
                    mlp_proj_w: upload_weight(g, &b.mlp_proj_w)?,
                    mlp_proj_b: upload(g, b.mlp_proj_b)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CudaGpt2 {
            config: model.config().clone(),
            layout: model.layout(),
            wte: upload(g, w.wte)?,
            wpe: upload(g, w.wpe)?,
            blocks,
            ln_f_w: upload(g, w.ln_f_w)?,
            ln_f_b: upload(g, w.ln_f_b)?,
            lm_head: upload_weight(g, &w.lm_head)?,
            gpu,
        })
    }

    /// The model's sizes.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The device.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Device memory held by this process's allocator on the model's GPU (weights, cache,
    /// activations, and freed blocks kept for reuse).
    pub fn memory_stats(&self) -> MemoryStats {
        self.gpu.memory_stats()
    }

    /// An empty KV cache for one sequence of up to `n_ctx` tokens (allocated now).
    pub fn new_cache(&self) -> Result<CudaKvCache<T>> {
        let cfg = &self.config;
        let qkv = (0..cfg.n_layer)
            .map(|_| self.gpu.alloc(cfg.n_ctx * 3 * cfg.n_embd))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(CudaKvCache { qkv, len: 0 })
    }

    /// Appends `tokens` to the cached sequence and returns the logits (V) of the last one,
    /// as [`super::ModelView::forward_cached`] does for one segment.
    pub fn forward_cached(&self, cache: &mut CudaKvCache<T>, tokens: &[u32]) -> Result<Vec<f32>> {
        let cfg = &self.config;
        let (n, start) = (tokens.len(), cache.len);
        if n == 0 {
            return Err(Error::Input("no tokens to append".into()));
        }
        if cache.qkv.len() != cfg.n_layer {
            return Err(Error::Shape("KV cache was made for another model".into()));
        }
        if start + n > cfg.n_ctx {
            return Err(Error::Input(format!(
                "the sequence would hold {} tokens, more than the context of {} positions",
                start + n,
                cfg.n_ctx
            )));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(Error::Input(format!(
                "unknown token id {t}: the vocabulary has {} tokens",
                cfg.vocab_size
            )));
        }
        let (gpu, c, f, nh) = (&*self.gpu, cfg.n_embd, cfg.n_inner, cfg.n_head);
        let positions: Vec<u32> = (start..start + n).map(|p| p as u32).collect();
        // Activations for the N = n new rows; the allocator hands back the same blocks
        // every step.
        let mut x: GpuBuf<T> = gpu.alloc(n * c)?; // (N, C) residual stream
        let mut res2: GpuBuf<T> = gpu.alloc(n * c)?; // (N, C) after the attention branch
        let mut ln: GpuBuf<T> = gpu.alloc(n * c)?;
        let (mut mean, mut rstd) = (gpu.alloc::<f32>(n)?, gpu.alloc::<f32>(n)?);
        let mut qkv: GpuBuf<T> = gpu.alloc(n * 3 * c)?; // (N, 3C)
        let mut atty: GpuBuf<T> = gpu.alloc(n * c)?;
        let mut branch: GpuBuf<T> = gpu.alloc(n * c)?; // (N, C) a projection's output
        let mut fch: GpuBuf<T> = gpu.alloc(n * f)?; // (N, F) after GELU
        embedding::forward(gpu, &mut x, tokens, &positions, &self.wte, &self.wpe, c)?;
        let w = |buf| GpuWeight::new(buf, self.layout);
        for (bw, kv) in self.blocks.iter().zip(&mut cache.qkv) {
            // Attention branch: res2 = x + c_proj(attention(c_attn(ln_1(x)))).
            layernorm::forward(
                gpu, &mut ln, &mut mean, &mut rstd, &x, &bw.ln_1_w, &bw.ln_1_b,
            )?;
            let b = Some(&bw.c_attn_b);
            matmul::forward(
                gpu,
                Version::Auto,
                &mut qkv,
                &ln,
                w(&bw.c_attn_w),
                b,
                c,
                3 * c,
            )?;
            kv.copy_range_from(start * 3 * c, &qkv, 0, n * 3 * c)?;
            attention::forward_cached_qkv(gpu, &mut atty, kv, start + n, c, nh)?;
            let b = Some(&bw.c_proj_b);
            matmul::forward(
                gpu,
                Version::Auto,
                &mut branch,
                &atty,
                w(&bw.c_proj_w),
                b,
                c,
                c,
            )?;
            residual::forward(gpu, &mut res2, &x, &branch)?;
            // MLP branch: x = res2 + c_proj(gelu(c_fc(ln_2(res2)))).
            layernorm::forward(
                gpu, &mut ln, &mut mean, &mut rstd, &res2, &bw.ln_2_w, &bw.ln_2_b,
            )?;
            let (wf, bf) = (w(&bw.c_fc_w), Some(&bw.c_fc_b));
            matmul::forward_gelu(gpu, Version::Auto, &mut fch, None, &ln, wf, bf, c, f)?;
            let (wp, bp) = (w(&bw.mlp_proj_w), Some(&bw.mlp_proj_b));
            matmul::forward(gpu, Version::Auto, &mut branch, &fch, wp, bp, f, c)?;
            residual::forward(gpu, &mut x, &res2, &branch)?;
        }
        cache.len = start + n;
        // Only the last row is sampled from: ln_f and the LM head on it alone.
        let mut last: GpuBuf<T> = gpu.alloc(c)?;
        last.copy_range_from(0, &x, (n - 1) * c, c)?;
        let (mut lnf, mut m1, mut r1) = (gpu.alloc::<T>(c)?, gpu.alloc(1)?, gpu.alloc(1)?);
        layernorm::forward(
            gpu,
            &mut lnf,
            &mut m1,
            &mut r1,
            &last,
            &self.ln_f_w,
            &self.ln_f_b,
        )?;
        let mut logits: GpuBuf<T> = gpu.alloc(cfg.vocab_size)?;
        let head = GpuWeight::new(&self.lm_head, WeightLayout::OutIn);
        matmul::forward(
            gpu,
            Version::Auto,
            &mut logits,
            &lnf,
            head,
            None,
            c,
            cfg.vocab_size,
        )?;
        Ok(logits.to_vec()?.into_iter().map(Element::to_f32).collect())
    }
}

/// The GPU [`Decoder`] for [`crate::generate::generate_with`]: a model on the device and
/// one sequence's cache.
pub struct CudaDecoder<'m, T: GpuFloat> {
    model: &'m CudaGpt2<T>,
    cache: CudaKvCache<T>,
}

impl<'m, T: GpuFloat + Element> CudaDecoder<'m, T> {
    /// A decoder with an empty cache (allocated up to `n_ctx` now).
    pub fn new(model: &'m CudaGpt2<T>) -> Result<CudaDecoder<'m, T>> {
        Ok(CudaDecoder {
            cache: model.new_cache()?,
            model,
        })
    }
}

impl<T: GpuFloat + Element> Decoder for CudaDecoder<'_, T> {
    fn config(&self) -> &Config {
        &self.model.config
    }

    fn append(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.model.forward_cached(&mut self.cache, tokens)
    }
}
