//! Causal multi-head self-attention on the GPU; the twin of [`crate::cpu::attention`]
//! (same shapes, same `lse`, backward recomputing the probabilities from it).
//!
//! Shapes: `qkv` `(B, T, 3C)` (queries, keys, values; head `h` in columns
//! `h·HS..(h+1)·HS` of each), `out`/`dout` `(B, T, C)`, `lse` `(B, NH, T)` (f32 whatever
//! the element type). Backward passes accumulate into `dqkv`.
//!
//! Two implementations, chosen by [`Version`]:
//! - **flash** (`kernels/attention_flash.cu`): FlashAttention-2 on the tensor cores
//!   (`mma.sync`, sm_80+), bf16 operands with f32 accumulation, head sizes 32, 64 and
//!   128. The backward runs two kernels (one owns dK and dV, the other dQ) so that every
//!   gradient element is summed by one thread in a fixed order: no atomics.
//! - **rows** (`kernels/attention.cu`): one query (or key) row per block on the CUDA
//!   cores, f32 or bf16, any head size up to 256: the readable reference, and the
//!   kernel of [`forward_cached`] (decoding one or a few new tokens against a KV cache).
//!
//! Both are deterministic: partial results are merged in a fixed order.

use cudarc::driver::LaunchConfig;

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::{BLOCK, dim, elementwise};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::cpu::attention as cpu;
use crate::error::check_len;
use crate::{KernelError, Result};

static ROWS: Module = ptx_module!("attention");
static FLASH: Module = ptx_module!("attention_flash");
const FORWARD: Kernels = kernels!("attention_forward");
const APPEND: Kernels = kernels!("attention_cache_append");
const BACKWARD_D: Kernels = kernels!("attention_backward_d");
const BACKWARD_DQ: Kernels = kernels!("attention_backward_dq");
const BACKWARD_DKV: Kernels = kernels!("attention_backward_dkv");

/// Largest head size of the row kernels (`MAX_HS` in `attention.cu`).
const ROWS_MAX_HS: usize = 256;
/// Threads of a flash block, and rows of a key (or backward query) block.
const FLASH_THREADS: u32 = 128;
const FLASH_BLOCK: usize = 64;

/// Which attention kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Flash when it applies (bf16, head size 32, 64 or 128), rows otherwise.
    Auto,
    /// One row per block on the CUDA cores: f32 or bf16, head size up to 256.
    Rows,
    /// FlashAttention-2 on the tensor cores: bf16, head size 32, 64 or 128.
    Flash,
}

impl Version {
    /// The version that runs for element type `T` and head size `hs`: `self` if it
    /// applies, flash or rows for [`Version::Auto`]; an explicit version that does not
    /// apply is a [`KernelError::Shape`] saying why.
    pub fn resolve<T: GpuFloat>(self, hs: usize) -> Result<Version> {
        let op = "cuda::attention::Version::resolve";
        let flash = T::IS_BF16 && matches!(hs, 32 | 64 | 128);
        match self {
            Version::Auto if flash => Ok(Version::Flash),
            Version::Flash if !flash => Err(KernelError::Shape {
                op,
                msg: format!("flash attention takes bf16 and head size 32, 64 or 128 (HS = {hs})"),
            }),
            Version::Flash => Ok(Version::Flash),
            Version::Auto | Version::Rows if hs > ROWS_MAX_HS => Err(KernelError::Shape {
                op,
                msg: format!("head size {hs} > {ROWS_MAX_HS}, the row kernels' limit"),
            }),
            Version::Auto | Version::Rows => Ok(Version::Rows),
        }
    }
}

/// Element `elems` of `buf` as a kernel argument (the caller keeps it in bounds).
fn at<T: GpuFloat>(buf: &GpuBuf<T>, elems: usize) -> Arg {
    buf.arg().offset(elems * size_of::<T>())
}

/// A grid of `(x, NH, B)` blocks of `threads` threads.
fn grid(
    op: &'static str,
    x: usize,
    nh: usize,
    b: usize,
    threads: u32,
    smem: usize,
) -> Result<LaunchConfig> {
    let (nh32, b32) = (dim(op, "NH", nh)?, dim(op, "B", b)?);
    if nh32 > 65535 || b32 > 65535 {
        return Err(KernelError::Shape {
            op,
            msg: format!("NH = {nh} and B = {b} must be at most 65535 (grid dimensions)"),
        });
    }
    Ok(LaunchConfig {
        grid_dim: (dim(op, "grid blocks", x)?, nh32, b32),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: smem as u32,
    })
}

/// Queries per flash forward block for head size `hs` (`64 * MT` in attention_flash.cu).
fn flash_rows(hs: usize) -> usize {
    if hs <= 64 { 128 } else { 64 }
}

/// The flash kernel `attention_flash_<pass>_hs<hs>_bf16`.
fn flash_kernel(pass: &str, hs: usize) -> &'static str {
    match (pass, hs) {
        ("forward", 32) => "attention_flash_forward_hs32_bf16",
        ("forward", 64) => "attention_flash_forward_hs64_bf16",
        ("forward", _) => "attention_flash_forward_hs128_bf16",
        ("dkdv", 32) => "attention_flash_backward_dkdv_hs32_bf16",
        ("dkdv", 64) => "attention_flash_backward_dkdv_hs64_bf16",
        ("dkdv", _) => "attention_flash_backward_dkdv_hs128_bf16",
        (_, 32) => "attention_flash_backward_dq_hs32_bf16",
        (_, 64) => "attention_flash_backward_dq_hs64_bf16",
        _ => "attention_flash_backward_dq_hs128_bf16",
    }
}

/// Causal self-attention of `qkv`, writing `out` and the log-sum-exp `lse`.
#[allow(clippy::too_many_arguments)] // the CPU twin's operands, and the version
pub fn forward<T: GpuFloat>(
    gpu: &Gpu,
    version: Version,
    out: &mut GpuBuf<T>,
    lse: &mut GpuBuf<f32>,
    qkv: &GpuBuf<T>,
    b: usize,
    t: usize,
    nh: usize,
) -> Result<()> {
    let op = "cuda::attention::forward";
    let Some((c, hs)) = cpu::check(op, (out.len(), lse.len(), qkv.len()), b, t, nh)? else {
        return Ok(());
    };
    let scale = 1.0 / (hs as f32).sqrt();
    let t32 = dim(op, "T", t)?;
    match version.resolve::<T>(hs)? {
        Version::Flash => {
            let rows = flash_rows(hs);
            let smem = (rows + 4 * FLASH_BLOCK) * hs * 2;
            let cfg = grid(op, t.div_ceil(rows), nh, b, FLASH_THREADS, smem)?;
            let args = [
                out.arg(),
                lse.arg(),
                qkv.arg(),
                Arg::U32(t32),
                Arg::F32(scale),
            ];
            gpu.launch(&FLASH, flash_kernel("forward", hs), cfg, &args)
        }
        _ => {
            let (c3, kv) = (3 * c, (t * 3 * c) as u64);
            let rows = RowsForward {
                q: qkv.arg(),
                k: at(qkv, c),
                v: at(qkv, 2 * c),
                strides: [c3, c3, c],
                batch_strides: [kv, kv, (t * c) as u64],
                pos0_at: (Arg::null(gpu.ordinal()), 0),
            };
            rows.launch::<T>(gpu, op, (out, lse.arg()), (b, t, 0), (nh, hs, scale))
        }
    }
}

/// The operands of `attention_forward` (`attention.cu`): query, key and value rows and
/// the row strides of q, k/v and out, and their batch strides; and, for graph replays,
/// the first query's position on the device with the rows of k/v that bound it (else a
/// null pointer and 0).
struct RowsForward {
    q: Arg,
    k: Arg,
    v: Arg,
    strides: [usize; 3],
    batch_strides: [u64; 3],
    pos0_at: (Arg, u32),
}

impl RowsForward {
    /// `tq` queries per sequence at positions `pos0..`, `b` sequences.
    fn launch<T: GpuFloat>(
        &self,
        gpu: &Gpu,
        op: &'static str,
        (out, lse): (&mut GpuBuf<T>, Arg),
        (b, tq, pos0): (usize, usize, usize),
        (nh, hs, scale): (usize, usize, f32),
    ) -> Result<()> {
        let [q_rs, kv_rs, out_rs] = self.strides;
        let [q_bs, kv_bs, out_bs] = self.batch_strides;
        let args = [
            out.arg(),
            lse,
            self.q,
            self.k,
            self.v,
            Arg::U32(dim(op, "Tq", tq)?),
            Arg::U32(dim(op, "position", pos0)?),
            self.pos0_at.0,
            Arg::U32(self.pos0_at.1),
            Arg::U32(dim(op, "HS", hs)?),
            Arg::U32(dim(op, "row stride", q_rs)?),
            Arg::U32(dim(op, "row stride", kv_rs)?),
            Arg::U32(dim(op, "row stride", out_rs)?),
            Arg::U64(q_bs),
            Arg::U64(kv_bs),
            Arg::U64(out_bs),
            Arg::F32(scale),
        ];
        let cfg = grid(op, tq, nh, b, BLOCK, 0)?;
        gpu.launch(&ROWS, FORWARD.of::<T>(), cfg, &args)
    }

    /// Decoding: `tq` queries of one sequence, the last of `kv_len` cached positions,
    /// without a log-sum-exp (the row kernels: decoding is bound by reading the cache).
    fn launch_cached<T: GpuFloat>(
        &self,
        gpu: &Gpu,
        op: &'static str,
        out: &mut GpuBuf<T>,
        (tq, kv_len): (usize, usize),
        (nh, hs): (usize, usize),
    ) -> Result<()> {
        Version::Rows.resolve::<T>(hs)?;
        let scale = 1.0 / (hs as f32).sqrt();
        let lse = Arg::null(gpu.ordinal());
        self.launch::<T>(gpu, op, (out, lse), (1, tq, kv_len - tq), (nh, hs, scale))
    }
}

/// Attention of `Tq = out.len() / c` new queries of one sequence against a KV cache, as
/// the CPU twin: query `i` (row `i` of `q`, at offset `i·q_stride`) sits at position
/// `kv_len − Tq + i` and attends rows `0..=` that position of `k_cache` / `v_cache`
/// (rows of `C`, the layout the CPU keeps; the caches may be longer than `kv_len`). Runs
/// the row kernels (decoding is bound by reading the cache, not by arithmetic): one
/// block of 8 warps per (query, head), each warp a slice of the cache.
#[allow(clippy::too_many_arguments)] // the operands of a cached decoding step
pub fn forward_cached<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    q: &GpuBuf<T>,
    q_stride: usize,
    k_cache: &GpuBuf<T>,
    v_cache: &GpuBuf<T>,
    kv_len: usize,
    c: usize,
    nh: usize,
) -> Result<()> {
    let op = "cuda::attention::forward_cached";
    let caches = (k_cache.len(), v_cache.len());
    let (tq, hs) = cpu::check_cached(op, (out.len(), q.len()), q_stride, caches, kv_len, c, nh)?;
    if tq == 0 {
        return Ok(());
    }
    let rows = RowsForward {
        q: q.arg(),
        k: k_cache.arg(),
        v: v_cache.arg(),
        strides: [q_stride, c, c],
        batch_strides: [0; 3],
        pos0_at: (Arg::null(gpu.ordinal()), 0),
    };
    rows.launch_cached::<T>(gpu, op, out, (tq, kv_len), (nh, hs))
}

/// Decoding against a cache of whole `c_attn` rows: `qkv_cache` holds one sequence's
/// `(n_ctx, 3C)` rows `[q | k | v]` for positions `0..kv_len` (the GPU model appends
/// each new token's row with one contiguous copy), and `out` `(Tq, C)` receives the
/// attention of the last `Tq = out.len() / C` of them, query `i` at position
/// `kv_len − Tq + i` attending positions `0..=` its own. The same row kernels as
/// [`forward_cached`], reading queries, keys and values in place at stride `3C`.
pub fn forward_cached_qkv<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    qkv_cache: &GpuBuf<T>,
    kv_len: usize,
    c: usize,
    nh: usize,
) -> Result<()> {
    let op = "cuda::attention::forward_cached_qkv";
    let fail = |msg: String| Err(KernelError::Shape { op, msg });
    if c == 0 || nh == 0 || !c.is_multiple_of(nh) || !out.len().is_multiple_of(c) {
        return fail(format!(
            "C = {c} must be a positive multiple of NH = {nh}, and `out` ({}) whole rows of C",
            out.len()
        ));
    }
    let tq = out.len() / c;
    if tq > kv_len
        || kv_len
            .checked_mul(3 * c)
            .is_none_or(|n| n > qkv_cache.len())
    {
        return fail(format!(
            "{tq} queries and kv_len = {kv_len} positions do not fit a cache of {} elements (rows of 3C = {})",
            qkv_cache.len(),
            3 * c
        ));
    }
    if tq == 0 {
        return Ok(());
    }
    let c3 = 3 * c;
    let rows = RowsForward {
        q: at(qkv_cache, (kv_len - tq) * c3),
        k: at(qkv_cache, c),
        v: at(qkv_cache, 2 * c),
        strides: [c3, c3, c],
        batch_strides: [0; 3],
        pos0_at: (Arg::null(gpu.ordinal()), 0),
    };
    rows.launch_cached::<T>(gpu, op, out, (tq, kv_len), (nh, c / nh))
}

/// One decoding step with its position on the device, as a CUDA graph replays it (the
/// launches are the same every step; only `pos[0]` changes): appends the new row of
/// `qkv` `(1, 3C)` to `qkv_cache` (rows of 3C, as [`forward_cached_qkv`]) at row
/// `pos[0]`, then writes to `out` `(1, C)` its attention over rows `0..=pos[0]`. A
/// position past the cache appends nothing and gives NaN outputs (which the sampler
/// refuses): the device never reads or writes out of bounds.
pub fn append_and_attend_at<T: GpuFloat>(
    gpu: &Gpu,
    out: &mut GpuBuf<T>,
    qkv: &GpuBuf<T>,
    qkv_cache: &mut GpuBuf<T>,
    pos: &GpuBuf<u32>,
    c: usize,
    nh: usize,
) -> Result<()> {
    let op = "cuda::attention::append_and_attend_at";
    let c3 = 3 * c;
    if c == 0 || nh == 0 || !c.is_multiple_of(nh) || !qkv_cache.len().is_multiple_of(c3) {
        return Err(KernelError::Shape {
            op,
            msg: format!(
                "C = {c} must be a positive multiple of NH = {nh}, and the cache ({}) whole rows of 3C",
                qkv_cache.len()
            ),
        });
    }
    check_len(op, "out", out.len(), c)?;
    check_len(op, "qkv", qkv.len(), c3)?;
    check_len(op, "pos", pos.len(), 1)?;
    let cap = dim(op, "cache rows", qkv_cache.len() / c3)?;
    let args = [
        qkv_cache.arg(),
        qkv.arg(),
        pos.arg(),
        Arg::U32(dim(op, "3C", c3)?),
        Arg::U32(1),
        Arg::U32(cap),
    ];
    gpu.launch(&ROWS, APPEND.of::<T>(), elementwise(c3), &args)?;
    let rows = RowsForward {
        q: qkv.arg(),
        k: at(qkv_cache, c),
        v: at(qkv_cache, 2 * c),
        strides: [c3, c3, c],
        batch_strides: [0; 3],
        pos0_at: (pos.arg(), cap),
    };
    // kv_len = 1: the position comes from the device (the host-side pos0 is unused).
    rows.launch_cached::<T>(gpu, op, out, (1, 1), (nh, c / nh))
}

/// Accumulates `dqkv` from `dout`, recomputing the probabilities from `qkv` and the
/// forward's `lse`; `out` is the forward's output (for `D = rowsum(dout ⊙ out)`).
#[allow(clippy::too_many_arguments)] // the CPU twin's operands, and the version
pub fn backward<T: GpuFloat>(
    gpu: &Gpu,
    version: Version,
    dqkv: &mut GpuBuf<T>,
    dout: &GpuBuf<T>,
    qkv: &GpuBuf<T>,
    out: &GpuBuf<T>,
    lse: &GpuBuf<f32>,
    b: usize,
    t: usize,
    nh: usize,
) -> Result<()> {
    let op = "cuda::attention::backward";
    let Some((_, hs)) = cpu::check(op, (out.len(), lse.len(), qkv.len()), b, t, nh)? else {
        crate::error::check_len(op, "dqkv", dqkv.len(), 0)?;
        return crate::error::check_len(op, "dout", dout.len(), 0);
    };
    crate::error::check_len(op, "dqkv", dqkv.len(), qkv.len())?;
    crate::error::check_len(op, "dout", dout.len(), out.len())?;
    let version = version.resolve::<T>(hs)?;
    let scale = 1.0 / (hs as f32).sqrt();
    let (t32, nh32, hs32) = (dim(op, "T", t)?, dim(op, "NH", nh)?, dim(op, "HS", hs)?);

    // D = rowsum(dout ⊙ out), (B, NH, T): one warp per row.
    let rows = b * nh * t;
    let dvec = gpu.alloc::<f32>(rows)?;
    let warps = (BLOCK / 32) as usize;
    let args = [
        dvec.arg(),
        dout.arg(),
        out.arg(),
        Arg::U32(dim(op, "B·NH·T", rows)?),
        Arg::U32(t32),
        Arg::U32(nh32),
        Arg::U32(hs32),
    ];
    let cfg = super::runtime::blocks(dim(op, "B·NH·T / 8", rows.div_ceil(warps))?);
    gpu.launch(&ROWS, BACKWARD_D.of::<T>(), cfg, &args)?;

    let args = [
        dqkv.arg(),
        dout.arg(),
        qkv.arg(),
        lse.arg(),
        dvec.arg(),
        Arg::U32(t32),
    ];
    if version == Version::Flash {
        let args = [&args[..], &[Arg::F32(scale)]].concat();
        let tile = FLASH_BLOCK * hs * 2;
        let blocks = t.div_ceil(FLASH_BLOCK);
        let cfg = grid(
            op,
            blocks,
            nh,
            b,
            FLASH_THREADS,
            6 * tile + 4 * FLASH_BLOCK * 4,
        )?;
        gpu.launch(&FLASH, flash_kernel("dkdv", hs), cfg, &args)?;
        let cfg = grid(op, blocks, nh, b, FLASH_THREADS, 6 * tile)?;
        gpu.launch(&FLASH, flash_kernel("dq", hs), cfg, &args)
    } else {
        let args = [&args[..], &[Arg::U32(hs32), Arg::F32(scale)]].concat();
        let cfg = grid(op, t, nh, b, BLOCK, 0)?;
        gpu.launch(&ROWS, BACKWARD_DQ.of::<T>(), cfg, &args)?;
        gpu.launch(&ROWS, BACKWARD_DKV.of::<T>(), cfg, &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn ptx_declares_every_kernel() {
        ROWS.assert_declares(&[FORWARD, APPEND, BACKWARD_D, BACKWARD_DQ, BACKWARD_DKV]);
        for hs in [32, 64, 128] {
            for pass in ["forward", "dkdv", "dq"] {
                let name = flash_kernel(pass, hs);
                assert!(name.contains(&format!("hs{hs}")), "{name}");
                assert!(FLASH.params(name).is_some(), "{name}");
            }
        }
    }

    #[test]
    fn versions_resolve_by_type_and_head_size() {
        assert_eq!(Version::Auto.resolve::<bf16>(64).unwrap(), Version::Flash);
        assert_eq!(Version::Auto.resolve::<bf16>(48).unwrap(), Version::Rows);
        assert_eq!(Version::Auto.resolve::<f32>(64).unwrap(), Version::Rows);
        assert!(Version::Flash.resolve::<f32>(64).is_err());
        assert!(Version::Flash.resolve::<bf16>(96).is_err());
        assert!(Version::Rows.resolve::<bf16>(512).is_err());
    }
}
