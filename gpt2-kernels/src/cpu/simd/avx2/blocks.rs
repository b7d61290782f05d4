//! AVX2 + FMA block products for attention: `C (+)= A·B` with 6×16 register tiles,
//! `C = α·A·Bᵀ` as tiles of dot products, and an 8×8-tile transpose for packing.
//!
//! The views were bounds-checked when they were made (`MatRef::new`, `MatMut::new`), so
//! the micro-kernels read and write through raw pointers without per-element checks;
//! each `unsafe` block says which checked bound covers it.

use std::arch::x86_64::*;

use super::super::scalar;
use super::super::{MatMut, MatRef};
use super::{W, hsum4};

/// `dst = srcᵀ` by 8×8 register transposes; the ragged edges by scalar code.
#[target_feature(enable = "avx2,fma")]
pub(in crate::cpu::simd) fn transpose(dst: MatMut, src: MatRef) {
    let (r8, c8) = (src.rows / W * W, src.cols / W * W);
    for i0 in (0..r8).step_by(W) {
        for j0 in (0..c8).step_by(W) {
            // SAFETY: rows i0..i0+8 ≤ r8 and columns j0..j0+8 ≤ c8 of `src` (whose rows
            // are contiguous), and the mirrored block of `dst`, lie inside the checked
            // views.
            unsafe {
                let d = dst.data.as_mut_ptr().add(j0 * dst.rs + i0);
                transpose8(d, dst.rs, src.data.as_ptr().add(i0 * src.rs + j0), src.rs);
            }
        }
    }
    for i in 0..src.rows {
        for j in if i < r8 { c8 } else { 0 }..src.cols {
            dst.data[j * dst.rs + i] = src.at(i, j);
        }
    }
}

/// Transposes the 8×8 block at `s` (row stride `lds`) into `d` (row stride `ldd`).
///
/// # Safety
/// `s + i·lds + j` must be readable and `d + j·ldd + i` writable for `i, j < 8`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose8(d: *mut f32, ldd: usize, s: *const f32, lds: usize) {
    // SAFETY: in bounds by the function's contract.
    let r: [__m256; W] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(s.add(i * lds)) });
    // Interleave pairs of rows, then pairs of pairs, then swap 128-bit halves.
    let t: [__m256; W] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(a, b)
        } else {
            _mm256_unpackhi_ps(a, b)
        }
    });
    let u: [__m256; W] = std::array::from_fn(|i| {
        let (a, b) = (t[i / 4 * 4 + i % 2], t[i / 4 * 4 + i % 2 + 2]);
        if i % 4 < 2 {
            _mm256_shuffle_ps::<0x44>(a, b)
        } else {
            _mm256_shuffle_ps::<0xEE>(a, b)
        }
    });
    for j in 0..W {
        // Row j of the transpose: u[k] holds columns (k % 4 → 0, 2, 1, 3 pattern) of
        // rows 0..4 (k < 4) and 4..8 (k ≥ 4).
        let k = [0, 2, 1, 3][j % 4];
        let v = if j < 4 {
            _mm256_permute2f128_ps::<0x20>(u[k], u[k + 4])
        } else {
            _mm256_permute2f128_ps::<0x31>(u[k], u[k + 4])
        };
        // SAFETY: in bounds by the function's contract.
        unsafe { _mm256_storeu_ps(d.add(j * ldd), v) };
    }
}

/// Rows of `C` per register tile of [`gemm`]: 6 rows × 16 columns = 12 accumulators.
const ACC_MR: usize = 6;

/// `C = A·B`, or `C += A·B` if `acc`: register tiles of `ACC_MR × 16` (then `× 8`); a
/// last strip of fewer than 8 columns is done by the scalar code.
#[target_feature(enable = "avx2,fma")]
pub(in crate::cpu::simd) fn gemm(c: MatMut, a: MatRef, b: MatRef, acc: bool) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 || k == 0 {
        // Nothing to add; an empty sum to store.
        return scalar::gemm(c, a, b, acc);
    }
    let n8 = n / W * W;
    // A single row (decoding) has one FMA chain per accumulator: tiles up to 64 columns
    // wide give 8 independent chains and stream whole rows of B.
    let nv_max = if m == 1 { 8 } else { 2 };
    for i0 in (0..m).step_by(ACC_MR) {
        let mr = ACC_MR.min(m - i0);
        let mut j0 = 0;
        while j0 < n8 {
            let nv = [8, 4, 2, 1]
                .into_iter()
                .find(|&v| v <= nv_max && j0 + v * W <= n8)
                .unwrap_or(1);
            // SAFETY: rows i0..i0+mr < m of A and C, columns j0..j0+8·nv ≤ n8 ≤ n of B
            // and C, and all k columns of A / rows of B, lie inside the checked views.
            unsafe {
                let cp = c.data.as_mut_ptr().add(i0 * c.rs + j0);
                let ap = a.data.as_ptr().add(i0 * a.rs);
                let bp = b.data.as_ptr().add(j0);
                tile_dyn(mr, nv, (cp, c.rs, acc), (ap, a.rs, a.cs), (bp, b.rs), k);
            }
            j0 += nv * W;
        }
    }
    if n8 < n {
        let rows = c.rows;
        let strip = MatMut {
            data: &mut c.data[n8..],
            rows,
            cols: n - n8,
            rs: c.rs,
        };
        let b_strip = MatRef {
            data: &b.data[n8..],
            cols: n - n8,
            ..b
        };
        scalar::gemm(strip, a, b_strip, acc);
    }
}

/// `C` for a tile: pointer, row stride, and whether to add to it (else overwrite).
type TileC = (*mut f32, usize, bool);

/// Dispatches to the `tile` instance for `mr` rows and `nv` vectors of columns (`nv`
/// of 4 and 8 only for a single row).
///
/// # Safety
/// As [`tile`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_dyn(
    mr: usize,
    nv: usize,
    c: TileC,
    a: (*const f32, usize, usize),
    b: (*const f32, usize),
    k: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (mr, nv) {
            (1, 1) => tile::<1, 1>(c, a, b, k),
            (1, 4) => tile::<1, 4>(c, a, b, k),
            (1, 8) => tile::<1, 8>(c, a, b, k),
            (2, 1) => tile::<2, 1>(c, a, b, k),
            (3, 1) => tile::<3, 1>(c, a, b, k),
            (4, 1) => tile::<4, 1>(c, a, b, k),
            (5, 1) => tile::<5, 1>(c, a, b, k),
            (6, 1) => tile::<6, 1>(c, a, b, k),
            (1, _) => tile::<1, 2>(c, a, b, k),
            (2, _) => tile::<2, 2>(c, a, b, k),
            (3, _) => tile::<3, 2>(c, a, b, k),
            (4, _) => tile::<4, 2>(c, a, b, k),
            (5, _) => tile::<5, 2>(c, a, b, k),
            _ => tile::<6, 2>(c, a, b, k),
        }
    }
}

/// `C[0..MR, 0..8·NV] (+)= A[0..MR, 0..k] · B[0..k, 0..8·NV]`, accumulating in
/// registers: per step of `k`, `NV` vector loads of a row of `B`, `MR` broadcasts from
/// `A` and `MR·NV` FMAs.
///
/// # Safety
/// `a + i·rs + p·cs` (`i < MR`, `p < k`), `b + p·ldb + j` (`j < 8·NV`) must be readable
/// and `c + i·ldc + j` readable and writable.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const MR: usize, const NV: usize>(
    (c, ldc, acc): TileC,
    (a, rs, cs): (*const f32, usize, usize),
    (b, ldb): (*const f32, usize),
    k: usize,
) {
    let mut sum = [[_mm256_setzero_ps(); NV]; MR];
    for p in 0..k {
        // SAFETY: in bounds by the function's contract.
        let bv: [__m256; NV] =
            std::array::from_fn(|v| unsafe { _mm256_loadu_ps(b.add(p * ldb + v * W)) });
        for (i, row) in sum.iter_mut().enumerate() {
            // SAFETY: in bounds by the function's contract.
            let av = _mm256_set1_ps(unsafe { *a.add(i * rs + p * cs) });
            for (s, &bvv) in row.iter_mut().zip(&bv) {
                *s = _mm256_fmadd_ps(av, bvv, *s);
            }
        }
    }
    for (i, row) in sum.iter().enumerate() {
        for (v, &s) in row.iter().enumerate() {
            // SAFETY: in bounds by the function's contract.
            unsafe {
                let cp = c.add(i * ldc + v * W);
                let s = if acc {
                    _mm256_add_ps(_mm256_loadu_ps(cp), s)
                } else {
                    s
                };
                _mm256_storeu_ps(cp, s);
            }
        }
    }
}

/// Rows of `A` and of `B` per register tile of [`gemm_nt`]: 3 × 4 = 12 accumulators
/// (1 × 8 for a single row of `A`).
const NT_MR: usize = 3;
const NT_NR: usize = 4;

/// `C = alpha·A·Bᵀ`: register tiles of `NT_MR × NT_NR` dot products, each vectorised
/// along `k`; a tail of `k` shorter than a vector is added by scalar code.
#[target_feature(enable = "avx2,fma")]
pub(in crate::cpu::simd) fn gemm_nt(c: MatMut, a: MatRef, b: MatRef, alpha: f32) {
    let (m, n, k) = (c.rows, c.cols, a.cols);
    if m == 0 || n == 0 || k == 0 {
        return scalar::gemm_nt(c, a, b, alpha);
    }
    // A single row (decoding) reads 8 rows of B at a time: more loads in flight and
    // independent FMA chains.
    let nr_max = if m == 1 { 2 * NT_NR } else { NT_NR };
    for i0 in (0..m).step_by(NT_MR) {
        let mr = NT_MR.min(m - i0);
        for j0 in (0..n).step_by(nr_max) {
            let nr = nr_max.min(n - j0);
            // SAFETY: rows i0..i0+mr < m of A and C, rows j0..j0+nr < n of B, columns
            // j0..j0+nr of C and the k ≥ 1 columns of A and B lie inside the checked views.
            unsafe {
                let cp = c.data.as_mut_ptr().add(i0 * c.rs + j0);
                let ap = a.data.as_ptr().add(i0 * a.rs);
                let bp = b.data.as_ptr().add(j0 * b.rs);
                tile_nt_dyn(mr, nr, (cp, c.rs), (ap, a.rs), (bp, b.rs), (k, alpha));
            }
        }
    }
}

/// Dispatches to the `tile_nt` instance for `mr × nr`.
///
/// # Safety
/// As [`tile_nt`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_nt_dyn(
    mr: usize,
    nr: usize,
    c: (*mut f32, usize),
    a: (*const f32, usize),
    b: (*const f32, usize),
    k: (usize, f32),
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (mr, nr) {
            (1, 1) => tile_nt::<1, 1>(c, a, b, k),
            (1, 2) => tile_nt::<1, 2>(c, a, b, k),
            (1, 3) => tile_nt::<1, 3>(c, a, b, k),
            (1, 4) => tile_nt::<1, 4>(c, a, b, k),
            (1, 5) => tile_nt::<1, 5>(c, a, b, k),
            (1, 6) => tile_nt::<1, 6>(c, a, b, k),
            (1, 7) => tile_nt::<1, 7>(c, a, b, k),
            (1, _) => tile_nt::<1, 8>(c, a, b, k),
            (2, 1) => tile_nt::<2, 1>(c, a, b, k),
            (2, 2) => tile_nt::<2, 2>(c, a, b, k),
            (2, 3) => tile_nt::<2, 3>(c, a, b, k),
            (2, _) => tile_nt::<2, 4>(c, a, b, k),
            (_, 1) => tile_nt::<3, 1>(c, a, b, k),
            (_, 2) => tile_nt::<3, 2>(c, a, b, k),
            (_, 3) => tile_nt::<3, 3>(c, a, b, k),
            _ => tile_nt::<3, 4>(c, a, b, k),
        }
    }
}

/// `C[i, j] = alpha · Σ_p A[i, p]·B[j, p]` for `i < MR`, `j < NR`.
///
/// # Safety
/// `a.0 + i·a.1 + p`, `b.0 + j·b.1 + p` (`p < k`) must be readable and
/// `c.0 + i·c.1 + j` writable.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_nt<const MR: usize, const NR: usize>(
    (c, ldc): (*mut f32, usize),
    (a, lda): (*const f32, usize),
    (b, ldb): (*const f32, usize),
    (k, alpha): (usize, f32),
) {
    let mut acc = [[_mm256_setzero_ps(); NR]; MR];
    let k8 = k / W * W;
    for p in (0..k8).step_by(W) {
        // SAFETY: in bounds by the function's contract.
        let av: [__m256; MR] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(a.add(i * lda + p)) });
        for j in 0..NR {
            // SAFETY: in bounds by the function's contract.
            let bv = unsafe { _mm256_loadu_ps(b.add(j * ldb + p)) };
            for (row, &avi) in acc.iter_mut().zip(&av) {
                row[j] = _mm256_fmadd_ps(avi, bv, row[j]);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (q, group) in row.chunks(4).enumerate() {
            let mut four = [_mm256_setzero_ps(); 4];
            four[..group.len()].copy_from_slice(group);
            let mut sums = [0.0f32; 4];
            // SAFETY: `sums` is 4 writable floats.
            unsafe { _mm_storeu_ps(sums.as_mut_ptr(), hsum4(four)) };
            for (jj, &s) in sums[..group.len()].iter().enumerate() {
                let j = 4 * q + jj;
                let mut s = s;
                for p in k8..k {
                    // SAFETY: in bounds by the function's contract.
                    s += unsafe { *a.add(i * lda + p) * *b.add(j * ldb + p) };
                }
                // SAFETY: in bounds by the function's contract.
                unsafe { *c.add(i * ldc + j) = alpha * s };
            }
        }
    }
}
