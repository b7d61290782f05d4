//! # gpt2
//!
//! GPT-2 from scratch in Rust. This crate re-exports the three crates of the workspace:
//! [`gpt2_tokenizer`] (byte-level BPE), [`gpt2_core`] (tensor, model, training) and
//! [`gpt2_kernels`] (CPU SIMD and CUDA kernels), and owns the examples and benches.

pub use gpt2_core;
pub use gpt2_kernels;
pub use gpt2_tokenizer;
