//! CPU kernels: explicit SIMD through [`simd`], parallel with rayon.
//!
//! One file per op family, each with `forward`, `backward` and a naive `reference`.

pub mod adamw;
pub mod attention;
pub mod cast;
pub mod crossentropy;
pub mod dropout;
pub mod embedding;
pub mod gelu;
pub mod layernorm;
pub mod machine;
pub mod matmul;
pub mod real;
pub mod residual;
pub mod simd;
pub mod softmax;

use crate::{KernelError, Result};

/// Elements per rayon task in elementwise kernels. Fixed (not derived from the number
/// of threads), so the split — and any per-chunk reduction — is the same on every pool.
pub(crate) const CHUNK: usize = 1 << 14;

/// The number of rows of width `width` in a buffer of `len` elements, or a `Shape`
/// error if `width` is zero or does not divide `len`.
pub(crate) fn rows_of(op: &'static str, name: &str, len: usize, width: usize) -> Result<usize> {
    if width == 0 || !len.is_multiple_of(width) {
        return Err(KernelError::Shape {
            op,
            msg: format!("`{name}` has {len} elements, not a whole number of rows of {width}"),
        });
    }
    Ok(len / width)
}
