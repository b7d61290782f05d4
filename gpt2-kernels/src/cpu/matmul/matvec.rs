//! The small-M path (decode: one token per sequence): `y (R, N) = x (R, K) · B (K, N)`
//! for `R ≤ MAX_ROWS`, streaming B once at memory bandwidth.
//!
//! With so few rows a BLIS GEMM would spend its time packing B (each B element feeds
//! only `2R` flops), so B is read in place, in one of its two unit-stride forms:
//! - **axpy** (`B` rows contiguous, e.g. a Conv1D `(K, N)` weight): each task owns a
//!   chunk of columns, sums `x[r, p] · B[p, chunk]` over `p` into an L1-resident
//!   accumulator, reading every B row segment once;
//! - **dot** (`B` columns contiguous, e.g. a `(N, K)` Linear weight or the tied LM head
//!   `wte (V, C)`): each output is a dot product of `x` with one contiguous B column.
//!
//! Each output element is summed by one task in a fixed order, so results do not depend
//! on the thread count. bf16 weights are widened in registers.

use rayon::prelude::*;

use super::epilogue::{Finish, OutPtr, Pass};
use super::{Element, MatRef};
use crate::cpu::simd::Isa;

/// Largest M that takes this path. Up to 4 rows the product stays memory-bound (B is
/// read once; `2R` flops per element); beyond that BLIS with packing wins.
pub(super) const MAX_ROWS: usize = 4;
/// Widest column chunk of one task (accumulators `MAX_ROWS × MAX_NB` on the stack, 8 KiB).
const MAX_NB: usize = 512;

/// Whether `C = A · B` can take this path: few rows, A rows contiguous, B with one unit
/// stride.
pub(super) fn applies<T: Element>(m: usize, a: &MatRef<'_, f32>, b: &MatRef<'_, T>) -> bool {
    m <= MAX_ROWS && a.cs == 1 && (b.cs == 1 || b.rs == 1)
}

/// Columns per task: about N/8 (so 2–3 threads balance), in whole cache lines, at most
/// [`MAX_NB`]. Depends on N only.
fn chunk_width(n: usize) -> usize {
    n.div_ceil(8).next_multiple_of(16).clamp(16, MAX_NB)
}

/// `C (m, n) = [C +] A (m, k) · B (k, n)`, epilogue applied; `m ≤ MAX_ROWS`, `k ≥ 1`,
/// [`applies`] holds, and the caller checked all extents.
#[allow(clippy::too_many_arguments)]
pub(super) fn matvec<T: Element>(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: MatRef<'_, f32>,
    b: MatRef<'_, T>,
    out: &OutPtr<'_>,
    accumulate: bool,
    finish: Finish<'_>,
) {
    debug_assert!(applies(m, &a, &b) && k >= 1);
    let nb = chunk_width(n);
    let pass = Pass {
        add: accumulate,
        finish: Some(finish),
    };
    let xs = Rows {
        data: a.data,
        stride: a.rs,
        count: m,
        len: k,
    };
    (0..n.div_ceil(nb)).into_par_iter().for_each(|c| {
        let (j0, w) = (c * nb, nb.min(n - c * nb));
        let mut acc = [0f32; MAX_ROWS * MAX_NB];
        if b.cs == 1 {
            let rows = Rows {
                data: &b.data[j0..],
                stride: b.rs,
                count: k,
                len: w,
            };
            kernels::axpy(isa, &xs, &rows, &mut acc);
        } else {
            let cols = Rows {
                data: &b.data[j0 * b.cs..],
                stride: b.cs,
                count: w,
                len: k,
            };
            kernels::dot(isa, &xs, &cols, &mut acc);
        }
        // SAFETY: tasks own disjoint column chunks `j0..j0 + w` of all m rows.
        unsafe { out.write_tile(isa, pass, (0, j0), (m, w), &acc, MAX_NB) };
    });
}

/// `count` vectors of `len` elements, vector `i` at `data[i·stride..][..len]`.
struct Rows<'a, T> {
    data: &'a [T],
    stride: usize,
    count: usize,
    len: usize,
}

impl<'a, T> Rows<'a, T> {
    fn get(&self, i: usize) -> &'a [T] {
        &self.data[i * self.stride..][..self.len]
    }
}

mod kernels {
    use super::{Element, Isa, MAX_NB, Rows};

    /// `acc[r·MAX_NB + j] = Σ_p x[r][p] · rows[p][j]`.
    pub(super) fn axpy<T: Element>(
        isa: Isa,
        x: &Rows<'_, f32>,
        rows: &Rows<'_, T>,
        acc: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if isa.is_avx2() {
            // SAFETY: an AVX2 `Isa` proves the CPU has AVX2 and FMA.
            unsafe { avx2::axpy(x, rows, acc) };
            return;
        }
        let _ = isa;
        for p in 0..rows.count {
            let bp = rows.get(p);
            for (r, acc) in acc.chunks_exact_mut(MAX_NB).take(x.count).enumerate() {
                let xv = x.get(r)[p];
                for (a, b) in acc.iter_mut().zip(bp) {
                    *a += xv * b.to_f32();
                }
            }
        }
    }

    /// `acc[r·MAX_NB + j] = x[r] · cols[j]`.
    pub(super) fn dot<T: Element>(
        isa: Isa,
        x: &Rows<'_, f32>,
        cols: &Rows<'_, T>,
        acc: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if isa.is_avx2() {
            // SAFETY: an AVX2 `Isa` proves the CPU has AVX2 and FMA.
            unsafe { avx2::dot(x, cols, acc) };
            return;
        }
        let _ = isa;
        for j in 0..cols.count {
            let col = cols.get(j);
            for r in 0..x.count {
                acc[r * MAX_NB + j] = x.get(r).iter().zip(col).map(|(x, b)| x * b.to_f32()).sum();
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use std::arch::x86_64::*;

        use super::{Element, MAX_NB, Rows};
        use crate::cpu::matmul::element::load8;

        /// AVX2 [`super::axpy`]: per B row, one FMA per 8 lanes per x row, accumulators
        /// in L1; the `len % 8` tail with scalar FMAs.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn axpy<T: Element>(
            x: &Rows<'_, f32>,
            rows: &Rows<'_, T>,
            acc: &mut [f32],
        ) {
            let (w, body) = (rows.len, rows.len / 8 * 8);
            for p in 0..rows.count {
                let bp = rows.get(p);
                for (r, acc) in acc.chunks_exact_mut(MAX_NB).take(x.count).enumerate() {
                    let xs = x.get(r)[p];
                    let xv = _mm256_set1_ps(xs);
                    for j in (0..body).step_by(8) {
                        // SAFETY: j + 8 ≤ body ≤ w = bp.len() ≤ MAX_NB = acc.len().
                        unsafe {
                            let b = load8(bp.as_ptr().add(j));
                            let a = _mm256_loadu_ps(acc.as_ptr().add(j));
                            _mm256_storeu_ps(acc.as_mut_ptr().add(j), _mm256_fmadd_ps(xv, b, a));
                        }
                    }
                    for j in body..w {
                        acc[j] = xs.mul_add(bp[j].to_f32(), acc[j]);
                    }
                }
            }
        }

        /// AVX2 [`super::dot`]: four 8-lane accumulators, a fixed-order horizontal sum,
        /// the `len % 8` tail with scalar FMAs.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn dot<T: Element>(
            x: &Rows<'_, f32>,
            cols: &Rows<'_, T>,
            acc: &mut [f32],
        ) {
            let (k, body) = (cols.len, cols.len / 32 * 32);
            for j in 0..cols.count {
                let col = cols.get(j);
                for r in 0..x.count {
                    let xr = x.get(r);
                    let mut s = [_mm256_setzero_ps(); 4];
                    for p in (0..body).step_by(32) {
                        for (u, s) in s.iter_mut().enumerate() {
                            // SAFETY: p + 8u + 8 ≤ body ≤ k = col.len() = xr.len().
                            unsafe {
                                let b = load8(col.as_ptr().add(p + 8 * u));
                                let xv = _mm256_loadu_ps(xr.as_ptr().add(p + 8 * u));
                                *s = _mm256_fmadd_ps(xv, b, *s);
                            }
                        }
                    }
                    let s = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
                    let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
                    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                    let mut sum = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
                    for p in body..k {
                        sum = xr[p].mul_add(col[p].to_f32(), sum);
                    }
                    acc[r * MAX_NB + j] = sum;
                }
            }
        }
    }
}
