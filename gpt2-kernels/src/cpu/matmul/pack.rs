//! Packing: copies a block of A or B into the micro-panels the micro-kernel streams.
//!
//! One function serves both operands. A micro-panel is `W` lines wide (`W = MR` rows of
//! A, or `W = NR` columns of B) and `kc` steps long, stored k-major:
//! `dst[p·W + w] = src[origin + w·w_stride + p·k_stride]`. Lines past `valid` are zero,
//! so edge tiles need no special case in the micro-kernel. Packing is also where any
//! layout is absorbed (strides, transposes: a `(N, K)` weight read as `Wᵀ` is just
//! `w_stride = K, k_stride = 1`) and where bf16 is widened to f32.

use rayon::prelude::*;

use super::Element;
use crate::cpu::simd::Isa;

/// Panels packed by one task: 8 NR panels = 128 columns of B, so that a task reading B
/// row by row sees 512 contiguous bytes per row, which the prefetchers stream.
const GROUP: usize = 8;

/// Packs `lines` lines (rows of A, or columns of B) into `lines.div_ceil(W)` micro-panels
/// of width `W` in `dst`, in parallel over groups of [`GROUP`] panels. Line `l`, step `p`
/// is read at `origin + l·w_stride + p·k_stride`, which the caller has checked lies
/// inside `src`.
#[allow(clippy::too_many_arguments)]
pub(super) fn pack_block<T: Element, const W: usize>(
    isa: Isa,
    dst: &mut [f32],
    src: &[T],
    origin: usize,
    lines: usize,
    w_stride: usize,
    k_stride: usize,
    kc: usize,
) {
    debug_assert_eq!(dst.len(), lines.div_ceil(W) * W * kc);
    dst.par_chunks_mut(GROUP * W * kc)
        .enumerate()
        .for_each(|(g, dst)| {
            let first = g * GROUP * W;
            let lines = (lines - first).min(GROUP * W);
            let origin = origin + first * w_stride;
            if w_stride == 1 {
                // Lines contiguous (B row-major, or A read transposed): walk the group's
                // rows of `src` sequentially, dealing each W-wide piece to its panel.
                #[cfg(target_arch = "x86_64")]
                if isa.is_avx2() && W.is_multiple_of(8) {
                    // SAFETY: an AVX2 `Isa` proves the CPU has AVX2.
                    unsafe { avx2::deal::<T, W>(dst, src, origin, lines, k_stride, kc) };
                    return;
                }
                for p in 0..kc {
                    let row = &src[origin + p * k_stride..][..lines];
                    for (piece, panel) in row.chunks(W).zip(dst.chunks_exact_mut(W * kc)) {
                        copy_step::<T, W>(&mut panel[p * W..][..W], piece);
                    }
                }
            } else {
                for (q, panel) in dst.chunks_exact_mut(W * kc).enumerate() {
                    let valid = (lines - q * W).min(W);
                    pack_panel::<T, W>(
                        isa,
                        panel,
                        src,
                        origin + q * W * w_stride,
                        valid,
                        w_stride,
                        k_stride,
                        kc,
                    );
                }
            }
        });
}

/// One step of a panel from contiguous elements, zero-padded past `src.len() ≤ W`.
#[inline(always)]
fn copy_step<T: Element, const W: usize>(dst: &mut [f32], src: &[T]) {
    if let Ok(src) = <&[T; W]>::try_from(src) {
        // Full width: a fixed-size copy, a few vector moves.
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    } else {
        for (d, s) in dst
            .iter_mut()
            .zip(src.iter().map(|s| s.to_f32()).chain(std::iter::repeat(0.0)))
        {
            *d = s;
        }
    }
}

/// Packs one micro-panel whose lines are not contiguous (`w_stride ≠ 1`): `valid ≤ W`
/// lines, the rest zero.
#[allow(clippy::too_many_arguments)]
fn pack_panel<T: Element, const W: usize>(
    isa: Isa,
    dst: &mut [f32],
    src: &[T],
    origin: usize,
    valid: usize,
    w_stride: usize,
    k_stride: usize,
    kc: usize,
) {
    if valid < W {
        dst.fill(0.0);
    }
    if k_stride == 1 {
        // Steps contiguous (A row-major, or a (N, K) weight as B): a transpose.
        #[cfg(target_arch = "x86_64")]
        if isa.is_avx2() && valid == W {
            let done = kc / 8 * 8;
            // SAFETY: an AVX2 `Isa` proves the CPU has AVX2.
            unsafe { avx2::transpose::<T, W>(dst, src, origin, w_stride, done) };
            scatter_lines::<T, W>(
                &mut dst[done * W..],
                src,
                origin + done,
                valid,
                w_stride,
                kc - done,
            );
            return;
        }
        let _ = isa;
        scatter_lines::<T, W>(dst, src, origin, valid, w_stride, kc);
    } else {
        for (p, d) in dst.chunks_exact_mut(W).enumerate() {
            for (w, d) in d[..valid].iter_mut().enumerate() {
                *d = src[origin + w * w_stride + p * k_stride].to_f32();
            }
        }
    }
}

/// The scalar transpose: read each of the `valid` lines sequentially and scatter it
/// with stride `W` into the (L1-resident) panel.
fn scatter_lines<T: Element, const W: usize>(
    dst: &mut [f32],
    src: &[T],
    origin: usize,
    valid: usize,
    w_stride: usize,
    kc: usize,
) {
    for w in 0..valid {
        let s = &src[origin + w * w_stride..][..kc];
        for (d, s) in dst.chunks_exact_mut(W).zip(s) {
            d[w] = s.to_f32();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::Element;
    use crate::cpu::matmul::element::load8;

    /// [`super::copy_step`] for a whole group of panels, full pieces as 8-lane moves.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn deal<T: Element, const W: usize>(
        dst: &mut [f32],
        src: &[T],
        origin: usize,
        lines: usize,
        k_stride: usize,
        kc: usize,
    ) {
        for p in 0..kc {
            let row = &src[origin + p * k_stride..][..lines];
            // The rows are short (a group's columns) and far apart, too short for the
            // hardware prefetcher to get going on each: ask for a row 4 steps ahead.
            let ahead = row.as_ptr().wrapping_add(4 * k_stride).cast::<i8>();
            for line in (0..std::mem::size_of_val(row)).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
            }
            for (piece, panel) in row.chunks(W).zip(dst.chunks_exact_mut(W * kc)) {
                let d = &mut panel[p * W..][..W];
                if piece.len() < W {
                    super::copy_step::<T, W>(d, piece);
                    continue;
                }
                for h in (0..W).step_by(8) {
                    // SAFETY: h + 8 ≤ W = piece.len() = d.len() (W is a multiple of 8).
                    unsafe {
                        _mm256_storeu_ps(d.as_mut_ptr().add(h), load8(piece.as_ptr().add(h)))
                    };
                }
            }
        }
    }

    /// The first `steps` (a multiple of 8) steps of a full panel whose lines are
    /// contiguous along k, as 8 × 8 register transposes: up to 8 lines × 8 steps in,
    /// 8 steps × up to 8 lines out (a block of fewer lines, as A's 6, is padded with
    /// zero lines, and its 8 steps are stored as overlapping full vectors, see below).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn transpose<T: Element, const W: usize>(
        dst: &mut [f32],
        src: &[T],
        origin: usize,
        w_stride: usize,
        steps: usize,
    ) {
        for p in (0..steps).step_by(8) {
            for h in (0..W).step_by(8) {
                let lanes = (W - h).min(8);
                let rows: [__m256; 8] = std::array::from_fn(|r| {
                    if r >= lanes {
                        return _mm256_setzero_ps();
                    }
                    let line = &src[origin + (h + r) * w_stride + p..][..8];
                    if p % 16 == 0 {
                        // Lines far apart (A's rows, 3–12 KiB) are read 1 KiB at a time,
                        // too little for the hardware prefetcher: ask for the same cache
                        // line of the panel two panels ahead (measured −15 % pack time for
                        // A from DRAM; an address past `src` is never dereferenced).
                        let ahead = line.as_ptr().wrapping_add(2 * W * w_stride);
                        _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                    }
                    // SAFETY: `line` has 8 elements.
                    unsafe { load8(line.as_ptr()) }
                });
                for (q, v) in transpose8(rows).into_iter().enumerate() {
                    let at = (p + q) * W + h;
                    // A narrow panel (A's W = 6) has its 8 steps' pieces back to back:
                    // a full 8-lane store may run into the next step's piece, which the
                    // next store rewrites, as long as it stays inside these 8 steps.
                    // Only the last piece is cut to size (through a local vector: a
                    // masked store, `vmaskmovps`, is microcoded on AMD cores and took
                    // half the time of packing A).
                    if lanes == 8 || (W < 8 && at + 8 <= (p + 8) * W) {
                        let out = &mut dst[at..][..8];
                        // SAFETY: `out` has 8 elements.
                        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
                    } else {
                        let mut piece = [0.0f32; 8];
                        // SAFETY: `piece` has 8 elements.
                        unsafe { _mm256_storeu_ps(piece.as_mut_ptr(), v) };
                        dst[at..][..lanes].copy_from_slice(&piece[..lanes]);
                    }
                }
            }
        }
    }

    /// 8 × 8 f32 transpose: `out[q][r] = rows[r][q]`.
    #[target_feature(enable = "avx2")]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}
