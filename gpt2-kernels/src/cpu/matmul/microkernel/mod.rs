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

/// The A operand of one call: `MR` rows × `kc` steps, element `(i, p)` at
/// `data[i·rs + p·cs]`. Two forms: a packed micro-panel (`rs = 1`, `cs = MR`), or `MR`
/// rows of A read in place (`rs` = A's row stride, `cs = 1`), which saves packing A
/// when its rows are contiguous along k.
#[derive(Clone, Copy)]
pub(super) struct APanel<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> APanel<'a> {
    /// A packed micro-panel (see the module doc).
    pub(super) fn packed(data: &'a [f32]) -> Self {
        APanel {
            data,
            rs: 1,
            cs: MR,
        }
    }

    /// `MR` rows at stride `lda`, each contiguous along k, starting at `data[0]`.
    pub(super) fn rows(data: &'a [f32], lda: usize) -> Self {
        APanel {
            data,
            rs: lda,
            cs: 1,
        }
    }
}

/// `C = a · b` (or `C += a · b` if `add`) over `kc` steps, C being the `MR × NR` tile
/// at `c` with row stride `ldc`; `b` is a packed micro-panel (layout in the module doc).
///
/// # Safety
/// The `MR` rows `c + i·ldc .. c + i·ldc + NR` must be valid for reads and writes, and
/// nothing else may access them during the call.
///
/// # Panics
/// If `a` or `b` is too short for `kc` steps (an internal bug, never a user error: the
/// driver sizes the panels).
#[inline]
pub(super) unsafe fn kernel(
    isa: Isa,
    kc: usize,
    a: APanel<'_>,
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    let a_end = if kc == 0 {
        0
    } else {
        (MR - 1) * a.rs + (kc - 1) * a.cs + 1
    };
    assert!(
        a.data.len() >= a_end && b.len() >= kc * NR,
        "micro-kernel: panel too short"
    );
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: an `Isa` that says AVX2 can only be made on a CPU with AVX2 and FMA
        // (see `Isa::avx2`); the operand extents were checked above and the C tile is
        // the caller's contract, which is all `kernel_6x16` requires.
        unsafe {
            if a.cs == 1 {
                avx2::kernel_6x16::<false>(kc, a.data.as_ptr(), a.rs, b, c, ldc, add);
            } else {
                debug_assert_eq!((a.rs, a.cs), (1, MR));
                avx2::kernel_6x16::<true>(kc, a.data.as_ptr(), 0, b, c, ldc, add);
            }
        }
        return;
    }
    let _ = isa;
    // SAFETY: the caller's contract, passed on.
    unsafe { scalar::kernel(kc, a.data, (a.rs, a.cs), b, c, ldc, add) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every micro-kernel against the plain definition, including `kc` = 0 and odd `kc`,
    /// with A packed and A read in place (bitwise the same), storing and adding.
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
                    unsafe { kernel(isa, kc, APanel::packed(&a), &b, c.as_mut_ptr(), 20, add) };
                    // The same A read in place as MR rows of stride kc + 3.
                    let lda = kc + 3;
                    let mut rows = vec![f32::NAN; MR * lda];
                    for p in 0..kc {
                        for i in 0..MR {
                            rows[i * lda + p] = a[p * MR + i];
                        }
                    }
                    let mut c2 = vec![1.0f32; MR * 20];
                    // SAFETY: as above.
                    unsafe {
                        kernel(
                            isa,
                            kc,
                            APanel::rows(&rows, lda),
                            &b,
                            c2.as_mut_ptr(),
                            20,
                            add,
                        )
                    };
                    assert_eq!(c, c2, "{isa} kc={kc}: in-place A differs from packed A");
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
