//! The AVX2 + FMA micro-kernel: a 6 × 16 tile held in 12 ymm registers.
//!
//! Per k step: two 8-lane loads of the B row, six broadcasts of the A column, twelve
//! FMAs. Zen 3 issues 2 FMAs and 3 loads per cycle, so the 8 loads fit in the 6 cycles
//! the 12 FMAs take: the loop is FMA-bound, which is the point.

use std::arch::x86_64::*;

use super::{MR, NR, Tile};

/// `ab = a · b` over `kc` packed steps.
///
/// The caller guarantees `a.len() >= kc·MR` and `b.len() >= kc·NR`; the CPU must have
/// AVX2 and FMA (the `#[target_feature]` contract).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel_6x16(kc: usize, a: &[f32], b: &[f32], ab: &mut Tile) {
    debug_assert!(a.len() >= kc * MR && b.len() >= kc * NR);
    let mut c = [[_mm256_setzero_ps(); 2]; MR];
    let (mut pa, mut pb) = (a.as_ptr(), b.as_ptr());
    for _ in 0..kc {
        // SAFETY: step p reads a[p·MR .. p·MR + MR] and b[p·NR .. p·NR + NR], inside the
        // slices because p < kc and the caller guarantees the lengths above.
        unsafe {
            let b0 = _mm256_loadu_ps(pb);
            let b1 = _mm256_loadu_ps(pb.add(8));
            for (i, ci) in c.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*pa.add(i));
                ci[0] = _mm256_fmadd_ps(ai, b0, ci[0]);
                ci[1] = _mm256_fmadd_ps(ai, b1, ci[1]);
            }
            pa = pa.add(MR);
            pb = pb.add(NR);
        }
    }
    for (row, ci) in ab.chunks_exact_mut(NR).zip(&c) {
        // SAFETY: `row` has NR = 16 elements: two unaligned 8-lane stores fit.
        unsafe {
            _mm256_storeu_ps(row.as_mut_ptr(), ci[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), ci[1]);
        }
    }
}
