//! The small-M path (decode: one token per sequence): `y (R, N) = x (R, K) · B (K, N)`
//! for `R ≤ MAX_ROWS`, streaming B once at memory bandwidth.
//!
//! With so few rows a BLIS GEMM would spend its time packing B (each B element feeds
//! only `2R` flops), so B is read in place, in one of its two unit-stride forms:
//! - **dot** (`B` columns contiguous, e.g. a `(N, K)` Linear weight or the tied LM head
//!   `wte (V, C)`): each output is a dot product of `x` with one contiguous B column;
//!   tasks own chunks of outputs.
//! - **axpy** (`B` rows contiguous, e.g. a Conv1D `(K, N)` weight): tasks own fixed
//!   chunks of [`K_CHUNK`] rows of B, a contiguous block of memory streamed front to
//!   back, and sum `x[r, p] · B[p, :]` over their rows into a partial `(R, N)` result;
//!   the partials are then added in chunk order (on the calling thread). (Splitting by columns instead would
//!   read B in short row segments at a large stride, which streams poorly.)
//!
//! Every sum has a fixed shape that depends only on K, so results do not depend on the
//! thread count. bf16 weights are widened in registers.

use rayon::prelude::*;

use super::epilogue::{Finish, OutPtr, Pass};
use super::{Element, MatRef};
use crate::cpu::simd::Isa;

/// Largest M that takes this path. Up to 4 rows the product stays memory-bound (B is
/// read once; `2R` flops per element); beyond that BLIS with packing wins.
pub(super) const MAX_ROWS: usize = 4;
/// Widest column chunk of one task (accumulators `MAX_ROWS × MAX_NB` on the stack, 8 KiB).
const MAX_NB: usize = 512;
/// Rows of B per task in the axpy form: K = 768 gives 8 tasks (balanced on 1, 2, 4, 8
/// threads); the partials cost `2·4·N` bytes of traffic per 96 rows, ~2 % of B's.
const K_CHUNK: usize = 96;
/// Accumulator floats of an axpy task (16 KiB, half of L1): `R` rows of
/// `AXPY_ACC / R` columns, so that each B row segment is as long as possible
/// (16 KiB of f32 for one row of x) and streams well.
const AXPY_ACC: usize = 4096;

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
    finish: Option<Finish<'_>>,
) {
    debug_assert!(applies(m, &a, &b) && k >= 1);
    let pass = Pass {
        add: accumulate,
        finish,
    };
    let x = Rows {
        data: a.data,
        stride: a.rs,
        count: m,
        len: k,
    };
    if b.cs == 1 {
        by_rows(isa, (m, n, k), &x, b, out, pass);
    } else {
        by_columns(isa, n, &x, b, out, pass);
    }
}

/// The dot form: tasks over chunks of output columns.
fn by_columns<T: Element>(
    isa: Isa,
    n: usize,
    x: &Rows<'_, f32>,
    b: MatRef<'_, T>,
    out: &OutPtr<'_>,
    pass: Pass<'_>,
) {
    let nb = chunk_width(n);
    (0..n.div_ceil(nb)).into_par_iter().for_each(|c| {
        let (j0, w) = (c * nb, nb.min(n - c * nb));
        let mut acc = [0f32; MAX_ROWS * MAX_NB];
        let cols = Rows {
            data: &b.data[j0 * b.cs..],
            stride: b.cs,
            count: w,
            len: x.len,
        };
        kernels::dot(isa, x, &cols, &mut acc);
        // SAFETY: tasks own disjoint column chunks `j0..j0 + w` of all rows.
        unsafe { out.write_tile(isa, pass, (0, j0), (x.count, w), &acc, MAX_NB) };
    });
}

/// The axpy form: tasks over fixed chunks of rows of B into partial results, then the
/// partials summed in order.
fn by_rows<T: Element>(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    x: &Rows<'_, f32>,
    b: MatRef<'_, T>,
    out: &OutPtr<'_>,
    pass: Pass<'_>,
) {
    // partial[c] (m, n) = x[:, rows of chunk c] · B[rows of chunk c, :]
    let mut partial = vec![0f32; k.div_ceil(K_CHUNK) * m * n];
    partial
        .par_chunks_mut(m * n)
        .enumerate()
        .for_each(|(c, part)| {
            let (p0, kc) = (c * K_CHUNK, K_CHUNK.min(k - c * K_CHUNK));
            let xc = Rows {
                data: &x.data[p0..],
                stride: x.stride,
                count: m,
                len: kc,
            };
            let nb = AXPY_ACC / m;
            for j0 in (0..n).step_by(nb) {
                let w = nb.min(n - j0);
                let rows = Rows {
                    data: &b.data[p0 * b.rs + j0..],
                    stride: b.rs,
                    count: kc,
                    len: w,
                };
                kernels::axpy(isa, &xc, &rows, &mut part[j0..], n);
            }
        });
    // Sum the partials in chunk order, in place, on this thread: `chunks·m·n` floats
    // (≤ 2 % of B's bytes), not worth a second parallel phase on small layers.
    let (first, rest) = partial.split_at_mut(m * n);
    for part in rest.chunks_exact(m * n) {
        for (a, p) in first.iter_mut().zip(part) {
            *a += p;
        }
    }
    // SAFETY: single-threaded here; the whole of C is ours.
    unsafe { out.write_tile(isa, pass, (0, 0), (m, n), first, n) };
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

    /// `acc[r·acc_stride + j] += Σ_p x[r][p] · rows[p][j]` (`x` has `rows.count`
    /// columns, `acc` `x.count` rows of `rows.len`).
    pub(super) fn axpy<T: Element>(
        isa: Isa,
        x: &Rows<'_, f32>,
        rows: &Rows<'_, T>,
        acc: &mut [f32],
        acc_stride: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if isa.is_avx2() {
            // SAFETY: an AVX2 `Isa` proves the CPU has AVX2 and FMA.
            unsafe { avx2::axpy(x, rows, acc, acc_stride) };
            return;
        }
        let _ = isa;
        for p in 0..rows.count {
            let bp = rows.get(p);
            for r in 0..x.count {
                let xv = x.get(r)[p];
                for (a, b) in acc[r * acc_stride..][..rows.len].iter_mut().zip(bp) {
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

        /// Software prefetch distance of the dot form, in bytes.
        const PREFETCH: usize = 2048;

        /// AVX2 [`super::axpy`], four B rows at a time (four streams in flight, one
        /// accumulator load/store per four FMAs); the `len % 8` columns and `count % 4`
        /// rows with scalar FMAs, in the same per-element order.
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn axpy<T: Element>(
            x: &Rows<'_, f32>,
            rows: &Rows<'_, T>,
            acc: &mut [f32],
            acc_stride: usize,
        ) {
            let (w, body) = (rows.len, rows.len / 8 * 8);
            let quads = rows.count / 4 * 4;
            // Rows of B outside, rows of x inside: each B row segment is read from memory
            // once and reused from L1 for the other rows of x.
            for p in (0..quads).step_by(4) {
                let b: [&[T]; 4] = std::array::from_fn(|u| rows.get(p + u));
                for r in 0..x.count {
                    let (xr, acc) = (&x.get(r)[p..p + 4], &mut acc[r * acc_stride..][..w]);
                    let xv: [__m256; 4] = std::array::from_fn(|u| _mm256_set1_ps(xr[u]));
                    for j in (0..body).step_by(8) {
                        // Prefetch the next quad of rows, same columns, one line at a
                        // time: one quad of processing ahead (into L2, as a quad of long
                        // rows is larger than L1).
                        if r == 0 && (j * size_of::<T>()).is_multiple_of(64) {
                            for bu in b {
                                let ahead = bu.as_ptr().wrapping_add(4 * rows.stride + j);
                                _mm_prefetch::<_MM_HINT_T1>(ahead.cast::<i8>());
                            }
                        }
                        // SAFETY: j + 8 ≤ body ≤ w, the length of `acc` and of each `b[u]`.
                        unsafe {
                            let mut a = _mm256_loadu_ps(acc.as_ptr().add(j));
                            for u in 0..4 {
                                a = _mm256_fmadd_ps(xv[u], load8(b[u].as_ptr().add(j)), a);
                            }
                            _mm256_storeu_ps(acc.as_mut_ptr().add(j), a);
                        }
                    }
                    for j in body..w {
                        for u in 0..4 {
                            acc[j] = xr[u].mul_add(b[u][j].to_f32(), acc[j]);
                        }
                    }
                }
            }
            for p in quads..rows.count {
                let bp = rows.get(p);
                for r in 0..x.count {
                    let (xs, acc) = (x.get(r)[p], &mut acc[r * acc_stride..][..w]);
                    let xv = _mm256_set1_ps(xs);
                    for j in (0..body).step_by(8) {
                        // SAFETY: as above.
                        unsafe {
                            let a = _mm256_loadu_ps(acc.as_ptr().add(j));
                            let a = _mm256_fmadd_ps(xv, load8(bp.as_ptr().add(j)), a);
                            _mm256_storeu_ps(acc.as_mut_ptr().add(j), a);
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
                        // Software prefetch PREFETCH bytes ahead in the weight stream,
                        // every line (columns are consecutive in memory, so this runs on
                        // into the next ones).
                        let ahead = col
                            .as_ptr()
                            .wrapping_add(p)
                            .cast::<i8>()
                            .wrapping_add(PREFETCH);
                        for line in (0..32 * size_of::<T>()).step_by(64) {
                            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
                        }
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
