//! The AVX2 + FMA micro-kernel: a 6 × 16 tile held in 12 ymm registers.
//!
//! Per k step: two 8-lane loads of the B row, six broadcasts of the A column, twelve
//! FMAs. Zen 3 issues 2 FMAs and 3 loads per cycle, so the 8 loads fit in the 6 cycles
//! the 12 FMAs take: the loop is FMA-bound, which is the point.

use std::arch::x86_64::*;

use super::{MR, NR};

/// A column of `count` tiles, `C_t [+]= a_t · b` over `kc` steps, `a_t` the `t`-th
/// packed micro-panel of `a` (element `(i, p)` at `a[t·MR·kc + p·MR + i]`).
///
/// # Safety
/// `a.len() >= count·MR·kc`, `b.len() >= kc·NR`; the tiles at `c + t·MR·ldc` (row
/// stride `ldc`) are valid for reads and writes and exclusively ours; the CPU has AVX2
/// and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_6x16(
    kc: usize,
    a: &[f32],
    count: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    debug_assert!(a.len() >= count * MR * kc && b.len() >= kc * NR);
    for t in 0..count {
        let (a, c) = (
            a.as_ptr().wrapping_add(t * MR * kc),
            c.wrapping_add(t * MR * ldc),
        );
        // Ask for C's lines now: they arrive while the k loop runs (C lives in L3 or
        // DRAM between k blocks; each row of the tile spans at most two lines).
        for i in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc).cast());
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + NR - 1).cast());
        }
        // SAFETY: panel t and tile t are valid (the caller's contract).
        unsafe { tile(kc, a, b, c, ldc, add) };
    }
}

/// One tile of [`kernel_6x16`].
///
/// # Safety
/// As [`kernel_6x16`], for one panel (at `a`) and one tile.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile(kc: usize, a: *const f32, b: &[f32], c: *mut f32, ldc: usize, add: bool) {
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    // One k step: the B row's two vectors, then each A element broadcast against both.
    let step = |acc: &mut [[__m256; 2]; MR], pa: *const f32, pb: *const f32| {
        // SAFETY: reads a[p·MR .. p·MR + MR] and b[p·NR .. p·NR + NR] for a step p < kc,
        // inside the operands by the caller's contract.
        unsafe {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for (i, ci) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*pa.add(i));
                ci[0] = _mm256_fmadd_ps(ai, b0, ci[0]);
                ci[1] = _mm256_fmadd_ps(ai, b1, ci[1]);
            }
        }
    };
    let (mut pa, mut pb) = (a, b.as_ptr());
    // Four steps per iteration: the pointer updates and the loop branch are paid once
    // per 48 FMAs, and the steps' addresses are constant offsets (measured +5–10 % over
    // one step per iteration on Zen 3).
    for _ in 0..kc / 4 {
        for u in 0..4 {
            step(&mut acc, pa.wrapping_add(u * MR), pb.wrapping_add(u * NR));
        }
        pa = pa.wrapping_add(4 * MR);
        pb = pb.wrapping_add(4 * NR);
    }
    for _ in 0..kc % 4 {
        step(&mut acc, pa, pb);
        pa = pa.wrapping_add(MR);
        pb = pb.wrapping_add(NR);
    }
    for (i, ci) in acc.iter().enumerate() {
        // SAFETY: row i of the tile, `c + i·ldc .. + NR`, is valid and ours (contract).
        unsafe {
            let row = c.add(i * ldc);
            let (mut lo, mut hi) = (ci[0], ci[1]);
            if add {
                lo = _mm256_add_ps(lo, _mm256_loadu_ps(row));
                hi = _mm256_add_ps(hi, _mm256_loadu_ps(row.add(8)));
            }
            _mm256_storeu_ps(row, lo);
            _mm256_storeu_ps(row.add(8), hi);
        }
    }
}
