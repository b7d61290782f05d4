//! The AVX2 + FMA micro-kernel: a 6 × 16 tile held in 12 ymm registers.
//!
//! Per k step: two 8-lane loads of the B row, six broadcasts of the A column, twelve
//! FMAs. Zen 3 issues 2 FMAs and 3 loads per cycle, so the 8 loads fit in the 6 cycles
//! the 12 FMAs take: the loop is FMA-bound, which is the point.

use std::arch::x86_64::*;

use super::{MR, NR};

/// `C [+]= a · b` over `kc` steps; A packed (`PACKED`: element `(i, p)` at `a[p·MR + i]`)
/// or read in place (`a[i·lda + p]`).
///
/// # Safety
/// `a` is valid for `kc` steps of its form, `b.len() >= kc·NR`; the `MR × NR` tile at
/// `c` (row stride `ldc`) is valid for reads and writes and exclusively ours; the CPU
/// has AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_6x16<const PACKED: bool>(
    kc: usize,
    a: *const f32,
    lda: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    debug_assert!(b.len() >= kc * NR);
    let (rs, cs) = if PACKED { (1, MR) } else { (lda, 1) };
    // Ask for C's lines now: they arrive while the k loop runs (C lives in L3 or DRAM
    // between k blocks; each row of the tile spans at most two lines).
    for i in 0..MR {
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc).cast());
        _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(i * ldc + NR - 1).cast());
    }
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    let (mut pa, mut pb) = (a, b.as_ptr());
    for _ in 0..kc {
        // SAFETY: step p reads A's (i, p), i < MR, and b[p·NR .. p·NR + NR], inside the
        // operands because p < kc and the caller guarantees their extents.
        unsafe {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for (i, ci) in acc.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*pa.add(i * rs));
                ci[0] = _mm256_fmadd_ps(ai, b0, ci[0]);
                ci[1] = _mm256_fmadd_ps(ai, b1, ci[1]);
            }
            pa = pa.add(cs);
            pb = pb.add(NR);
        }
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
