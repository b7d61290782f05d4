//! CPU kernels: explicit SIMD through [`simd`], parallel with rayon.
//!
//! One file per op family, each with `forward`, `backward` and a naive `reference`.

pub mod matmul;
pub mod simd;
