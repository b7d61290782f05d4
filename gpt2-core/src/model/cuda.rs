//! GPT-2 inference on the GPU (`cuda` feature): the weights uploaded once, a KV cache on
//! the device, and the same block as [`super::ModelView::forward_cached`] made of the
//! CUDA twins of the CPU kernels (`gpt2_kernels::cuda`).
//!
//! Storage and activations are `T` (`f32`, or `bf16` with f32 arithmetic inside every
//! kernel); per-row statistics stay f32. One sequence per cache; several advance
//! together with [`CudaGpt2::forward_batch`]. The logits stay on the device
//! ([`CudaGpt2::forward_logits`]) and the sampler runs there too
//! ([`CudaGpt2::sample`], `gpt2_kernels::cuda::sample`): the host traffic of a decoding
//! step is the new token ids going up and the chosen ids coming back. With
//! [`CudaDecoder::with_graph`], a batch-1 step is one replay of a CUDA graph.
//!
//! Training ([`CudaGpt2::forward_train`], [`CudaGpt2::backward`]) keeps every activation
//! of a (B, T) batch in [`CudaActivations`] and adds the gradients into a list of buffers
//! parallel to the parameters; `crate::train` drives it with f32 master weights and
//! AdamW on the device. Dropout is not implemented on the GPU (the configs must have it
//! at 0).
//!
//! What this deliberately does not do (yet): dropout, a graph for batched decoding. It
//! has not run on a GPU in this repository's CI (which has none):
//! `gpt2-core/tests/cuda_model.rs` compares it with the CPU forward and backward wherever
//! a device is present, and skips otherwise.

use std::sync::Arc;

use gpt2_kernels::cpu::matmul::{Weight, WeightData};
use gpt2_kernels::cuda::matmul::{self, Version, Weight as GpuWeight, WeightLayout};
use gpt2_kernels::cuda::{Gpu, GpuGraph, MemoryStats};
use gpt2_kernels::cuda::{
    GpuBuf, GpuFloat, attention, crossentropy, embedding, gelu, layernorm, residual, sample,
};

use super::{Config, Gpt2};
use crate::error::{Error, Result};
use crate::generate::Decoder;
use crate::sample::Sampler;
use crate::tensor::Element;

/// Position of each of a block's tensors in [`super::param_specs`] order.
mod slot {
    pub const LN_1_W: usize = 0;
    pub const LN_1_B: usize = 1;
    pub const C_ATTN_W: usize = 2;
    pub const C_ATTN_B: usize = 3;
    pub const C_PROJ_W: usize = 4;
    pub const C_PROJ_B: usize = 5;
    pub const LN_2_W: usize = 6;
    pub const LN_2_B: usize = 7;
    pub const C_FC_W: usize = 8;
    pub const C_FC_B: usize = 9;
    pub const MLP_PROJ_W: usize = 10;
    pub const MLP_PROJ_B: usize = 11;
}

/// Rows of `wte` on the device are padded with zeros to a multiple of this, so that the
/// LM head's products have rows of whole 16-byte chunks and run on the tensor cores
/// (50257 → 50304, as llm.c). The padded logits are never sampled, the cross-entropy
/// zeroes their gradient, and the padded rows stay zero.
const VOCAB_ALIGN: usize = 64;

/// A GPT-2 whose weights live on one GPU, as `T`: one buffer per parameter tensor, in
/// [`super::param_specs`] order (`wte`, `wpe`, 12 per block, `ln_f`), so that training
/// can keep gradients and optimizer state in parallel lists. `wte` has `Vp ≥ V` rows
/// (a multiple of 64: see `VOCAB_ALIGN`).
pub struct CudaGpt2<T: GpuFloat> {
    gpu: Arc<Gpu>,
    config: Config,
    layout: WeightLayout,
    pub(crate) params: Vec<GpuBuf<T>>,
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
    /// driver, a GPU or that ordinal: [`Error::Device`]. A vocabulary padded beyond
    /// `vocab_size` (llm.c) is not supported on the GPU.
    pub fn upload(model: &Gpt2, ordinal: usize) -> Result<CudaGpt2<T>> {
        let gpu = crate::tensor::cuda_device(ordinal)?;
        let cfg = model.config();
        let w = model.weights()?;
        if w.wte.len() != cfg.vocab_size * cfg.n_embd {
            return Err(Error::Input(format!(
                "the embedding has {} rows for a vocabulary of {}: padded vocabularies \
                 (llm.c checkpoints) are not supported on the GPU",
                w.wte.len() / cfg.n_embd,
                cfg.vocab_size
            )));
        }
        let g = &*gpu;
        let mut wte = w.wte.to_vec(); // (Vp, C), zero rows after the V real ones
        wte.resize(
            cfg.vocab_size.next_multiple_of(VOCAB_ALIGN) * cfg.n_embd,
            0.0,
        );
        let mut params = vec![upload(g, &wte)?, upload(g, w.wpe)?];
        for b in &w.blocks {
            params.extend([
                upload(g, b.ln_1_w)?,
                upload(g, b.ln_1_b)?,
                upload_weight(g, &b.c_attn_w)?,
                upload(g, b.c_attn_b)?,
                upload_weight(g, &b.c_proj_w)?,
                upload(g, b.c_proj_b)?,
                upload(g, b.ln_2_w)?,
                upload(g, b.ln_2_b)?,
                upload_weight(g, &b.c_fc_w)?,
                upload(g, b.c_fc_b)?,
                upload_weight(g, &b.mlp_proj_w)?,
                upload(g, b.mlp_proj_b)?,
            ]);
        }
        params.extend([upload(g, w.ln_f_w)?, upload(g, w.ln_f_b)?]);
        Ok(CudaGpt2 {
            config: cfg.clone(),
            layout: model.layout(),
            params,
            gpu,
        })
    }

    /// Parameter `j` (a [`slot`]) of block `l`.
    fn p(&self, l: usize, j: usize) -> &GpuBuf<T> {
        &self.params[2 + 12 * l + j]
    }

    /// A matmul weight of block `l`, in the model's layout.
    fn w(&self, l: usize, j: usize) -> GpuWeight<'_, T> {
        GpuWeight::new(self.p(l, j), self.layout)
    }

    /// `wte` (Vp, C), also the tied LM head.
    fn wte(&self) -> &GpuBuf<T> {
        &self.params[0]
    }

    /// Vp: the rows of `wte` and the columns of the logits on the device.
    fn vp(&self) -> usize {
        self.params[0].len() / self.config.n_embd
    }

    /// Zeroed buffers shaped as the parameters (on the device: `wte` with `Vp` rows), for
    /// the gradients of [`CudaGpt2::backward`].
    pub fn zeros_like_params(&self) -> Result<Vec<GpuBuf<T>>> {
        let zeros = self.params.iter().map(|p| self.gpu.zeros(p.len()));
        Ok(zeros.collect::<std::result::Result<_, _>>()?)
    }

    /// `ln_f`'s gain and bias.
    fn ln_f(&self) -> (&GpuBuf<T>, &GpuBuf<T>) {
        let n = self.params.len();
        (&self.params[n - 2], &self.params[n - 1])
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
        let mut logits = self.forward_batch(&mut [(cache, tokens)])?;
        Ok(logits.swap_remove(0))
    }

    /// [`CudaGpt2::forward_logits`], with the logits (V) of each sequence copied to the
    /// host.
    pub fn forward_batch(
        &self,
        seqs: &mut [(&mut CudaKvCache<T>, &[u32])],
    ) -> Result<Vec<Vec<f32>>> {
        let logits = self.forward_logits(seqs)?;
        let host: Vec<T> = logits.to_vec()?;
        let v = self.config.vocab_size;
        let row = |r: &[T]| r[..v].iter().map(|&x| x.to_f32()).collect();
        Ok(host.chunks(self.vp()).map(row).collect())
    }

    /// Checks one sequence's new tokens against its cache and the model.
    fn check_append(&self, cache: &CudaKvCache<T>, tokens: &[u32]) -> Result<()> {
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
        Ok(())
    }

    /// Batched generation: appends each sequence's new tokens to its own cache (different
    /// lengths are fine) and returns the logits of each one's last new token, in order,
    /// on the device: (S, Vp), of which the first V columns of each row are the logits.
    /// The matmuls, layer norms and the LM head run once over all new rows; the attention
    /// runs per sequence against its cache. Nothing is appended unless every sequence's
    /// input is valid.
    pub fn forward_logits(&self, seqs: &mut [(&mut CudaKvCache<T>, &[u32])]) -> Result<GpuBuf<T>> {
        for (cache, tokens) in seqs.iter() {
            self.check_append(cache, tokens)?;
        }
        if seqs.is_empty() {
            return Ok(self.gpu.alloc(0)?);
        }
        let (gpu, c, nh) = (&*self.gpu, self.config.n_embd, self.config.n_head);
        // The new rows of all sequences, one after another: (first row, count, start).
        let mut rows = Vec::with_capacity(seqs.len());
        let (mut tokens, mut positions) = (Vec::new(), Vec::new());
        for (cache, toks) in seqs.iter() {
            rows.push((tokens.len(), toks.len(), cache.len));
            tokens.extend_from_slice(toks);
            positions.extend((cache.len..cache.len + toks.len()).map(|p| p as u32));
        }
        // Activations for the N new rows; the allocator hands back the same blocks every
        // step.
        let mut step = StepBufs::new(self, tokens.len(), seqs.len())?;
        let wpe = &self.params[1];
        embedding::forward(gpu, &mut step.x, &tokens, &positions, self.wte(), wpe, c)?;
        let single = rows.len() == 1;
        self.blocks(&mut step, &mut |l, qkv, atty| {
            for ((cache, _), &(r, k, start)) in seqs.iter_mut().zip(&rows) {
                let kv = &mut cache.qkv[l];
                kv.copy_range_from(start * 3 * c, qkv, r * 3 * c, k * 3 * c)?;
                if single && start == 0 {
                    // A prompt from an empty cache is plain causal attention over its own
                    // rows: the full-sequence kernels (flash for bf16).
                    let mut lse = gpu.alloc::<f32>(nh * k)?;
                    let av = attention::Version::Auto;
                    attention::forward(gpu, av, atty, &mut lse, qkv, 1, k, nh)?;
                } else if single {
                    // The whole of `atty` is this sequence's: no staging copy.
                    attention::forward_cached_qkv(gpu, atty, kv, start + k, c, nh)?;
                } else {
                    let mut out: GpuBuf<T> = gpu.alloc(k * c)?;
                    attention::forward_cached_qkv(gpu, &mut out, kv, start + k, c, nh)?;
                    atty.copy_range_from(r * c, &out, 0, k * c)?;
                }
            }
            Ok(())
        })?;
        for ((cache, _), &(_, k, _)) in seqs.iter_mut().zip(&rows) {
            cache.len += k;
        }
        // Only each sequence's last row is sampled from: ln_f and the LM head on those.
        for (i, &(r, k, _)) in rows.iter().enumerate() {
            step.last
                .copy_range_from(i * c, &step.x, (r + k - 1) * c, c)?;
        }
        self.head(&mut step)?;
        Ok(step.logits)
    }

    /// The transformer blocks over the N rows of `step.x`, in place; `attend(layer, qkv,
    /// atty)` turns the layer's (N, 3C) `c_attn` rows into the attention's (N, C) output
    /// (and keeps what its KV cache needs).
    fn blocks(&self, step: &mut StepBufs<T>, attend: &mut Attend<'_, T>) -> Result<()> {
        let (gpu, c, f) = (&*self.gpu, self.config.n_embd, self.config.n_inner);
        let auto = Version::Auto;
        let StepBufs {
            x,
            res2,
            ln,
            mean,
            rstd,
            qkv,
            atty,
            branch,
            fch,
            ..
        } = step;
        for l in 0..self.config.n_layer {
            use slot::*;
            // Attention branch: res2 = x + c_proj(attention(c_attn(ln_1(x)))).
            let (lw, lb) = (self.p(l, LN_1_W), self.p(l, LN_1_B));
            layernorm::forward(gpu, ln, mean, rstd, x, lw, lb)?;
            let b = Some(self.p(l, C_ATTN_B));
            matmul::forward(gpu, auto, qkv, ln, self.w(l, C_ATTN_W), b, c, 3 * c)?;
            attend(l, qkv, atty)?;
            let b = Some(self.p(l, C_PROJ_B));
            matmul::forward(gpu, auto, branch, atty, self.w(l, C_PROJ_W), b, c, c)?;
            residual::forward(gpu, res2, x, branch)?;
            // MLP branch: x = res2 + c_proj(gelu(c_fc(ln_2(res2)))).
            let (lw, lb) = (self.p(l, LN_2_W), self.p(l, LN_2_B));
            layernorm::forward(gpu, ln, mean, rstd, res2, lw, lb)?;
            let (wf, bf) = (self.w(l, C_FC_W), Some(self.p(l, C_FC_B)));
            matmul::forward_gelu(gpu, auto, fch, None, ln, wf, bf, c, f)?;
            let (wp, bp) = (self.w(l, MLP_PROJ_W), Some(self.p(l, MLP_PROJ_B)));
            matmul::forward(gpu, auto, branch, fch, wp, bp, f, c)?;
            residual::forward(gpu, x, res2, branch)?;
        }
        Ok(())
    }

    /// `step.logits` (S, Vp) = LM head(ln_f(`step.last`)).
    fn head(&self, step: &mut StepBufs<T>) -> Result<()> {
        let (gpu, c) = (&*self.gpu, self.config.n_embd);
        let (fw, fb) = self.ln_f();
        let StepBufs {
            last,
            lnf,
            m1,
            r1,
            logits,
            ..
        } = step;
        layernorm::forward(gpu, lnf, m1, r1, last, fw, fb)?;
        let head = GpuWeight::new(self.wte(), WeightLayout::OutIn);
        matmul::forward(gpu, Version::Auto, logits, lnf, head, None, c, self.vp())?;
        Ok(())
    }

    /// The next token of each sequence, chosen on the device from the rows of `logits`
    /// ((S, Vp), from [`CudaGpt2::forward_logits`]) among the first `vocab` ids: row `s`
    /// with `samplers[s]` (which must all have the same parameters; each advances its own
    /// random stream as if it had sampled on the CPU, so a seed gives the same tokens on
    /// either) and `histories[s]` for the repetition penalty. Only the ids come back.
    pub fn sample(
        &self,
        logits: &GpuBuf<T>,
        samplers: &mut [Sampler],
        histories: &[&[u32]],
        vocab: usize,
    ) -> Result<Vec<u32>> {
        let Some(first) = samplers.first() else {
            return Ok(Vec::new());
        };
        let p = first.params().clone();
        if samplers.iter().any(|s| *s.params() != p) {
            return Err(Error::Input(
                "the sequences of one batch must share their sampling parameters".into(),
            ));
        }
        if histories.len() != samplers.len() {
            return Err(Error::Input(format!(
                "{} samplers but {} histories",
                samplers.len(),
                histories.len()
            )));
        }
        let filters = sample::Filters::from(&p);
        let uniforms: Vec<f64> = samplers.iter_mut().map(Sampler::next_uniform).collect();
        let v = vocab.min(self.config.vocab_size);
        let gpu = &*self.gpu;
        Ok(sample::sample(
            gpu,
            logits,
            self.vp(),
            v,
            &filters,
            histories,
            &uniforms,
        )?)
    }
}

/// A layer's attention in [`CudaGpt2::blocks`]: `(layer, qkv, atty)`.
type Attend<'a, T> = dyn FnMut(usize, &GpuBuf<T>, &mut GpuBuf<T>) -> Result<()> + 'a;

/// The activations of one inference step over N new rows of S sequences.
struct StepBufs<T: GpuFloat> {
    x: GpuBuf<T>,      // (N, C) residual stream
    res2: GpuBuf<T>,   // (N, C) after the attention branch
    ln: GpuBuf<T>,     // (N, C) a layer norm's output
    mean: GpuBuf<f32>, // (N)
    rstd: GpuBuf<f32>, // (N)
    qkv: GpuBuf<T>,    // (N, 3C)
    atty: GpuBuf<T>,   // (N, C) the attention's output
    branch: GpuBuf<T>, // (N, C) a projection's output
    fch: GpuBuf<T>,    // (N, F) after GELU
    last: GpuBuf<T>,   // (S, C) each sequence's last row
    lnf: GpuBuf<T>,    // (S, C) ln_f of it
    m1: GpuBuf<f32>,   // (S)
    r1: GpuBuf<f32>,   // (S)
    logits: GpuBuf<T>, // (S, Vp)
}

impl<T: GpuFloat + Element> StepBufs<T> {
    fn new(model: &CudaGpt2<T>, n: usize, s: usize) -> Result<StepBufs<T>> {
        let (gpu, c, f) = (&*model.gpu, model.config.n_embd, model.config.n_inner);
        Ok(StepBufs {
            x: gpu.alloc(n * c)?,
            res2: gpu.alloc(n * c)?,
            ln: gpu.alloc(n * c)?,
            mean: gpu.alloc(n)?,
            rstd: gpu.alloc(n)?,
            qkv: gpu.alloc(n * 3 * c)?,
            atty: gpu.alloc(n * c)?,
            branch: gpu.alloc(n * c)?,
            fch: gpu.alloc(n * f)?,
            last: gpu.alloc(s * c)?,
            lnf: gpu.alloc(s * c)?,
            m1: gpu.alloc(s)?,
            r1: gpu.alloc(s)?,
            logits: gpu.alloc(s * model.vp())?,
        })
    }
}

/// A batch-1 decoding step recorded as a CUDA graph against one cache: the token and
/// its position are read from device buffers that the host sets before each replay, so
/// the same launches serve every step.
struct DecodeGraph<T: GpuFloat> {
    token: GpuBuf<u32>,
    pos: GpuBuf<u32>,
    step: StepBufs<T>,
    graph: GpuGraph,
}

impl<T: GpuFloat + Element> DecodeGraph<T> {
    /// Records the step of `model` against `cache` (whose buffers it then addresses),
    /// which must have room for one more token.
    fn capture(model: &CudaGpt2<T>, cache: &mut CudaKvCache<T>) -> Result<DecodeGraph<T>> {
        let gpu = &*model.gpu;
        let (c, nh) = (model.config.n_embd, model.config.n_head);
        let (token, pos) = (gpu.zeros::<u32>(1)?, gpu.upload(&[cache.len as u32])?);
        let mut step = StepBufs::new(model, 1, 1)?;
        let record = |step: &mut StepBufs<T>, cache: &mut CudaKvCache<T>| -> Result<()> {
            let (wte, wpe) = (model.wte(), &model.params[1]);
            embedding::forward_at(gpu, &mut step.x, &token, &pos, wte, wpe, c)?;
            model.blocks(step, &mut |l, qkv, atty| {
                let kv = &mut cache.qkv[l];
                Ok(attention::append_and_attend_at(
                    gpu, atty, qkv, kv, &pos, c, nh,
                )?)
            })?;
            // One row: it is the last.
            step.last.copy_range_from(0, &step.x, 0, c)?;
            model.head(step)
        };
        // Once for real first: that loads every module and runs the matmul's self-test,
        // neither of which may happen during a capture. What it writes (the cache row at
        // the position about to be appended, the step's buffers) the first replay redoes.
        record(&mut step, cache)?;
        let graph = gpu.capture(|| record(&mut step, cache))?;
        Ok(DecodeGraph {
            token,
            pos,
            step,
            graph,
        })
    }

    /// Appends `token` to `cache` (checked by the caller) by replaying the step.
    fn replay(&mut self, cache: &mut CudaKvCache<T>, token: u32) -> Result<()> {
        self.token.copy_from_host(&[token])?;
        self.pos.copy_from_host(&[cache.len as u32])?;
        // SAFETY: the graph addresses the buffers of this DecodeGraph (owned, never
        // reallocated), the model's parameters (borrowed by the decoder that owns this
        // graph for as long as it lives) and `cache`'s layers — the decoder's own cache,
        // which this graph was captured against and which is never reallocated (`clear`
        // only resets its length). Everything runs on the device's one stream.
        unsafe { self.graph.launch()? };
        cache.len += 1;
        Ok(())
    }
}

/// The GPU [`Decoder`] for [`crate::generate::generate_with`]: a model on the device and
/// one sequence's cache.
pub struct CudaDecoder<'m, T: GpuFloat> {
    model: &'m CudaGpt2<T>,
    cache: CudaKvCache<T>,
    /// The logits (1, Vp) of the last appended token, on the device, when an eager step
    /// made them (a replay leaves them in the graph's buffers).
    logits: Option<GpuBuf<T>>,
    /// Replay single-token steps from a CUDA graph ([`CudaDecoder::with_graph`]),
    /// captured at the first one.
    use_graph: bool,
    graph: Option<DecodeGraph<T>>,
}

impl<'m, T: GpuFloat + Element> CudaDecoder<'m, T> {
    /// A decoder with an empty cache (allocated up to `n_ctx` now); every step launches
    /// its kernels one by one.
    pub fn new(model: &'m CudaGpt2<T>) -> Result<CudaDecoder<'m, T>> {
        Ok(CudaDecoder {
            cache: model.new_cache()?,
            model,
            logits: None,
            use_graph: false,
            graph: None,
        })
    }

    /// As [`CudaDecoder::new`], but single-token steps replay one CUDA graph of the whole step — embedding, 12 blocks, LM head — instead of
    /// launching ~150 kernels from the host: batch-1 decoding is otherwise bound by the
    /// launches. The prompt still runs eagerly. Replays compute exactly what the eager
    /// step computes (the same kernels on the same inputs).
    pub fn with_graph(model: &'m CudaGpt2<T>) -> Result<CudaDecoder<'m, T>> {
        let mut d = CudaDecoder::new(model)?;
        d.use_graph = true;
        Ok(d)
    }
}

impl<T: GpuFloat + Element> Decoder for CudaDecoder<'_, T> {
    fn config(&self) -> &Config {
        &self.model.config
    }

    fn append(&mut self, tokens: &[u32]) -> Result<()> {
        if self.use_graph && tokens.len() == 1 && !self.cache.is_empty() {
            self.model.check_append(&self.cache, tokens)?;
            let graph = match self.graph.take() {
                Some(graph) => graph,
                None => DecodeGraph::capture(self.model, &mut self.cache)?,
            };
            self.graph
                .insert(graph)
                .replay(&mut self.cache, tokens[0])?;
            self.logits = None;
            return Ok(());
        }
        self.logits = Some(
            self.model
                .forward_logits(&mut [(&mut self.cache, tokens)])?,
        );
        Ok(())
    }

    fn sample(&mut self, sampler: &mut Sampler, history: &[u32], vocab: usize) -> Result<u32> {
        let logits = match (&self.logits, &self.graph) {
            (Some(logits), _) => logits,
            (None, Some(graph)) => &graph.step.logits,
            (None, None) => {
                return Err(Error::Input(
                    "nothing appended yet: no logits to sample".into(),
                ));
            }
        };
        let ids = self
            .model
            .sample(logits, std::slice::from_mut(sampler), &[history], vocab)?;
        Ok(ids[0])
    }
}

// ---------------------------------------------------------------------------------
// Training: the forward pass keeping every activation, and its backward pass.

/// One block's saved activations, each (N, ·) with N = B·T.
struct LayerActs<T: GpuFloat> {
    ln1: GpuBuf<T>,
    ln1_mean: GpuBuf<f32>,
    ln1_rstd: GpuBuf<f32>,
    qkv: GpuBuf<T>,   // (N, 3C)
    atty: GpuBuf<T>,  // (N, C)
    lse: GpuBuf<f32>, // (B, NH, T)
    res2: GpuBuf<T>,  // (N, C) residual after the attention branch
    ln2: GpuBuf<T>,
    ln2_mean: GpuBuf<f32>,
    ln2_rstd: GpuBuf<f32>,
    fch: GpuBuf<T>, // (N, F) before GELU
    /// (N, F) after GELU; `None` when it is recomputed in the backward pass.
    fch_gelu: Option<GpuBuf<T>>,
    out: GpuBuf<T>, // (N, C) the block's output
}

/// The activations of a (B, T) training batch on the device, allocated once, and the
/// backward pass's scratch.
pub struct CudaActivations<T: GpuFloat> {
    b: usize,
    t: usize,
    encoded: GpuBuf<T>, // (N, C)
    layers: Vec<LayerActs<T>>,
    lnf: GpuBuf<T>,
    lnf_mean: GpuBuf<f32>,
    lnf_rstd: GpuBuf<f32>,
    logits: GpuBuf<T>, // (N, Vp); dlogits after the backward
    losses: GpuBuf<f32>,
    branch: GpuBuf<T>, // (N, C) scratch: a projection's output
    dres: GpuBuf<T>,   // (N, C) gradient of the residual stream
    dln: GpuBuf<T>,    // (N, C)
    datty: GpuBuf<T>,  // (N, C)
    dqkv: GpuBuf<T>,   // (N, 3C)
    dfch: GpuBuf<T>,   // (N, F)
    dfch_gelu: GpuBuf<T>,
    key_bias: GpuBuf<T>, // (C)
    /// (N, F): GELU's output for the layer at hand when layers do not keep theirs.
    gelu_scratch: Option<GpuBuf<T>>,
}

impl<T: GpuFloat> CudaActivations<T> {
    /// Activations for batches of `b` sequences of `t` tokens of `model`. With
    /// `recompute_gelu` (as llm.c's `-r 1`), the layers do not keep GELU's (N, 4C) output:
    /// one shared buffer holds it, and the backward pass recomputes it from the kept
    /// input, saving `(L − 1)·N·4C` elements for one extra GELU per layer.
    pub fn new(
        model: &CudaGpt2<T>,
        b: usize,
        t: usize,
        recompute_gelu: bool,
    ) -> Result<CudaActivations<T>> {
        let cfg = &model.config;
        if b == 0 || t == 0 || t > cfg.n_ctx {
            return Err(Error::Input(format!(
                "a (B={b}, T={t}) batch needs B, T ≥ 1 and T ≤ the context of {}",
                cfg.n_ctx
            )));
        }
        let g = &*model.gpu;
        let (n, c, f, nh) = (b * t, cfg.n_embd, cfg.n_inner, cfg.n_head);
        let layers = (0..cfg.n_layer)
            .map(|_| {
                Ok(LayerActs {
                    ln1: g.alloc(n * c)?,
                    ln1_mean: g.alloc(n)?,
                    ln1_rstd: g.alloc(n)?,
                    qkv: g.alloc(n * 3 * c)?,
                    atty: g.alloc(n * c)?,
                    lse: g.alloc(b * nh * t)?,
                    res2: g.alloc(n * c)?,
                    ln2: g.alloc(n * c)?,
                    ln2_mean: g.alloc(n)?,
                    ln2_rstd: g.alloc(n)?,
                    fch: g.alloc(n * f)?,
                    fch_gelu: (!recompute_gelu).then(|| g.alloc(n * f)).transpose()?,
                    out: g.alloc(n * c)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CudaActivations {
            b,
            t,
            encoded: g.alloc(n * c)?,
            layers,
            lnf: g.alloc(n * c)?,
            lnf_mean: g.alloc(n)?,
            lnf_rstd: g.alloc(n)?,
            logits: g.alloc(n * (model.params[0].len() / c))?, // (N, Vp)
            losses: g.alloc(n)?,
            branch: g.alloc(n * c)?,
            dres: g.alloc(n * c)?,
            dln: g.alloc(n * c)?,
            datty: g.alloc(n * c)?,
            dqkv: g.alloc(n * 3 * c)?,
            dfch: g.alloc(n * f)?,
            dfch_gelu: g.alloc(n * f)?,
            key_bias: g.alloc(c)?,
            gelu_scratch: recompute_gelu.then(|| g.alloc(n * f)).transpose()?,
        })
    }
}

impl<T: GpuFloat + Element> CudaGpt2<T> {
    /// Checks a (B, T) batch of ids for `acts`.
    fn check_batch(&self, acts: &CudaActivations<T>, ids: &[u32]) -> Result<()> {
        let v = self.config.vocab_size;
        if ids.len() != acts.b * acts.t {
            return Err(Error::Input(format!(
                "{} ids for a (B={}, T={}) batch",
                ids.len(),
                acts.b,
                acts.t
            )));
        }
        match ids.iter().find(|&&i| i as usize >= v) {
            Some(i) => Err(Error::Input(format!(
                "unknown token id {i}: the vocabulary has {v} tokens"
            ))),
            None => Ok(()),
        }
    }

    /// Training forward (no dropout): `tokens` (B, T) → logits (B, T, V) in `acts`,
    /// keeping what [`CudaGpt2::backward`] needs. The same ops as the CPU's
    /// `forward_train`, with full causal attention (flash for bf16).
    pub fn forward_train(&self, acts: &mut CudaActivations<T>, tokens: &[u32]) -> Result<()> {
        self.check_batch(acts, tokens)?;
        let cfg = &self.config;
        let (gpu, c, f, nh) = (&*self.gpu, cfg.n_embd, cfg.n_inner, cfg.n_head);
        let (b, t, auto) = (acts.b, acts.t, Version::Auto);
        let positions: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let wpe = &self.params[1];
        embedding::forward(
            gpu,
            &mut acts.encoded,
            tokens,
            &positions,
            self.wte(),
            wpe,
            c,
        )?;
        for l in 0..cfg.n_layer {
            use slot::*;
            let (done, rest) = acts.layers.split_at_mut(l);
            let x = done.last().map_or(&acts.encoded, |d| &d.out);
            let a = &mut rest[0];
            let (lw, lb) = (self.p(l, LN_1_W), self.p(l, LN_1_B));
            layernorm::forward(gpu, &mut a.ln1, &mut a.ln1_mean, &mut a.ln1_rstd, x, lw, lb)?;
            let bias = Some(self.p(l, C_ATTN_B));
            matmul::forward(
                gpu,
                auto,
                &mut a.qkv,
                &a.ln1,
                self.w(l, C_ATTN_W),
                bias,
                c,
                3 * c,
            )?;
            attention::forward(
                gpu,
                attention::Version::Auto,
                &mut a.atty,
                &mut a.lse,
                &a.qkv,
                b,
                t,
                nh,
            )?;
            let bias = Some(self.p(l, C_PROJ_B));
            let br = &mut acts.branch;
            matmul::forward(gpu, auto, br, &a.atty, self.w(l, C_PROJ_W), bias, c, c)?;
            residual::forward(gpu, &mut a.res2, x, br)?;
            let (lw, lb) = (self.p(l, LN_2_W), self.p(l, LN_2_B));
            layernorm::forward(
                gpu,
                &mut a.ln2,
                &mut a.ln2_mean,
                &mut a.ln2_rstd,
                &a.res2,
                lw,
                lb,
            )?;
            let (wf, bf) = (self.w(l, C_FC_W), Some(self.p(l, C_FC_B)));
            let gelu_out = match (&mut a.fch_gelu, &mut acts.gelu_scratch) {
                (Some(own), _) | (None, Some(own)) => own,
                (None, None) => unreachable!("one of the two is allocated"),
            };
            let pre = Some(&mut a.fch);
            matmul::forward_gelu(gpu, auto, gelu_out, pre, &a.ln2, wf, bf, c, f)?;
            let (wp, bp) = (self.w(l, MLP_PROJ_W), Some(self.p(l, MLP_PROJ_B)));
            matmul::forward(gpu, auto, br, gelu_out, wp, bp, f, c)?;
            residual::forward(gpu, &mut a.out, &a.res2, br)?;
        }
        let x = acts.layers.last().map_or(&acts.encoded, |d| &d.out);
        let (fw, fb) = self.ln_f();
        layernorm::forward(
            gpu,
            &mut acts.lnf,
            &mut acts.lnf_mean,
            &mut acts.lnf_rstd,
            x,
            fw,
            fb,
        )?;
        let head = GpuWeight::new(self.wte(), WeightLayout::OutIn);
        let vp = self.vp();
        matmul::forward(gpu, auto, &mut acts.logits, &acts.lnf, head, None, c, vp)
            .map_err(Error::from)
    }

    /// The mean cross-entropy of the last [`CudaGpt2::forward_train`] against `targets`
    /// (one copy of the N losses to the host).
    pub fn loss(&self, acts: &mut CudaActivations<T>, targets: &[u32]) -> Result<f32> {
        self.check_batch(acts, targets)?;
        let v = self.config.vocab_size;
        crossentropy::forward(&self.gpu, &mut acts.losses, &acts.logits, targets, v)?;
        mean_of(&acts.losses)
    }

    /// The backward pass of the last [`CudaGpt2::forward_train`] (same `tokens`): adds
    /// `∂(dloss · Σ losses)/∂θ` to `grads` (one buffer per parameter, as `self.params`)
    /// and returns the mean loss. As the CPU's `backward`, including the tied LM head's
    /// gradient into `wte` and the exact zero of the key bias's gradient. Overwrites the
    /// logits with their gradient.
    pub fn backward(
        &self,
        acts: &mut CudaActivations<T>,
        tokens: &[u32],
        targets: &[u32],
        dloss: f32,
        grads: &mut [GpuBuf<T>],
    ) -> Result<f32> {
        self.check_batch(acts, tokens)?;
        self.check_batch(acts, targets)?;
        if grads.len() != self.params.len()
            || grads
                .iter()
                .zip(&self.params)
                .any(|(g, p)| g.len() != p.len())
        {
            return Err(Error::Shape(
                "gradients are not shaped as the parameters".into(),
            ));
        }
        let cfg = &self.config;
        let (gpu, c, f, nh, v) = (
            &*self.gpu,
            cfg.n_embd,
            cfg.n_inner,
            cfg.n_head,
            cfg.vocab_size,
        );
        let (b, t, auto) = (acts.b, acts.t, Version::Auto);
        let a = acts;
        crossentropy::forward_backward(gpu, &mut a.losses, &mut a.logits, targets, v, dloss)?;
        let (g_emb, rest) = grads.split_at_mut(2);
        let (g_blocks, g_lnf) = rest.split_at_mut(12 * cfg.n_layer);
        // The tied LM head: logits = lnf · wteᵀ, so its weight gradient lands in wte's.
        a.dln.fill_zero()?;
        let head = GpuWeight::new(self.wte(), WeightLayout::OutIn);
        let (dx, dw) = (Some(&mut a.dln), Some(&mut g_emb[0]));
        let vp = self.vp();
        matmul::backward(gpu, auto, dx, dw, None, &a.logits, &a.lnf, head, c, vp)?;
        a.dres.fill_zero()?;
        let x_last = a.layers.last().map_or(&a.encoded, |d| &d.out);
        let [dfw, dfb] = g_lnf else {
            unreachable!("two ln_f gradients")
        };
        let (fw, _) = self.ln_f();
        let (mean, rstd) = (&a.lnf_mean, &a.lnf_rstd);
        layernorm::backward(gpu, &mut a.dres, dfw, dfb, &a.dln, x_last, fw, mean, rstd)?;
        for l in (0..cfg.n_layer).rev() {
            use slot::*;
            let la = &a.layers[l];
            let x = if l == 0 {
                &a.encoded
            } else {
                &a.layers[l - 1].out
            };
            let g: &mut [GpuBuf<T>; 12] = (&mut g_blocks[12 * l..12 * l + 12])
                .try_into()
                .map_err(|_| Error::Shape("12 gradients per block".into()))?;
            let [
                g_ln1w,
                g_ln1b,
                g_attnw,
                g_attnb,
                g_projw,
                g_projb,
                g_ln2w,
                g_ln2b,
                g_fcw,
                g_fcb,
                g_mlpw,
                g_mlpb,
            ] = g;
            // MLP branch: out = res2 + c_proj(gelu(c_fc(ln_2(res2)))).
            let gelu_out = match (&la.fch_gelu, &mut a.gelu_scratch) {
                (Some(kept), _) => kept,
                (None, Some(scratch)) => {
                    gelu::forward(gpu, scratch, &la.fch)?;
                    scratch
                }
                (None, None) => unreachable!("one of the two is allocated"),
            };
            a.dfch_gelu.fill_zero()?;
            let (dx, dw, db) = (Some(&mut a.dfch_gelu), Some(g_mlpw), Some(g_mlpb));
            let w = self.w(l, MLP_PROJ_W);
            matmul::backward(gpu, auto, dx, dw, db, &a.dres, gelu_out, w, f, c)?;
            a.dfch.fill_zero()?;
            gelu::backward(gpu, &mut a.dfch, &la.fch, &a.dfch_gelu)?;
            a.dln.fill_zero()?;
            let (dx, dw, db) = (Some(&mut a.dln), Some(g_fcw), Some(g_fcb));
            matmul::backward(
                gpu,
                auto,
                dx,
                dw,
                db,
                &a.dfch,
                &la.ln2,
                self.w(l, C_FC_W),
                c,
                f,
            )?;
            let (w2, mean, rstd) = (self.p(l, LN_2_W), &la.ln2_mean, &la.ln2_rstd);
            layernorm::backward(
                gpu,
                &mut a.dres,
                g_ln2w,
                g_ln2b,
                &a.dln,
                &la.res2,
                w2,
                mean,
                rstd,
            )?;
            // Attention branch: res2 = x + c_proj(attention(c_attn(ln_1(x)))).
            a.datty.fill_zero()?;
            let (dx, dw, db) = (Some(&mut a.datty), Some(g_projw), Some(g_projb));
            let w = self.w(l, C_PROJ_W);
            matmul::backward(gpu, auto, dx, dw, db, &a.dres, &la.atty, w, c, c)?;
            a.dqkv.fill_zero()?;
            let av = attention::Version::Auto;
            attention::backward(
                gpu,
                av,
                &mut a.dqkv,
                &a.datty,
                &la.qkv,
                &la.atty,
                &la.lse,
                b,
                t,
                nh,
            )?;
            // The key bias's gradient is exactly zero (softmax ignores a shift of a whole
            // row of scores); the kernels' sum is zero only up to rounding, which AdamW
            // would turn into ±lr steps, so it is restored as the CPU's backward does.
            a.key_bias.copy_range_from(0, g_attnb, c, c)?;
            a.dln.fill_zero()?;
            let (dx, dw) = (Some(&mut a.dln), Some(g_attnw));
            let w = self.w(l, C_ATTN_W);
            matmul::backward(
                gpu,
                auto,
                dx,
                dw,
                Some(&mut *g_attnb),
                &a.dqkv,
                &la.ln1,
                w,
                c,
                3 * c,
            )?;
            g_attnb.copy_range_from(c, &a.key_bias, 0, c)?;
            let (w1, mean, rstd) = (self.p(l, LN_1_W), &la.ln1_mean, &la.ln1_rstd);
            layernorm::backward(gpu, &mut a.dres, g_ln1w, g_ln1b, &a.dln, x, w1, mean, rstd)?;
        }
        let positions: Vec<u32> = (0..b).flat_map(|_| 0..t as u32).collect();
        let [g_wte, g_wpe] = g_emb else {
            unreachable!("two embedding gradients")
        };
        embedding::backward(gpu, g_wte, g_wpe, &a.dres, tokens, &positions, c)?;
        mean_of(&a.losses)
    }
}

/// The mean of a device buffer, summed in f64 on the host.
fn mean_of(x: &GpuBuf<f32>) -> Result<f32> {
    let v = x.to_vec()?;
    Ok((v.iter().map(|&l| f64::from(l)).sum::<f64>() / v.len().max(1) as f64) as f32)
}
