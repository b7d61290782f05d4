//! The CUDA backend: our own PTX kernels, loaded and launched through cudarc.
//!
//! Building needs no CUDA toolkit and running needs only the NVIDIA driver: the kernels
//! are CUDA C sources in `gpt2-kernels/kernels/`, compiled by `scripts/build-ptx.sh` to
//! the PTX committed in `src/cuda/ptx/`, which is compiled into the binary and
//! JIT-compiled by the driver when a module is first used. Each module declares the
//! lowest PTX ISA it needs (`.version 7.8`, `.target sm_80`: any CUDA 12 driver, Ampere
//! and newer). CI regenerates the PTX and fails if the committed files are stale, and
//! assembles every module with `ptxas` for sm_80 and sm_90 (`scripts/check-ptx.sh`).
//!
//! Without the `cuda` feature only [`CudaError`] is here (so that
//! [`crate::KernelError`] is the same type in every build).
//!
//! ## Using it
//! [`Gpu::get`] opens a device (an error, never a panic, when there is no driver or GPU);
//! [`Gpu::upload`], [`Gpu::alloc`] and [`Gpu::zeros`] make [`GpuBuf`]s;
//! [`GpuBuf::to_vec`] copies back. Each op mirrors its CPU twin in [`crate::cpu`]: the
//! same file name, function names, operand order and semantics (backward functions
//! accumulate), with `gpu: &Gpu` in place of `isa: Isa` and device buffers in place of
//! slices (the sampler's twin is `gpt2_core::sample`). Index operands (token ids, positions, targets) stay host slices: they are
//! small, and checking them on the host keeps out-of-range ids a typed error.
//!
//! Element types: every op runs on `f32` or on `bf16` storage ([`GpuFloat`]), always
//! computing in f32; per-row statistics (`mean`, `rstd`, `losses`) stay f32 and AdamW
//! keeps f32 master weights and moments.
//!
//! Determinism: no kernel adds with atomics (the sampler sets bits of a bitmap with
//! `atomicOr`, which every order leaves the same). Reductions run in a fixed order (warp
//! butterflies, fixed per-block partials added in order by a second pass), so every
//! result is bitwise the same from run to run on a given GPU.
//!
//! Launches are asynchronous; errors of a kernel surface at the next synchronising call
//! ([`Gpu::synchronize`], [`GpuBuf::to_vec`]).
//!
//! ## Testing
//! `tests/cuda_ops` checks every kernel against its CPU twin (f32 and bf16), and prints
//! one `SKIP` line per check when there is no GPU. `scripts/gpu-check.sh build` packs
//! release test and bench binaries into `gpu-bin/`; `scripts/gpu-check.sh run` runs them
//! on a machine that has only the NVIDIA driver, then repeats the GPU tests on small
//! cases under compute-sanitizer (`GPT2_CUDA_QUICK=1`, and `GPT2_CUDA_POOL=off`, which
//! makes every buffer an exact-size allocation so that memcheck sees its end).

mod error;
pub use error::CudaError;

#[cfg(feature = "cuda")]
mod alloc;
#[cfg(feature = "cuda")]
pub(crate) mod module;
#[cfg(feature = "cuda")]
mod runtime;

#[cfg(feature = "cuda")]
pub mod adamw;
#[cfg(feature = "cuda")]
pub mod attention;
#[cfg(feature = "cuda")]
pub mod cast;
#[cfg(feature = "cuda")]
pub mod crossentropy;
#[cfg(feature = "cuda")]
pub mod dropout;
#[cfg(feature = "cuda")]
pub mod embedding;
#[cfg(feature = "cuda")]
pub mod gelu;
#[cfg(feature = "cuda")]
pub mod layernorm;
#[cfg(feature = "cuda")]
pub mod matmul;
#[cfg(feature = "cuda")]
pub mod residual;
#[cfg(feature = "cuda")]
pub mod sample;
#[cfg(feature = "cuda")]
pub mod softmax;

#[cfg(feature = "cuda")]
pub use alloc::{GpuBuf, GpuElem, GpuFloat, MemoryStats};
#[cfg(feature = "cuda")]
pub use runtime::{Gpu, GpuGraph};
