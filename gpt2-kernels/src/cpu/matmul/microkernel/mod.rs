//! The register-tile micro-kernel of the BLIS loop nest: `C (MR, NR) [+]= Ã · B̃` over
//! one `kc`-long slice of packed panels, nothing else.
//!
//! Packed layouts (written by [`super::pack`]):
//! - `a`: an `MR`-row micro-panel, k-major: `a[p·MR + i] = A[i, p]`, `p < kc`;
//! - `b`: an `NR`-column micro-panel, k-major: `b[p·NR + j] = B[p, j]`.
//!
//! The kernel always computes a full `MR × NR` tile: partial tiles (the `M`/`N` edges)
//! are zero-padded by packing, computed into a local [`Tile`] and cut by the caller's
//! write-back, so no edge case lives in here. Full tiles are stored (or added) straight
//! into C from the registers; the epilogue (bias, GELU) is the caller's.

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

/// A local `MR × NR` tile, row-major (row stride `NR`), for the edges.
pub(super) type Tile = [f32; MR * NR];

/// `C = a · b` (or `C += a · b` if `add`) over `kc` steps of packed panels (layouts in
/// the module doc), C being the `MR × NR` tile at `c` with row stride `ldc`.
///
/// # Safety
/// The `MR` rows `c + i·ldc .. c + i·ldc + NR` must be valid for reads and writes, and
/// nothing else may access them during the call.
///
/// # Panics
/// If `a.len() < kc·MR` or `b.len() < kc·NR` (an internal bug, never a user error: the
/// driver sizes the panels).
#[inline]
pub(super) unsafe fn kernel(
    isa: Isa,
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    assert!(
        a.len() >= kc * MR && b.len() >= kc * NR,
        "micro-kernel: panel too short"
    );
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: an `Isa` that says AVX2 can only be made on a CPU with AVX2 and FMA
        // (see `Isa::avx2`); the panel lengths were checked above and the C tile is the
        // caller's contract, which is all `kernel_6x16` requires.
        unsafe { avx2::kernel_6x16(kc, a, b, c, ldc, add) };
        return;
    }
    let _ = isa;
    // SAFETY: the caller's contract, passed on.
    unsafe { scalar::kernel(kc, a, b, c, ldc, add) };
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
                // C with row stride 20 > NR, holding 1s, to check `add` and the stride.
                for add in [false, true] {
                    let mut c = vec![1.0f32; MR * 20];
                    // SAFETY: `c` holds MR rows of stride 20 ≥ NR, all ours.
                    unsafe { kernel(isa, kc, &a, &b, c.as_mut_ptr(), 20, add) };
                    for (i, row) in c.chunks_exact(20).enumerate() {
                        for (j, &got) in row.iter().enumerate() {
                            let want = if j >= NR {
                                1.0
                            } else {
                                want[i * NR + j] + f64::from(u8::from(add))
                            };
                            let err = (got as f64 - want).abs() / scale;
                            assert!(
                                err < 1e-6,
                                "{isa} kc={kc} add={add} ({i}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
