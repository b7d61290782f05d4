//! The register-tile micro-kernel of the BLIS loop nest: `AB (MR, NR) = Ã · B̃` over one
//! `kc`-long slice of packed panels, nothing else.
//!
//! Packed layouts (written by [`super::pack`]):
//! - `a`: an `MR`-row micro-panel, k-major: `a[p·MR + i] = A[i, p]`, `p < kc`;
//! - `b`: an `NR`-column micro-panel, k-major: `b[p·NR + j] = B[p, j]`.
//!
//! The kernel always computes a full `MR × NR` tile into a small local buffer `ab`;
//! partial tiles (the `M`/`N` edges) are zero-padded by packing and cut by the caller's
//! write-back, so no edge case lives in here. The caller also does the C update
//! (`C = AB`, `C += AB`, bias, GELU): one `MR·NR` store and reload per `kc·MR·NR` FMAs
//! (< 1 % at `kc = 256`) buys a kernel that touches no strided memory at all.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod scalar;

use crate::cpu::simd::Isa;

/// Rows of the register tile. 6 × 16 = 12 ymm accumulators + 2 for B + 1 broadcast
/// = 15 of the 16 ymm registers, and 12 independent FMA chains cover Zen 3's
/// 2 FMA pipes × 4-cycle latency (8 needed). Same shape as BLIS's Zen `sgemm` kernel.
pub(super) const MR: usize = 6;
/// Columns of the register tile: two 8-lane f32 vectors, so each C row of the tile is
/// 64 contiguous bytes.
pub(super) const NR: usize = 16;

/// One `MR × NR` tile of `Ã · B̃`, row-major (`ab[i·NR + j]`).
pub(super) type Tile = [f32; MR * NR];

/// `ab = a · b` over `kc` steps of packed panels (see the module doc for the layouts).
///
/// # Panics
/// If `a.len() < kc·MR` or `b.len() < kc·NR` (an internal bug, never a user error: the
/// driver sizes the panels).
#[inline]
pub(super) fn kernel(isa: Isa, kc: usize, a: &[f32], b: &[f32], ab: &mut Tile) {
    assert!(
        a.len() >= kc * MR && b.len() >= kc * NR,
        "micro-kernel: panel too short"
    );
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: an `Isa` that says AVX2 can only be made on a CPU with AVX2 and FMA
        // (see `Isa::avx2`), which is all `kernel_6x16` requires; the panel lengths
        // were checked just above.
        unsafe { avx2::kernel_6x16(kc, a, b, ab) };
        return;
    }
    let _ = isa;
    scalar::kernel(kc, a, b, ab);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every micro-kernel against the plain definition, including `kc` = 0 and odd `kc`.
    #[test]
    fn microkernels_match_definition() {
        for kc in [0usize, 1, 3, 8, 17, 256] {
            let a: Vec<f32> = (0..kc * MR)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 7.0)
                .collect();
            let b: Vec<f32> = (0..kc * NR)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
                .collect();
            let mut want = [0f64; MR * NR];
            for p in 0..kc {
                for i in 0..MR {
                    for j in 0..NR {
                        want[i * NR + j] += a[p * MR + i] as f64 * b[p * NR + j] as f64;
                    }
                }
            }
            let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
            for isa in Isa::available() {
                let mut ab = [f32::NAN; MR * NR];
                kernel(isa, kc, &a, &b, &mut ab);
                for (got, want) in ab.iter().zip(&want) {
                    let err = (*got as f64 - want).abs() / scale;
                    assert!(err < 1e-6, "{isa} kc={kc}: {got} vs {want}");
                }
            }
        }
    }
}
