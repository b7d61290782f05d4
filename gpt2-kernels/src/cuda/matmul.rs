//! Matrix multiplication on the GPU; the twin of [`crate::cpu::matmul`]: the products of
//! GPT-2's linear layers, forward and backward, in both weight layouts, with the bias,
//! the stored pre-activation and GELU fused into the write-back of the product.
//!
//! Shapes, as the CPU twin: `inp` `(M, K)`, `out`/`pre` `(M, N)`, `weight` `(K, N)`
//! ([`WeightLayout::InOut`]) or `(N, K)` ([`WeightLayout::OutIn`]), `bias` `(N)`, with
//! `M = inp.len() / k`. Every operand has the element type `T`; the arithmetic is f32
//! and results are rounded to `T` once, when stored. Backward passes accumulate (`+=`).
//!
//! ## The ladder
//! Four kernels kept side by side, each one readable step from the last
//! (`docs/kernels.md` walks them with their measurements), chosen per product by
//! [`Version`]:
//!
//! | version | kernel | operands | speed comes from |
//! |---|---|---|---|
//! | v1 [`Version::Tiled`] | `matmul_v1_tiled.cu` | f32, bf16 | shared-memory tiles |
//! | v2 [`Version::RegBlock`] | `matmul_v2_regblock.cu` | f32, bf16 | 8 × 8 register tiles |
//! | v3 [`Version::Mma`] | `matmul_v3_mma.cu` | bf16, sm_80+ | tensor cores: `mma.sync`, `ldmatrix`, `cp.async` |
//! | v4 [`Version::Wgmma`] | `matmul_v4_wgmma.sm90a.cu` | bf16, sm_90 | `wgmma` + TMA, warp specialisation |
//!
//! [`Version::Auto`] takes the fastest that applies: v4 on Hopper, v3 on other sm_80+
//! GPUs (bf16 operands whose rows are whole 16-byte chunks: `K` and `N` multiples of 8,
//! as in GPT-2 with the vocabulary padded to 50304), v2 otherwise. v4 checks itself
//! against v3 at its first use on a device and stays off if they disagree (one line on
//! stderr says why); `GPT2_CUDA_WGMMA=off` keeps [`Version::Auto`] off v4.
//!
//! Determinism: each output is summed by one thread (or one warpgroup) in a fixed order,
//! and the bias gradient adds fixed row groups in order: results are bitwise the same
//! from run to run.

mod gemm;
mod select;
mod tma;

pub use crate::cpu::matmul::WeightLayout;
pub use select::{Pass, Version};

use gemm::{ACCUMULATE, GELU, Gemm, Shape};

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::{BLOCK, dim};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::cpu::matmul as cpu;

static BIAS: Module = ptx_module!("matmul_bias");
const BIAS_PARTIAL: Kernels = kernels!("matmul_bias_backward_partial");
const BIAS_REDUCE: Kernels = kernels!("matmul_bias_backward_reduce");
/// Rows per partial sum of the bias gradient (`ROWS` in `matmul_bias.cu`).
const BIAS_ROWS: usize = 256;

/// A weight matrix on the device: its elements and their layout.
#[derive(Debug, Clone, Copy)]
pub struct Weight<'a, T: GpuFloat> {
    /// The `K·N` elements.
    pub data: &'a GpuBuf<T>,
    /// `(K, N)` or `(N, K)`.
    pub layout: WeightLayout,
}

impl<'a, T: GpuFloat> Weight<'a, T> {
    /// A weight of `layout`.
    pub fn new(data: &'a GpuBuf<T>, layout: WeightLayout) -> Self {
        Weight { data, layout }
    }
}

/// An optional buffer as a kernel argument (a null pointer when absent).
fn opt_arg<T: GpuFloat>(gpu: &Gpu, buf: Option<&GpuBuf<T>>) -> Arg {
    buf.map_or(Arg::null(gpu.ordinal()), GpuBuf::arg)
}

/// Runs product `g` on `version`, resolved for its shape.
fn run<T: GpuFloat>(gpu: &Gpu, op: &'static str, version: Version, g: Gemm) -> Result<()> {
    let v = version.resolve_shape::<T>(gpu, &g.shape, op)?;
    g.launch::<T>(gpu, op, v, gemm::wgmma_tile_n(gpu, &g.shape))
}

/// `out (M, N) = inp (M, K) · W + bias`.
#[allow(clippy::too_many_arguments)] // the CPU twin's operands, and the version
pub fn forward<T: GpuFloat>(
    gpu: &Gpu,
    version: Version,
    out: &mut GpuBuf<T>,
    inp: &GpuBuf<T>,
    weight: Weight<'_, T>,
    bias: Option<&GpuBuf<T>>,
    k: usize,
    n: usize,
) -> Result<()> {
    forward_epilogue(gpu, version, out, None, inp, weight, bias, (k, n), 0)
}

/// [`forward`] followed by GPT-2's GELU (tanh approximation), fused into the write-back
/// of the product: `out = gelu(inp · W + bias)`. `pre`, if given, receives
/// `inp · W + bias` (GELU's backward needs it).
#[allow(clippy::too_many_arguments)] // the CPU twin's operands, and the version
pub fn forward_gelu<T: GpuFloat>(
    gpu: &Gpu,
    version: Version,
    out: &mut GpuBuf<T>,
    pre: Option<&mut GpuBuf<T>>,
    inp: &GpuBuf<T>,
    weight: Weight<'_, T>,
    bias: Option<&GpuBuf<T>>,
    k: usize,
    n: usize,
) -> Result<()> {
    forward_epilogue(gpu, version, out, pre, inp, weight, bias, (k, n), GELU)
}

#[allow(clippy::too_many_arguments)]
fn forward_epilogue<T: GpuFloat>(
    gpu: &Gpu,
    version: Version,
    out: &mut GpuBuf<T>,
    pre: Option<&mut GpuBuf<T>>,
    inp: &GpuBuf<T>,
    weight: Weight<'_, T>,
    bias: Option<&GpuBuf<T>>,
    (k, n): (usize, usize),
    flags: u32,
) -> Result<()> {
    let op = if flags & GELU != 0 {
        "cuda::matmul::forward_gelu"
    } else {
        "cuda::matmul::forward"
    };
    let pre_len = pre.as_ref().map(|p| p.len());
    let (w, b) = (weight.data.len(), bias.map(GpuBuf::len));
    let m = cpu::check_forward(op, out.len(), pre_len, inp.len(), w, b, (k, n))?;
    let g = Gemm {
        shape: Shape::of(Pass::Forward, weight.layout, m, k, n),
        a: inp.arg(),
        b: weight.data.arg(),
        c: out.arg(),
        pre: opt_arg(gpu, pre.as_deref()),
        bias: opt_arg(gpu, bias),
        flags,
    };
    run::<T>(gpu, op, version, g)
}

/// Backward of [`forward`], **accumulating** into whichever gradients are given:
/// `dinp (M, K) += dout (M, N) · Wᵀ`; `dweight` (same layout as `weight`) `+= inpᵀ · dout`
/// (`(K, N)`) or `doutᵀ · inp` (`(N, K)`); `dbias (N) +=` column sums of `dout`. All
/// lengths are checked before anything runs.
#[allow(clippy::too_many_arguments)] // the CPU twin's operands, and the version
pub fn backward<T: GpuFloat>(
    gpu: &Gpu,
    version: Version,
    dinp: Option<&mut GpuBuf<T>>,
    dweight: Option<&mut GpuBuf<T>>,
    dbias: Option<&mut GpuBuf<T>>,
    dout: &GpuBuf<T>,
    inp: &GpuBuf<T>,
    weight: Weight<'_, T>,
    k: usize,
    n: usize,
) -> Result<()> {
    let op = "cuda::matmul::backward";
    let lens = [dinp.as_deref(), dweight.as_deref(), dbias.as_deref()].map(|d| d.map(GpuBuf::len));
    let m = cpu::check_backward(op, lens, dout.len(), inp.len(), weight.data.len(), k, n)?;
    let product = |pass, a: &GpuBuf<T>, b: &GpuBuf<T>, c: &GpuBuf<T>| Gemm {
        shape: Shape::of(pass, weight.layout, m, k, n),
        a: a.arg(),
        b: b.arg(),
        c: c.arg(),
        pre: Arg::null(gpu.ordinal()),
        bias: Arg::null(gpu.ordinal()),
        flags: ACCUMULATE,
    };
    if let Some(dinp) = dinp {
        run::<T>(
            gpu,
            op,
            version,
            product(Pass::Dinp, dout, weight.data, dinp),
        )?;
    }
    if let Some(dw) = dweight {
        let (a, b) = match weight.layout {
            WeightLayout::InOut => (inp, dout),
            WeightLayout::OutIn => (dout, inp),
        };
        if m > 0 {
            run::<T>(gpu, op, version, product(Pass::Dweight, a, b, dw))?;
        }
    }
    match dbias {
        Some(dbias) if m > 0 => bias_backward(gpu, dbias, dout, m, n),
        _ => Ok(()),
    }
}

/// `dbias (N) += Σ_rows dout (M, N)`: partial sums of row groups, then their sum in
/// group order (deterministic, no atomics).
fn bias_backward<T: GpuFloat>(
    gpu: &Gpu,
    dbias: &mut GpuBuf<T>,
    dout: &GpuBuf<T>,
    m: usize,
    n: usize,
) -> Result<()> {
    let op = "cuda::matmul::backward";
    let groups = m.div_ceil(BIAS_ROWS);
    let (m32, n32, groups32) = (
        dim(op, "M", m)?,
        dim(op, "N", n)?,
        dim(op, "M / 256", groups)?,
    );
    let part = gpu.alloc::<f32>(groups * n)?;
    let cfg = cudarc::driver::LaunchConfig {
        grid_dim: (n32.div_ceil(BLOCK), groups32, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    let args = [part.arg(), dout.arg(), Arg::U32(m32), Arg::U32(n32)];
    gpu.launch(&BIAS, BIAS_PARTIAL.of::<T>(), cfg, &args)?;
    let args = [dbias.arg(), part.arg(), Arg::U32(groups32), Arg::U32(n32)];
    let cfg = super::runtime::blocks(n32.div_ceil(BLOCK));
    gpu.launch(&BIAS, BIAS_REDUCE.of::<T>(), cfg, &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptx_declares_every_kernel() {
        BIAS.assert_declares(&[BIAS_PARTIAL, BIAS_REDUCE]);
    }

    #[test]
    fn layer_products_map_to_gemm_shapes() {
        use gemm::Layout;
        let s = |pass, layout| {
            let s = Shape::of(pass, layout, 5, 7, 11);
            (s.m, s.n, s.k, s.layout)
        };
        let (fwd, dx, dw) = (Pass::Forward, Pass::Dinp, Pass::Dweight);
        let (io, oi) = (WeightLayout::InOut, WeightLayout::OutIn);
        assert_eq!(s(fwd, io), (5, 11, 7, Layout::NN));
        assert_eq!(s(fwd, oi), (5, 11, 7, Layout::NT));
        assert_eq!(s(dx, io), (5, 7, 11, Layout::NT));
        assert_eq!(s(dx, oi), (5, 7, 11, Layout::NN));
        assert_eq!(s(dw, io), (7, 11, 5, Layout::TN));
        assert_eq!(s(dw, oi), (11, 7, 5, Layout::TN));
    }
}
