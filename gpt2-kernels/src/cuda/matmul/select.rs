//! Which version of the ladder runs a product ([`Version`]), checked against the device,
//! the element type and the shape; and v4's self-test against v3 at its first use.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use half::bf16;

use super::WeightLayout;
use super::gemm::{Gemm, Layout, Shape};
use crate::cuda::module::Arg;
use crate::cuda::{Gpu, GpuFloat};
use crate::{KernelError, Result};

/// The matmul kernels, a ladder of versions kept side by side (`docs/kernels.md` walks
/// it). Every version computes in f32 and stores results in the operands' element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The fastest version that applies to the device, element type and shape: for bf16,
    /// v4 on compute capability 9.0 (once its self-test passed), else v3, when the
    /// operands' rows are whole 16-byte chunks; v2 otherwise (and for f32).
    Auto,
    /// v1 (`matmul_v1_tiled.cu`): 16 × 16 shared-memory tiles, one output per thread.
    /// f32 or bf16, any shape.
    Tiled,
    /// v2 (`matmul_v2_regblock.cu`): 128 × 128 tiles, 8 × 8 outputs per thread held in
    /// registers. f32 or bf16, any shape.
    RegBlock,
    /// v3 (`matmul_v3_mma.cu`): bf16 tensor cores through `mma.sync`, `ldmatrix` and
    /// `cp.async` multi-buffering. Compute capability 8.0 or newer, bf16, and every
    /// operand's contiguous dimension a multiple of 8 (see [`Version::resolve`]).
    Mma,
    /// v4 (`matmul_v4_wgmma.sm90a.cu`): Hopper's `wgmma` fed by TMA, warp-specialised.
    /// Compute capability exactly 9.0, with v3's requirements.
    Wgmma,
}

/// Which product of a linear layer `out = inp · W + bias` ([`super::forward`] /
/// [`super::backward`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// `out (M, N) = inp (M, K) · W`.
    Forward,
    /// `dinp (M, K) += dout (M, N) · Wᵀ`.
    Dinp,
    /// `dW += inpᵀ · dout` (or its transpose for [`WeightLayout::OutIn`]).
    Dweight,
}

impl Version {
    /// The explicit versions, in ladder order.
    pub const LADDER: [Version; 4] = [
        Version::Tiled,
        Version::RegBlock,
        Version::Mma,
        Version::Wgmma,
    ];

    /// `"v1"` .. `"v4"`, or `"auto"`.
    pub fn name(self) -> &'static str {
        match self {
            Version::Auto => "auto",
            Version::Tiled => "v1",
            Version::RegBlock => "v2",
            Version::Mma => "v3",
            Version::Wgmma => "v4",
        }
    }

    /// The version that runs `pass` of a layer with `k` inputs and `n` outputs (weights
    /// in `layout`) with element type `T` on `gpu`: `self` if it applies, the fastest
    /// that applies for [`Version::Auto`]. An explicit version that does not apply is a
    /// [`KernelError::Shape`] saying why. v3 and v4 read every operand row as 16-byte
    /// chunks: `K` and `N` multiples of 8 always do; the forward with `(N, K)` weights
    /// needs only `K`, and the dX of `(K, N)` weights only `N`.
    pub fn resolve<T: GpuFloat>(
        self,
        gpu: &Gpu,
        pass: Pass,
        layout: WeightLayout,
        k: usize,
        n: usize,
    ) -> Result<Version> {
        let shape = Shape::of(pass, layout, 1, k, n);
        self.resolve_shape::<T>(gpu, &shape, "cuda::matmul::Version::resolve")
    }

    pub(super) fn resolve_shape<T: GpuFloat>(
        self,
        gpu: &Gpu,
        s: &Shape,
        op: &'static str,
    ) -> Result<Version> {
        if self != Version::Auto {
            return match why_not::<T>(self, gpu, s) {
                None => Ok(self),
                Some(why) => Err(KernelError::Shape {
                    op,
                    msg: format!("matmul {} {why}", self.name()),
                }),
            };
        }
        let wgmma_off = std::env::var_os("GPT2_CUDA_WGMMA").is_some_and(|v| v == "off");
        let candidates: &[Version] = if T::IS_BF16 && !wgmma_off {
            &[Version::Wgmma, Version::Mma]
        } else if T::IS_BF16 {
            &[Version::Mma]
        } else {
            &[]
        };
        Ok(candidates
            .iter()
            .copied()
            .find(|&v| why_not::<T>(v, gpu, s).is_none())
            .unwrap_or(Version::RegBlock))
    }
}

/// Why `v` cannot run product `s` on `gpu` with element type `T`; `None` if it can.
fn why_not<T: GpuFloat>(v: Version, gpu: &Gpu, s: &Shape) -> Option<String> {
    let cc = gpu.compute_capability();
    match v {
        Version::Auto | Version::Tiled | Version::RegBlock => None,
        Version::Mma | Version::Wgmma if !T::IS_BF16 => Some("takes bf16 operands".into()),
        Version::Mma | Version::Wgmma if !s.rows_of_16_bytes() => Some(format!(
            "reads operand rows as 16-byte chunks: the contiguous dimension of each operand \
             must be a multiple of 8 (m = {}, n = {}, k = {}, {:?})",
            s.m, s.n, s.k, s.layout
        )),
        Version::Mma if cc < (8, 0) => {
            Some(format!("needs sm_80 or newer, not sm_{}{}", cc.0, cc.1))
        }
        Version::Mma => None,
        Version::Wgmma if cc != (9, 0) => Some(format!(
            "needs sm_90 (sm_90a code), not sm_{}{}",
            cc.0, cc.1
        )),
        Version::Wgmma => wgmma_checked(gpu).err(),
    }
}

/// v4's self-test result per device, run once at first use.
static WGMMA_CHECKED: Mutex<BTreeMap<usize, std::result::Result<(), String>>> =
    Mutex::new(BTreeMap::new());

/// Whether v4 agrees with v3 on this device: at its first use on a device, both run the
/// three layouts at both tile widths on a product whose sizes are no multiple of the
/// tiles (200 × 136 × 264), and must agree within bf16 rounding. If not (or if v4 fails
/// to load or launch) v4 is off for the process, with one line on stderr saying why,
/// and [`Version::Auto`] uses v3.
fn wgmma_checked(gpu: &Gpu) -> std::result::Result<(), String> {
    let mut checked = WGMMA_CHECKED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(r) = checked.get(&gpu.ordinal()) {
        return r.clone();
    }
    let r = self_test(gpu);
    if let Err(why) = &r {
        eprintln!(
            "gpt2-kernels: matmul v4 (wgmma) is off on cuda:{}: {why}; using v3 (mma.sync)",
            gpu.ordinal()
        );
    }
    checked.insert(gpu.ordinal(), r.clone());
    r
}

fn self_test(gpu: &Gpu) -> std::result::Result<(), String> {
    const TOL: f64 = 2e-2;
    let (m, n, k) = (200, 136, 264);
    let mut rng = crate::rng::Rng::new(90);
    let mut random = |len: usize| -> Vec<bf16> {
        (0..len)
            .map(|_| bf16::from_f32(2.0 * rng.next_f32() - 1.0))
            .collect()
    };
    let (a, b) = (random(m * k), random(k * n));
    let run = || -> Result<f64> {
        let (a, b) = (gpu.upload(&a)?, gpu.upload(&b)?);
        let mut worst = 0.0f64;
        for layout in [Layout::NN, Layout::NT, Layout::TN] {
            for tile_n in [128, 256] {
                let mut outs = [gpu.alloc::<bf16>(m * n)?, gpu.alloc::<bf16>(m * n)?];
                for (out, v) in outs.iter_mut().zip([Version::Mma, Version::Wgmma]) {
                    let g = Gemm {
                        shape: Shape { m, n, k, layout },
                        a: a.arg(),
                        b: b.arg(),
                        c: out.arg(),
                        pre: Arg::null(gpu.ordinal()),
                        bias: Arg::null(gpu.ordinal()),
                        flags: 0,
                    };
                    g.launch::<bf16>(gpu, "cuda::matmul self-test", v, tile_n)?;
                }
                let [want, got] = [outs[0].to_vec()?, outs[1].to_vec()?];
                worst = worst.max(rel_err(&got, &want));
                if worst.is_nan() || worst > TOL {
                    return Ok(worst);
                }
            }
        }
        Ok(worst)
    };
    match run() {
        Ok(e) if e <= TOL => Ok(()),
        Ok(e) => Err(format!(
            "its self-test differs from v3 by {e:.2e} (max |v4 - v3| / max |v3|, tolerance {TOL})"
        )),
        Err(e) => Err(format!("its self-test failed: {e}")),
    }
}

/// `max|got − want| / max|want|` (NaN if `got` has a NaN).
fn rel_err(got: &[bf16], want: &[bf16]) -> f64 {
    let (mut diff, mut scale) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        let (g, w) = (g.to_f64(), w.to_f64());
        if g.is_nan() {
            return f64::NAN;
        }
        diff = diff.max((g - w).abs());
        scale = scale.max(w.abs());
    }
    diff / scale.max(f64::MIN_POSITIVE)
}
