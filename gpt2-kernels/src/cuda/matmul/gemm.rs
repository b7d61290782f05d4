//! One product `C (m, n) = A (m, k) · B (k, n)` plus its epilogue, as the kernels take
//! it, and its launch on each version of the ladder (`kernels/matmul_v*.cu`).

use cudarc::driver::LaunchConfig;

use super::tma;
use super::{Pass, Version, WeightLayout};
use crate::Result;
use crate::cuda::Gpu;
use crate::cuda::module::{Arg, Kernels, Module, kernels, ptx_module};
use crate::cuda::runtime::dim;

static V1: Module = ptx_module!("matmul_v1_tiled");
static V2: Module = ptx_module!("matmul_v2_regblock");
static V3: Module = ptx_module!("matmul_v3_mma");
static V4: Module = ptx_module!("matmul_v4_wgmma.sm90a");
const V1_KERNELS: Kernels = kernels!("matmul_v1");
const V2_KERNELS: Kernels = kernels!("matmul_v2");

/// Dynamic shared memory of v2 and v3: their operand tiles, then the 128 x 128 f32 output
/// tile their epilogue stages (row stride 128 + `TILE_PAD`, `matmul.cuh`).
const STAGED_TILE_BYTES: u32 = 128 * (128 + 8) * 4;

/// `flags` bits of the kernels (`matmul.cuh`).
pub(crate) const ACCUMULATE: u32 = 1;
pub(crate) const GELU: u32 = 2;

/// The operand layouts the tensor-core kernels are instantiated for, as in BLAS for
/// row-major storage: A stored `(m, k)` ("n") or `(k, m)` ("t"), B stored `(k, n)` ("n")
/// or `(n, k)` ("t").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Forward with `(K, N)` weights; dX with `(N, K)` weights.
    NN,
    /// Forward with `(N, K)` weights; dX with `(K, N)` weights.
    NT,
    /// dW: both operands have the summed dimension (the rows) outermost.
    TN,
}

impl Layout {
    /// Whether A is stored `(k, m)`.
    pub fn a_t(self) -> bool {
        self == Layout::TN
    }

    /// Whether B is stored `(n, k)`.
    pub fn b_t(self) -> bool {
        self == Layout::NT
    }
}

/// The sizes and layout of a product (no buffers): what deciding a version needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub layout: Layout,
}

impl Shape {
    /// The product that `pass` of a linear layer with `m` rows, `k` inputs and `n`
    /// outputs is, operands in the order [`super::backward`] passes them (dW with (K, N)
    /// weights: A = inp, B = dout; with (N, K) weights: A = dout, B = inp).
    pub fn of(pass: Pass, layout: WeightLayout, m: usize, k: usize, n: usize) -> Shape {
        let (m, n, k, layout) = match (pass, layout) {
            (Pass::Forward, WeightLayout::InOut) => (m, n, k, Layout::NN),
            (Pass::Forward, WeightLayout::OutIn) => (m, n, k, Layout::NT),
            (Pass::Dinp, WeightLayout::InOut) => (m, k, n, Layout::NT),
            (Pass::Dinp, WeightLayout::OutIn) => (m, k, n, Layout::NN),
            (Pass::Dweight, WeightLayout::InOut) => (k, n, m, Layout::TN),
            (Pass::Dweight, WeightLayout::OutIn) => (n, k, m, Layout::TN),
        };
        Shape { m, n, k, layout }
    }

    /// Leading dimensions of A and B (the operands are contiguous).
    fn lda(&self) -> usize {
        if self.layout.a_t() { self.m } else { self.k }
    }

    fn ldb(&self) -> usize {
        if self.layout.b_t() { self.k } else { self.n }
    }

    /// Whether every row of A and B is a whole number of 16-byte (8 bf16) chunks, which
    /// the tensor-core kernels' copies (cp.async, TMA) need.
    pub fn rows_of_16_bytes(&self) -> bool {
        self.lda().is_multiple_of(8) && self.ldb().is_multiple_of(8)
    }
}

/// A product with its operands: `C = epilogue(A · B)` (`matmul.cuh`), `pre` and `bias`
/// null pointers when absent. C and `pre` are `(m, n)` with row stride `n`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gemm {
    pub shape: Shape,
    pub a: Arg,
    pub b: Arg,
    pub c: Arg,
    pub pre: Arg,
    pub bias: Arg,
    pub flags: u32,
}

/// `(m, n, k, lda, ldb, ldc)` as the kernels' 32-bit sizes.
fn sizes(op: &'static str, s: &Shape) -> Result<[u32; 6]> {
    Ok([
        dim(op, "m", s.m)?,
        dim(op, "n", s.n)?,
        dim(op, "k", s.k)?,
        dim(op, "lda", s.lda())?,
        dim(op, "ldb", s.ldb())?,
        dim(op, "ldc", s.n)?,
    ])
}

fn grid(blocks: usize, threads: u32, smem: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: smem,
    }
}

/// Columns of the tile of v4: 256 when 128 x 256 tiles still give every multiprocessor a
/// block, else 128 (e.g. M = 4096, N = 768: 96 tiles of 128 x 256 for 132 SMs).
pub(crate) fn wgmma_tile_n(gpu: &Gpu, s: &Shape) -> u32 {
    let tiles = s.m.div_ceil(128) * s.n.div_ceil(256);
    if tiles >= gpu.multiprocessor_count() as usize {
        256
    } else {
        128
    }
}

impl Gemm {
    /// Launches the product on `version` (not `Auto`), which the caller has checked
    /// applies (`Version::resolve`); `tile_n` is v4's tile width (128 or 256).
    pub fn launch<T: crate::cuda::GpuFloat>(
        &self,
        gpu: &Gpu,
        op: &'static str,
        version: Version,
        tile_n: u32,
    ) -> Result<()> {
        let s = &self.shape;
        if s.m == 0 || s.n == 0 {
            return Ok(());
        }
        let [m, n, k, lda, ldb, ldc] = sizes(op, s)?;
        let (a, b, c, pre, bias, flags) = (self.a, self.b, self.c, self.pre, self.bias, self.flags);
        match version {
            Version::Tiled | Version::RegBlock => {
                // Strided views, as the CPU's MatRef: (row stride, column stride).
                let (a_rs, a_cs) = if s.layout.a_t() { (1, lda) } else { (lda, 1) };
                let (b_rs, b_cs) = if s.layout.b_t() { (1, ldb) } else { (ldb, 1) };
                let args = [
                    c,
                    pre,
                    a,
                    b,
                    bias,
                    Arg::U32(m),
                    Arg::U32(n),
                    Arg::U32(k),
                    Arg::U32(a_rs),
                    Arg::U32(a_cs),
                    Arg::U32(b_rs),
                    Arg::U32(b_cs),
                    Arg::U32(ldc),
                    Arg::U32(flags),
                ];
                if version == Version::Tiled {
                    let rows = dim(op, "m / 16 (grid rows)", s.m.div_ceil(16))?;
                    if rows > 65535 {
                        return Err(crate::KernelError::Shape {
                            op,
                            msg: format!("v1 (tiled) takes at most 65535·16 rows, m = {}", s.m),
                        });
                    }
                    let cfg = LaunchConfig {
                        grid_dim: (n.div_ceil(16), rows, 1),
                        block_dim: (256, 1, 1),
                        shared_mem_bytes: 0,
                    };
                    gpu.launch(&V1, V1_KERNELS.of::<T>(), cfg, &args)
                } else {
                    let tiles = s.m.div_ceil(128) * s.n.div_ceil(128);
                    let cfg = grid(tiles, 256, STAGED_TILE_BYTES);
                    gpu.launch(&V2, V2_KERNELS.of::<T>(), cfg, &args)
                }
            }
            Version::Mma => {
                let args = [
                    c,
                    pre,
                    a,
                    b,
                    bias,
                    Arg::U32(m),
                    Arg::U32(n),
                    Arg::U32(k),
                    Arg::U32(lda),
                    Arg::U32(ldb),
                    Arg::U32(ldc),
                    Arg::U32(flags),
                ];
                let name = match s.layout {
                    Layout::NN => "matmul_v3_nn_bf16",
                    Layout::NT => "matmul_v3_nt_bf16",
                    Layout::TN => "matmul_v3_tn_bf16",
                };
                let tiles = s.m.div_ceil(128) * s.n.div_ceil(128);
                gpu.launch(&V3, name, grid(tiles, 256, STAGED_TILE_BYTES), &args)
            }
            Version::Wgmma => {
                let (ta, tb) = tma::operand_maps(self, tile_n)?;
                let args = [
                    Arg::TensorMap(ta),
                    Arg::TensorMap(tb),
                    c,
                    pre,
                    bias,
                    Arg::U32(m),
                    Arg::U32(n),
                    Arg::U32(k),
                    Arg::U32(ldc),
                    Arg::U32(flags),
                ];
                let name = match (s.layout, tile_n) {
                    (Layout::NN, 128) => "matmul_v4_nn_bn128_bf16",
                    (Layout::NT, 128) => "matmul_v4_nt_bn128_bf16",
                    (Layout::TN, 128) => "matmul_v4_tn_bn128_bf16",
                    (Layout::NN, _) => "matmul_v4_nn_bn256_bf16",
                    (Layout::NT, _) => "matmul_v4_nt_bn256_bf16",
                    (Layout::TN, _) => "matmul_v4_tn_bn256_bf16",
                };
                // STAGES slots of A (128 x 64) and B (tile_n x 64) bf16, + 1 KiB to align.
                let smem = 4 * (128 + tile_n) * 64 * 2 + 1024;
                let tiles = s.m.div_ceil(128) * s.n.div_ceil(tile_n as usize);
                gpu.launch(&V4, name, grid(tiles, 384, smem), &args)
            }
            Version::Auto => unreachable!("resolved by the caller"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptx_declares_every_kernel() {
        V1.assert_declares(&[V1_KERNELS]);
        V2.assert_declares(&[V2_KERNELS]);
        for l in ["nn", "nt", "tn"] {
            let v3 = format!("matmul_v3_{l}_bf16");
            assert_eq!(V3.params(&v3).map(|p| p.len()), Some(12), "{v3}");
            for bn in [128, 256] {
                let v4 = format!("matmul_v4_{l}_bn{bn}_bf16");
                let params = V4.params(&v4);
                assert_eq!(
                    params.as_deref().map(|p| &p[..2]),
                    Some(&[128, 128][..]),
                    "{v4}"
                );
            }
        }
        assert_eq!(V4.target(), Some((9, 0, true)));
    }

    #[test]
    fn tensor_core_kernels_need_rows_of_16_bytes() {
        let shape = |m, n, k, layout| Shape { m, n, k, layout };
        // The LM head's forward with (V, C) weights: N = 50257 is not read along rows.
        assert!(shape(7, 50257, 768, Layout::NT).rows_of_16_bytes());
        assert!(!shape(7, 50257, 768, Layout::NN).rows_of_16_bytes());
        // dW sums over the rows: any number of them.
        assert!(shape(768, 2304, 13, Layout::TN).rows_of_16_bytes());
        assert!(!shape(767, 2304, 13, Layout::TN).rows_of_16_bytes());
    }
}
