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

/// The A operand of one call: `count` micro-panels of `MR` rows × `kc` steps, element
/// `(i, p)` of panel `t` at `data[t·step + i·rs + p·cs]`. Two forms: packed micro-panels
/// (`rs = 1`, `cs = MR`, `step = MR·kc`), or rows of A read in place (`rs` = A's row
/// stride, `cs = 1`, `step = MR·rs`), which saves packing A when its rows are contiguous
/// along k.
#[derive(Clone, Copy)]
pub(super) struct APanels<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
    step: usize,
    count: usize,
}

impl<'a> APanels<'a> {
    /// `count` packed micro-panels of `kc` steps (see the module doc).
    pub(super) fn packed(data: &'a [f32], kc: usize, count: usize) -> Self {
        APanels {
            data,
            rs: 1,
            cs: MR,
            step: MR * kc,
            count,
        }
    }

    /// `count·MR` rows at stride `lda`, each contiguous along k, from `data[0]`.
    pub(super) fn rows(data: &'a [f32], lda: usize, count: usize) -> Self {
        APanels {
            data,
            rs: lda,
            cs: 1,
            step: MR * lda,
            count,
        }
    }
}

/// A column of `a.count` tiles: tile `t` of C, the `MR × NR` block at `c + t·MR·ldc`
/// (row stride `ldc`), `= a_t · b` (or `+=` if `add`) over `kc` steps; `b` is a packed
/// micro-panel (layout in the module doc). One call per column keeps the per-tile cost
/// (dispatch, checks) out of the loop over tiles.
///
/// # Safety
/// The `count·MR` rows `c + r·ldc .. c + r·ldc + NR` must be valid for reads and
/// writes, and nothing else may access them during the call.
///
/// # Panics
/// If `a` or `b` is too short for `kc` steps (an internal bug, never a user error: the
/// driver sizes the panels).
#[inline]
pub(super) unsafe fn kernel(
    isa: Isa,
    kc: usize,
    a: APanels<'_>,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    if a.count == 0 {
        return;
    }
    let a_end = if kc == 0 {
        0
    } else {
        (a.count - 1) * a.step + (MR - 1) * a.rs + (kc - 1) * a.cs + 1
    };
    assert!(
        a.data.len() >= a_end && b.len() >= kc * NR,
        "micro-kernel: panel too short"
    );
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: an `Isa` that says AVX2 can only be made on a CPU with AVX2 and FMA
        // (see `Isa::avx2`); the operand extents were checked above and the C tiles are
        // the caller's contract, which is all `kernel_6x16` requires.
        unsafe {
            if a.cs == 1 {
                avx2::kernel_6x16::<false>(
                    kc,
                    a.data.as_ptr(),
                    (a.rs, a.step, a.count),
                    b,
                    c,
                    ldc,
                    add,
                );
            } else {
                debug_assert_eq!((a.rs, a.cs), (1, MR));
                avx2::kernel_6x16::<true>(
                    kc,
                    a.data.as_ptr(),
                    (a.rs, a.step, a.count),
                    b,
                    c,
                    ldc,
                    add,
                );
            }
        }
        return;
    }
    let _ = isa;
    for t in 0..a.count {
        // SAFETY: the caller's contract, for tile t.
        unsafe {
            scalar::kernel(
                kc,
                &a.data[t * a.step..],
                (a.rs, a.cs),
                b,
                c.add(t * MR * ldc),
                ldc,
                add,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every micro-kernel against the plain definition, including `kc` = 0 and odd `kc`,
    /// for a column of 3 tiles, with A packed and A read in place (bitwise the same),
    /// storing and adding, into C with a row stride wider than a tile.
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
            let lda = kc + 3;
            let mut rows = vec![f32::NAN; T * MR * lda];
            for r in 0..T * MR {
                for p in 0..kc {
                    packed[(r / MR) * MR * kc + p * MR + r % MR] = a_at(r, p);
                    rows[r * lda + p] = a_at(r, p);
                }
            }
            let want = |r: usize, j: usize| -> f64 {
                (0..kc)
                    .map(|p| a_at(r, p) as f64 * b[p * NR + j] as f64)
                    .sum()
            };
            for isa in Isa::available() {
                for add in [false, true] {
                    let (mut c1, mut c2) = (vec![1.0f32; T * MR * LDC], vec![1.0f32; T * MR * LDC]);
                    // SAFETY: each C holds T·MR rows of stride LDC ≥ NR, all ours.
                    unsafe {
                        kernel(
                            isa,
                            kc,
                            APanels::packed(&packed, kc, T),
                            &b,
                            c1.as_mut_ptr(),
                            LDC,
                            add,
                        );
                        kernel(
                            isa,
                            kc,
                            APanels::rows(&rows, lda, T),
                            &b,
                            c2.as_mut_ptr(),
                            LDC,
                            add,
                        );
                    }
                    assert_eq!(c1, c2, "{isa} kc={kc}: in-place A differs from packed A");
                    for (r, row) in c1.chunks_exact(LDC).enumerate() {
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
