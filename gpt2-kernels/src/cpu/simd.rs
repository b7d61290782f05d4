//! The small SIMD layer: which instruction set a kernel runs on, chosen at run time.
//!
//! Kernels never call `is_x86_feature_detected!` themselves: the caller picks an
//! [`Isa`] once ([`Isa::best`]) and passes it down. An `Isa` value can only be made for
//! an instruction set the CPU has, which is what makes the `unsafe` calls into
//! `#[target_feature]` code below sound. A NEON backend is one more variant and one
//! more file beside `simd/avx2.rs` and `simd/scalar.rs`.

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
mod avx2;
mod scalar;
#[cfg(test)]
mod tests;

/// An instruction set that kernels can run on. Construct with [`Isa::best`],
/// [`Isa::scalar`] or [`Isa::avx2`]; holding an `Isa::Avx2Fma` proves the CPU has
/// AVX2 and FMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Isa(Level);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Level {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The portable scalar path; always available.
    pub const fn scalar() -> Isa {
        Isa(Level::Scalar)
    }

    /// AVX2 + FMA, if this CPU has both.
    pub fn avx2() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Some(Isa(Level::Avx2Fma));
            }
        }
        None
    }

    /// The fastest instruction set this CPU has, detected once. Setting the environment
    /// variable `GPT2_SIMD=scalar` forces the scalar path (for debugging and comparison).
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            if std::env::var("GPT2_SIMD").is_ok_and(|v| v.eq_ignore_ascii_case("scalar")) {
                return Isa::scalar();
            }
            Isa::avx2().unwrap_or(Isa::scalar())
        })
    }

    /// Every instruction set available on this CPU (for tests that compare paths).
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::scalar()];
        v.extend(Isa::avx2());
        v
    }

    /// A short name: `"scalar"` or `"avx2+fma"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            Level::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Level::Avx2Fma => "avx2+fma",
        }
    }

    /// Whether this is the AVX2+FMA instruction set.
    pub fn is_avx2(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.0 == Level::Avx2Fma
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Calls `$f` of the implementation that `$isa` selects.
macro_rules! dispatch {
    ($isa:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $isa.0 {
            Level::Scalar => scalar::$f($($arg),*),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Level::Avx2Fma` is only ever made by `Isa::avx2`, after detecting
            // that this CPU has AVX2 and FMA, which is all the `avx2` functions require.
            Level::Avx2Fma => unsafe { avx2::$f($($arg),*) },
        }
    };
}

/// A read-only strided matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
///
/// [`MatRef::new`] checks that every element lies inside `data`; the fields stay private
/// so the vector kernels can rely on that.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A `rows × cols` view of `data` with row stride `rs` and column stride `cs`.
    ///
    /// # Panics
    /// If an element of the view lies outside `data` (an internal invariant: kernels
    /// derive views from lengths they have already checked).
    pub(crate) fn new(data: &'a [f32], (rows, cols): (usize, usize), rs: usize, cs: usize) -> Self {
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * rs + (cols - 1) * cs < data.len(),
                "MatRef out of bounds"
            );
        }
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// A row-major view: `rows × cols` with row stride `rs` (columns contiguous).
    pub(crate) fn rows(data: &'a [f32], (rows, cols): (usize, usize), rs: usize) -> Self {
        Self::new(data, (rows, cols), rs, 1)
    }

    /// The transpose, without copying.
    pub(crate) fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    #[inline]
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// A mutable row-major matrix view: element `(i, j)` is `data[i * rs + j]`.
#[derive(Debug)]
pub(crate) struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    rs: usize,
}

impl<'a> MatMut<'a> {
    /// A `rows × cols` view of `data` with row stride `rs`.
    ///
    /// # Panics
    /// If an element of the view lies outside `data` (an internal invariant).
    pub(crate) fn new(data: &'a mut [f32], (rows, cols): (usize, usize), rs: usize) -> Self {
        if rows > 0 && cols > 0 {
            assert!((rows - 1) * rs + cols <= data.len(), "MatMut out of bounds");
        }
        MatMut {
            data,
            rows,
            cols,
            rs,
        }
    }
}

/// The per-step scalars of an AdamW update (PyTorch's formula, see `cpu::adamw`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamWCoeffs {
    /// `1 − lr·weight_decay`: the decoupled decay factor.
    pub decay: f32,
    /// `1 − β1`: the weight of `m`'s lerp towards the gradient.
    pub one_minus_beta1: f32,
    /// `β2`.
    pub beta2: f32,
    /// `1 − β2`.
    pub one_minus_beta2: f32,
    /// `√(1 − β2^t)`.
    pub bias_correction2_sqrt: f32,
    /// `lr / (1 − β1^t)`.
    pub step_size: f32,
    /// `ε`.
    pub eps: f32,
}

/// The vector helpers. Each has a scalar and an AVX2+FMA implementation with the same
/// meaning (they differ only by rounding: different summation orders, FMA, and the
/// vector `exp`/`tanh`, which are within about 1 ulp of the exact value, see
/// `simd/avx2.rs`). Slice arguments of one call must have equal lengths, which the
/// calling kernels have already checked: a mismatch is an internal bug and panics.
impl Isa {
    /// `Σ a_i b_i`.
    pub(crate) fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        dispatch!(self, dot(a, b))
    }

    /// `Σ x_i`.
    pub(crate) fn sum(self, x: &[f32]) -> f32 {
        dispatch!(self, sum(x))
    }

    /// `max_i x_i` (−∞ for an empty slice).
    pub(crate) fn max(self, x: &[f32]) -> f32 {
        dispatch!(self, max(x))
    }

    /// `Σ x_i²`, accumulated in `f64`.
    pub(crate) fn sum_sq_f64(self, x: &[f32]) -> f64 {
        dispatch!(self, sum_sq_f64(x))
    }

    /// `Σ (x_i − m)²`.
    pub(crate) fn sum_sq_diff(self, x: &[f32], m: f32) -> f32 {
        dispatch!(self, sum_sq_diff(x, m))
    }

    /// `Σ e^(x_i − shift)`.
    pub(crate) fn sum_exp_shift(self, x: &[f32], shift: f32) -> f32 {
        dispatch!(self, sum_exp_shift(x, shift))
    }

    /// `x_i ← e^(x_i − shift)`, returning the sum of the new values.
    pub(crate) fn exp_shift(self, x: &mut [f32], shift: f32) -> f32 {
        dispatch!(self, exp_shift(x, shift))
    }

    /// `out_i = a_i + b_i`.
    pub(crate) fn add(self, out: &mut [f32], a: &[f32], b: &[f32]) {
        assert!(out.len() == a.len() && a.len() == b.len());
        dispatch!(self, add(out, a, b))
    }

    /// `y_i += alpha · x_i`.
    pub(crate) fn axpy(self, y: &mut [f32], alpha: f32, x: &[f32]) {
        assert_eq!(y.len(), x.len());
        dispatch!(self, axpy(y, alpha, x))
    }

    /// `x_i ← s · x_i`.
    pub(crate) fn scale(self, x: &mut [f32], s: f32) {
        dispatch!(self, scale(x, s))
    }

    /// The softmax vector–Jacobian product in place: `dp_i ← p_i (dp_i − d)` where `d`
    /// is `Σ p_j dp_j` (computed by the caller).
    pub(crate) fn softmax_vjp(self, dp: &mut [f32], p: &[f32], d: f32) {
        assert_eq!(dp.len(), p.len());
        dispatch!(self, softmax_vjp(dp, p, d))
    }

    /// `x_i ← GELU(x_i)`, GPT-2's tanh approximation `½·x·(1 + tanh u)`,
    /// `u = √(2/π)·(x + 0.044715·x³)`, computed as the algebraically equal
    /// `x / (1 + e^{−2u})`: one `exp`, no cancellation where `1 + tanh u` would lose
    /// digits (x < −5), and it saturates to `x` and `−0` without special cases. The one
    /// GELU of the crate: [`crate::cpu::gelu`] and the matmul epilogue both call it.
    pub(crate) fn gelu_in_place(self, x: &mut [f32]) {
        dispatch!(self, gelu_in_place(x))
    }

    /// `dinp_i += GELU'(inp_i) · dout_i`.
    pub(crate) fn gelu_backward(self, dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
        assert!(dinp.len() == inp.len() && inp.len() == dout.len());
        dispatch!(self, gelu_backward(dinp, inp, dout))
    }

    /// One layernorm row: `out_i = (x_i − mean)·rstd·w_i + b_i`.
    pub(crate) fn layernorm_row(
        self,
        out: &mut [f32],
        x: &[f32],
        stats: (f32, f32),
        w: &[f32],
        b: &[f32],
    ) {
        let n = out.len();
        assert!(x.len() == n && w.len() == n && b.len() == n);
        dispatch!(self, layernorm_row(out, x, stats, w, b))
    }

    /// One layernorm row backward, accumulating into `(dinp, dweight, dbias)`;
    /// `stats = (mean, rstd)` of the row.
    pub(crate) fn layernorm_backward_row(
        self,
        grads: (&mut [f32], &mut [f32], &mut [f32]),
        dout: &[f32],
        x: &[f32],
        w: &[f32],
        stats: (f32, f32),
    ) {
        let n = x.len();
        assert!(grads.0.len() == n && grads.1.len() == n && grads.2.len() == n);
        assert!(dout.len() == n && w.len() == n);
        dispatch!(self, layernorm_backward_row(grads, dout, x, w, stats))
    }

    /// One AdamW update of `p` with gradient `g` and moments `m`, `v`.
    pub(crate) fn adamw(
        self,
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        k: &AdamWCoeffs,
    ) {
        let n = p.len();
        assert!(g.len() == n && m.len() == n && v.len() == n);
        dispatch!(self, adamw(p, g, m, v, k))
    }

    /// `f32 → bf16` bits, round to nearest even (NaN stays NaN).
    pub(crate) fn f32_to_bf16(self, out: &mut [u16], inp: &[f32]) {
        assert_eq!(out.len(), inp.len());
        dispatch!(self, f32_to_bf16(out, inp))
    }

    /// `bf16 → f32` (exact).
    pub(crate) fn bf16_to_f32(self, out: &mut [f32], inp: &[u16]) {
        assert_eq!(out.len(), inp.len());
        dispatch!(self, bf16_to_f32(out, inp))
    }

    /// `C += A·B` for small (cache-resident) blocks: `C` is `m × n` row-major, `A` is
    /// `m × k` with any strides, `B` is `k × n` with contiguous rows. Large products go
    /// through the packed GEMM of `cpu::matmul`; this is the block product of attention.
    pub(crate) fn gemm_acc(self, c: MatMut, a: MatRef, b: MatRef) {
        assert!(a.rows == c.rows && b.cols == c.cols && a.cols == b.rows && b.cs == 1);
        dispatch!(self, gemm(c, a, b, true))
    }

    /// `C = A·B` (overwriting `C`), otherwise as [`Isa::gemm_acc`].
    pub(crate) fn gemm(self, c: MatMut, a: MatRef, b: MatRef) {
        assert!(a.rows == c.rows && b.cols == c.cols && a.cols == b.rows && b.cs == 1);
        dispatch!(self, gemm(c, a, b, false))
    }

    /// `dst = srcᵀ`: `dst` is `cols × rows` for a `rows × cols` source with contiguous
    /// rows (packs blocks of keys/values for the block products).
    pub(crate) fn transpose(self, dst: MatMut, src: MatRef) {
        assert!(dst.rows == src.cols && dst.cols == src.rows && src.cs == 1);
        dispatch!(self, transpose(dst, src))
    }

    /// `C = alpha·A·Bᵀ` (overwriting `C`) for small blocks: `A` is `m × k`, `B` is `n × k`,
    /// both with contiguous rows, so every entry is a dot product of two rows.
    pub(crate) fn gemm_nt(self, c: MatMut, a: MatRef, b: MatRef, alpha: f32) {
        assert!(a.rows == c.rows && b.rows == c.cols && a.cols == b.cols);
        assert!(a.cs == 1 && b.cs == 1);
        dispatch!(self, gemm_nt(c, a, b, alpha))
    }
}
