//! # gpt2-kernels
//!
//! All of GPT-2's compute, on plain slices (CPU) and device buffers (CUDA, behind the
//! `cuda` feature). This crate knows nothing of `Tensor` or of the GPT-2 model: every
//! kernel takes its operands as slices plus the few sizes it needs, checks that the
//! slices have the lengths those sizes imply, and returns a [`KernelError`] otherwise.
//!
//! ## Conventions (shared by every op)
//! - Shape legend, as in llm.c: `B` batch, `T` sequence length, `C` channels
//!   (`n_embd`), `NH` heads, `HS = C / NH` head size, `V` vocabulary size, `N` rows
//!   (usually `B·T`). Row-major everywhere; a shape `(N, C)` is `N` rows of `C`.
//! - Every op lives in one file of [`cpu`] with its `forward` and `backward` side by
//!   side and a naive `reference` implementation that the tests compare against.
//! - Backward functions **accumulate** (`+=`) into the gradients they are given, as
//!   llm.c does: residual branches and gradient accumulation come for free, and the
//!   caller zeroes gradients once per step.
//! - The instruction set is explicit: every CPU kernel takes an [`cpu::simd::Isa`]
//!   (AVX2+FMA or scalar), chosen once by the caller with [`cpu::simd::Isa::best`].
//!   Tests run each kernel with both to check the SIMD path against the scalar one.
//! - Parallelism uses rayon's *current* pool: run a kernel inside
//!   `pool.install(|| ...)` to use your own `rayon::ThreadPool`. Work is split into
//!   chunks whose size does not depend on the number of threads, and reductions run
//!   in a fixed order, so results are bitwise identical whatever the pool size.

#![warn(missing_docs)]

pub mod cpu;
// Without the `cuda` feature, the runtime that cuda's docs link to is not compiled.
#[cfg_attr(not(feature = "cuda"), allow(rustdoc::broken_intra_doc_links))]
pub mod cuda;
mod error;
pub mod rng;

pub use error::{KernelError, Result};
