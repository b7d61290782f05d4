//! What happens to a finished tile on its way into C: accumulate, add the bias, keep the
//! pre-activation, apply GELU. Shared by the BLIS driver and the matrix–vector path.
//!
//! GELU lives here (not in `cpu::gelu`) only so that this file has no dependency on a
//! sibling op: [`gelu_in_place`] is the one function to swap for the shared GELU later.

use std::marker::PhantomData;

use crate::cpu::simd::Isa;

/// `sqrt(2/π)`, the constant of GPT-2's tanh-approximated GELU.
const GELU_SCALE: f32 = 0.797_884_6;
/// The cubic coefficient of the same approximation.
const GELU_CUBIC: f32 = 0.044_715;

/// How one k block's product is combined with C, and the optional final touches.
#[derive(Clone, Copy)]
pub(super) struct Pass<'a> {
    /// `C += AB` (C holds an earlier k block, or the caller asked to accumulate);
    /// otherwise `C = AB`.
    pub add: bool,
    /// The last k block: apply bias / pre / GELU after the sum. `None` otherwise.
    pub finish: Option<Finish<'a>>,
}

/// The epilogue applied once the full K sum is in C.
#[derive(Clone, Copy)]
pub(super) struct Finish<'a> {
    /// Bias over all N columns, indexed by the absolute column.
    pub bias: Option<&'a [f32]>,
    /// Apply GELU after the bias.
    pub gelu: bool,
}

/// C (`m × n`, row stride `ldc`) and the optional pre-activation buffer of the same
/// layout, as raw pointers: tasks on different threads each write their own
/// rectangle of C, which `&mut [f32]` cannot express without splitting by rows only.
pub(super) struct OutPtr<'a> {
    c: *mut f32,
    pre: Option<*mut f32>,
    ldc: usize,
    m: usize,
    n: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `OutPtr` is a `&mut [f32]` (two of them) whose disjoint parts are handed
// out by `write_tile`, whose contract makes every caller own its rectangle exclusively.
unsafe impl Send for OutPtr<'_> {}
// SAFETY: as above: shared use only ever writes disjoint rectangles.
unsafe impl Sync for OutPtr<'_> {}

impl<'a> OutPtr<'a> {
    /// Wraps C and `pre`, which the caller has checked to hold `m × n` with row stride
    /// `ldc ≥ n` (`(m−1)·ldc + n` elements at least).
    pub(super) fn new(
        c: &'a mut [f32],
        pre: Option<&'a mut [f32]>,
        ldc: usize,
        m: usize,
        n: usize,
    ) -> Self {
        let need = if m == 0 || n == 0 {
            0
        } else {
            (m - 1) * ldc + n
        };
        assert!(
            c.len() >= need && pre.as_ref().is_none_or(|p| p.len() >= need) && (m <= 1 || ldc >= n)
        );
        OutPtr {
            c: c.as_mut_ptr(),
            pre: pre.map(|p| p.as_mut_ptr()),
            ldc,
            m,
            n,
            _borrow: PhantomData,
        }
    }

    /// Row stride of C.
    pub(super) fn ldc(&self) -> usize {
        self.ldc
    }

    /// Pointer to element `(i, j)` of C, where an `h × w` tile must fit.
    pub(super) fn tile_ptr(&self, (i, j): (usize, usize), (h, w): (usize, usize)) -> *mut f32 {
        assert!(i + h <= self.m && j + w <= self.n);
        self.c.wrapping_add(i * self.ldc + j)
    }

    /// Applies the epilogue in place to the `h × w` tile of C at `(i, j)`, which already
    /// holds the full sum.
    ///
    /// # Safety
    /// As [`Self::write_tile`]: the rectangle is exclusively the caller's.
    pub(super) unsafe fn finish_tile(
        &self,
        isa: Isa,
        fin: Finish<'_>,
        (i, j): (usize, usize),
        (h, w): (usize, usize),
    ) {
        assert!(i + h <= self.m && j + w <= self.n);
        for r in 0..h {
            // SAFETY: as in `write_tile`.
            let (c, pre) = unsafe { self.row(i + r, j, w) };
            finish_row(isa, fin, c, pre, j);
        }
    }

    /// Row `i`, columns `j..j + w` of C and `pre`.
    ///
    /// # Safety
    /// In bounds (checked by the callers) and exclusively the caller's.
    #[allow(clippy::mut_from_ref)] // disjointness is the (unsafe) caller's contract
    unsafe fn row(&self, i: usize, j: usize, w: usize) -> (&mut [f32], Option<&mut [f32]>) {
        let off = i * self.ldc + j;
        // SAFETY: the callers checked that the row segment is inside C/pre (with
        // `ldc ≥ n` from `new`, rows do not overlap) and own it exclusively.
        unsafe {
            (
                std::slice::from_raw_parts_mut(self.c.add(off), w),
                self.pre
                    .map(|p| std::slice::from_raw_parts_mut(p.add(off), w)),
            )
        }
    }

    /// Writes the `h × w` tile `ab` (row stride `ab_stride`) at rows `i..i+h`, columns
    /// `j..j+w` of C with [`write_row`].
    ///
    /// # Safety
    /// No other thread may access that rectangle of C or `pre` during the call
    /// (callers partition C into disjoint tiles). Bounds are checked here.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn write_tile(
        &self,
        isa: Isa,
        pass: Pass<'_>,
        (i, j): (usize, usize),
        (h, w): (usize, usize),
        ab: &[f32],
        ab_stride: usize,
    ) {
        assert!(
            i + h <= self.m && j + w <= self.n && (h == 0 || ab.len() >= (h - 1) * ab_stride + w)
        );
        for r in 0..h {
            // SAFETY: in bounds (asserted above) and ours (the caller's contract).
            let (c, pre) = unsafe { self.row(i + r, j, w) };
            write_row(isa, pass, c, &ab[r * ab_stride..][..w], pre, j);
        }
    }
}

/// Writes one row segment of a tile: `c = (add ? c : 0) + ab`, then on the last pass
/// `c += bias[j0..]`, `pre = c`, `c = gelu(c)`. `ab`, `c` and `pre` have equal lengths.
#[inline]
fn write_row(
    isa: Isa,
    pass: Pass<'_>,
    c: &mut [f32],
    ab: &[f32],
    pre: Option<&mut [f32]>,
    j0: usize,
) {
    if pass.add {
        for (c, &x) in c.iter_mut().zip(ab) {
            *c += x;
        }
    } else {
        c.copy_from_slice(ab);
    }
    if let Some(fin) = pass.finish {
        finish_row(isa, fin, c, pre, j0);
    }
}

/// The epilogue on one row segment starting at column `j0`: `c += bias`, `pre = c`,
/// `c = gelu(c)`.
#[inline]
fn finish_row(isa: Isa, fin: Finish<'_>, c: &mut [f32], pre: Option<&mut [f32]>, j0: usize) {
    if let Some(bias) = fin.bias {
        let w = c.len();
        for (c, &b) in c.iter_mut().zip(&bias[j0..j0 + w]) {
            *c += b;
        }
    }
    if let Some(pre) = pre {
        pre.copy_from_slice(c);
    }
    if fin.gelu {
        gelu_in_place(isa, c);
    }
}

/// GPT-2's GELU, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, in place.
///
/// Computed as the algebraically equal `x / (1 + exp(−2u))`, `u = √(2/π)·(x + 0.044715·x³)`:
/// one `exp` and no cancellation for small `|u|` (where `1 + tanh` would lose digits), and
/// it saturates to `x` and `−0` without overflow tricks.
pub(super) fn gelu_in_place(isa: Isa, x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: an AVX2 `Isa` proves the CPU has AVX2 and FMA.
        unsafe { avx2::gelu_in_place(x) };
        return;
    }
    let _ = isa;
    x.iter_mut().for_each(|v| *v = gelu_scalar(*v));
}

/// Scalar GELU, the formula of [`gelu_in_place`].
#[inline]
fn gelu_scalar(x: f32) -> f32 {
    let u = GELU_SCALE * (x + GELU_CUBIC * x * x * x);
    x / (1.0 + (-2.0 * u).exp())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{GELU_CUBIC, GELU_SCALE, gelu_scalar};

    /// 8-lane GELU; the `len % 8` tail goes through the scalar formula.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_in_place(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for ch in &mut chunks {
            // SAFETY: `ch` has exactly 8 elements.
            let v = unsafe { _mm256_loadu_ps(ch.as_ptr()) };
            let x3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
            let u = _mm256_mul_ps(
                _mm256_set1_ps(GELU_SCALE),
                _mm256_fmadd_ps(_mm256_set1_ps(GELU_CUBIC), x3, v),
            );
            let e = exp(_mm256_mul_ps(_mm256_set1_ps(-2.0), u));
            let g = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0), e));
            // SAFETY: as for the load.
            unsafe { _mm256_storeu_ps(ch.as_mut_ptr(), g) };
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|v| *v = gelu_scalar(*v));
    }

    /// `exp(x)` to ~1 ulp (Cephes `expf`): `x = n·ln2 + r`, `|r| ≤ ln2/2`, a degree-6
    /// polynomial for `e^r`, and `2^n` built in the exponent bits. Above 88.7 the result
    /// is +∞ (as libm's), below −87.3 it is `e^−87.3` (GELU only needs it tiny there).
    #[target_feature(enable = "avx2,fma")]
    fn exp(x_in: __m256) -> __m256 {
        let hi = _mm256_set1_ps(88.7);
        let x = _mm256_min_ps(_mm256_max_ps(x_in, _mm256_set1_ps(-87.3)), hi);
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
        // ln2 split in a part exact in f32 and the rest (Cody–Waite), so r is exact.
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        let y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        let e = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
        let overflow = _mm256_cmp_ps::<_CMP_GT_OQ>(x_in, hi);
        _mm256_blendv_ps(e, _mm256_set1_ps(f32::INFINITY), overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's formula in f64, written as `x·σ(2u)`, which equals
    /// `0.5·x·(1 + tanh(u))` but keeps its digits where `1 + tanh(u)` cancels (x < −5).
    fn gelu_f64(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        x / (1.0 + (-2.0 * u).exp())
    }

    /// Both paths match GELU to 1e-6 relative per element, plus the error that rounding
    /// x itself to f32 causes (`ε·|x·gelu'(x)|`, ε = 2⁻²³: GELU's condition number grows
    /// like x² for x < 0, so no f32 implementation does better there), from deep
    /// negative inputs to large positive ones, with lengths that leave a scalar tail
    /// (and 1e-37 absolute: below f32's normal range GELU flushes to 0).
    #[test]
    fn gelu_matches_tanh_formula() {
        let xs: Vec<f32> = (0..2403)
            .map(|i| -12.0 + i as f32 * 0.01)
            .chain([0.0, -0.0, 1e-20, -1e-20, 300.0, -300.0])
            .collect();
        for isa in Isa::available() {
            let mut got = xs.clone();
            gelu_in_place(isa, &mut got);
            for (&x, &g) in xs.iter().zip(&got) {
                let (x64, h) = (x as f64, 1e-6);
                let (want, slope) = (
                    gelu_f64(x64),
                    (gelu_f64(x64 + h) - gelu_f64(x64 - h)) / (2.0 * h),
                );
                let tol = 1e-6 * want.abs() + f32::EPSILON as f64 * (x64 * slope).abs() + 1e-37;
                assert!(
                    (g as f64 - want).abs() <= tol,
                    "{isa}: gelu({x}) = {g:e}, want {want:e}"
                );
            }
        }
        // The tanh form itself, where it does not cancel.
        for x in [-3.0f32, -1.0, -0.1, 0.5, 2.0, 7.0] {
            let s = (2.0 / std::f64::consts::PI).sqrt();
            let x64 = x as f64;
            let tanh_form = 0.5 * x64 * (1.0 + (s * (x64 + 0.044715 * x64 * x64 * x64)).tanh());
            assert!((gelu_f64(x64) - tanh_form).abs() <= 1e-12 * tanh_form.abs());
        }
    }
}
