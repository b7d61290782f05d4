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

/// A column of `count` tiles: tile `t` of C, the `MR × NR` block at `c + t·MR·ldc`
/// (row stride `ldc`), `= a_t · b` (or `+=` if `add`) over `kc` steps, where `a_t` is
/// the `t`-th packed micro-panel of `a` (`MR·kc` floats each) and `b` one packed
/// micro-panel (layouts in the module doc). One call per column keeps the per-tile cost
/// (dispatch, checks) out of the loop over tiles.
///
/// # Safety
/// The `count·MR` rows `c + r·ldc .. c + r·ldc + NR` must be valid for reads and
/// writes, and nothing else may access them during the call.
///
/// # Panics
/// If `a` or `b` is too short for `count` tiles of `kc` steps (an internal bug, never a
/// user error: the driver sizes the panels).
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel(
    isa: Isa,
    kc: usize,
    a: &[f32],
    count: usize,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    assert!(
        a.len() >= count * MR * kc && b.len() >= kc * NR,
        "micro-kernel: panel too short"
    );
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: an `Isa` that says AVX2 can only be made on a CPU with AVX2 and FMA
        // (see `Isa::avx2`); the operand extents were checked above and the C tiles are
        // the caller's contract, which is all `kernel_6x16` requires.
        unsafe { avx2::kernel_6x16(kc, a, count, b, c, ldc, add) };
        return;
    }
    let _ = isa;
    for t in 0..count {
        // SAFETY: the caller's contract, for tile t.
        unsafe { scalar::kernel(kc, &a[t * MR * kc..], b, c.add(t * MR * ldc), ldc, add) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every micro-kernel against the plain definition, including `kc` = 0 and `kc` not
    /// a multiple of the AVX2 kernel's unrolling, for a column of 3 tiles, storing and
    /// adding, into C with a row stride wider than a tile.
    #[test]
    fn microkernels_match_definition() {
        const T: usize = 3;
        const LDC: usize = 20;
        for kc in [0usize, 1, 3, 8, 17, 256] {
            // A: T·MR rows × kc, B: kc × NR, as exact small values.
            let a_at = |r: usize, p: usize| ((r * 7 + p * 3) % 13) as f32 / 7.0 - 0.9;
            let b: Vec<f32> = (0..kc * NR)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0)
                .collect();
            let mut packed = vec![0f32; T * MR * kc];
            for r in 0..T * MR {
                for p in 0..kc {
                    packed[(r / MR) * MR * kc + p * MR + r % MR] = a_at(r, p);
                }
            }
            let want = |r: usize, j: usize| -> f64 {
                (0..kc)
                    .map(|p| a_at(r, p) as f64 * b[p * NR + j] as f64)
                    .sum()
            };
            for isa in Isa::available() {
                for add in [false, true] {
                    let mut c = vec![1.0f32; T * MR * LDC];
                    // SAFETY: C holds T·MR rows of stride LDC ≥ NR, all ours.
                    unsafe { kernel(isa, kc, &packed, T, &b, c.as_mut_ptr(), LDC, add) };
                    for (r, row) in c.chunks_exact(LDC).enumerate() {
                        for (j, &got) in row.iter().enumerate() {
                            let want = if j >= NR {
                                1.0
                            } else {
                                want(r, j) + f64::from(u8::from(add))
                            };
                            assert!(
                                (got as f64 - want).abs() < 1e-5,
                                "{isa} kc={kc} add={add} ({r}, {j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
