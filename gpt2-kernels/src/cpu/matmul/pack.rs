//! Packing: copies a block of A or B into the micro-panels the micro-kernel streams.
//!
//! One function serves both operands. A micro-panel is `W` lines wide (`W = MR` rows of
//! A, or `W = NR` columns of B) and `kc` steps long, stored k-major:
//! `dst[p·W + w] = src[origin + w·w_stride + p·k_stride]`. Lines past `valid` are zero,
//! so edge tiles need no special case in the micro-kernel. Packing is also where any
//! layout is absorbed (strides, transposes: a `(N, K)` weight read as `Wᵀ` is just
//! `w_stride = K, k_stride = 1`) and where bf16 is widened to f32.

use super::Element;

/// Packs one micro-panel of width `W` into `dst` (`W·kc` elements). `valid ≤ W` lines
/// are read from `src`; every index read is `origin + w·w_stride + p·k_stride` with
/// `w < valid`, `p < kc`, which the caller has checked lies inside `src`.
pub(super) fn pack_panel<T: Element, const W: usize>(
    dst: &mut [f32],
    src: &[T],
    origin: usize,
    valid: usize,
    w_stride: usize,
    k_stride: usize,
    kc: usize,
) {
    debug_assert!(valid <= W && dst.len() == W * kc);
    if valid < W {
        dst.fill(0.0);
    }
    if w_stride == 1 {
        // Lines contiguous (B row-major, or A read transposed): one short copy per step.
        for (p, d) in dst.chunks_exact_mut(W).enumerate() {
            let s = &src[origin + p * k_stride..][..valid];
            for (d, s) in d.iter_mut().zip(s) {
                *d = s.to_f32();
            }
        }
    } else if k_stride == 1 {
        // Steps contiguous (A row-major, or a (N, K) weight as B): read each line once
        // sequentially and scatter it with stride W into the (L1-resident) panel.
        for w in 0..valid {
            let s = &src[origin + w * w_stride..][..kc];
            for (d, s) in dst.chunks_exact_mut(W).zip(s) {
                d[w] = s.to_f32();
            }
        }
    } else {
        for (p, d) in dst.chunks_exact_mut(W).enumerate() {
            for (w, d) in d[..valid].iter_mut().enumerate() {
                *d = src[origin + w * w_stride + p * k_stride].to_f32();
            }
        }
    }
}
