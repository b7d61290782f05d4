//! The portable micro-kernel: the same tile as the AVX2 one, as plain loops.

use super::{MR, NR, Tile};

/// `C [+]= a · b` over `kc` steps, `a` a packed micro-panel (element `(i, p)` at
/// `a[p·MR + i]`).
///
/// # Safety
/// As [`super::kernel`]: the `MR × NR` tile at `c` (row stride `ldc`) is valid and ours.
pub(super) unsafe fn kernel(kc: usize, a: &[f32], b: &[f32], c: *mut f32, ldc: usize, add: bool) {
    let mut ab: Tile = [0.0; MR * NR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
        for (row, &ai) in ab.chunks_exact_mut(NR).zip(ap) {
            for (c, &bj) in row.iter_mut().zip(bp) {
                *c += ai * bj;
            }
        }
    }
    for (i, ab) in ab.chunks_exact(NR).enumerate() {
        // SAFETY: row i of the tile is valid and exclusively ours (the caller's contract).
        let row = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        for (c, &x) in row.iter_mut().zip(ab) {
            *c = if add { *c + x } else { x };
        }
    }
}
