//! The portable micro-kernel: the same tile as the AVX2 one, as plain loops.

use super::{MR, NR, Tile};

/// `ab = a · b` over `kc` packed steps (layouts in the parent module's doc).
pub(super) fn kernel(kc: usize, a: &[f32], b: &[f32], ab: &mut Tile) {
    *ab = [0.0; MR * NR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
        for (row, &ai) in ab.chunks_exact_mut(NR).zip(ap) {
            for (c, &bj) in row.iter_mut().zip(bp) {
                *c += ai * bj;
            }
        }
    }
}
