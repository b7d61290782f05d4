//! GPU tests: every CUDA kernel against its CPU twin on random inputs of awkward sizes,
//! in f32 and bf16, plus determinism (two runs bitwise equal), the runtime (copies,
//! the caching allocator) and typed errors for bad arguments.
//!
//! A plain program (`harness = false`), so that it prints one summary line per kernel
//! and, without a GPU, one `SKIP` line per check on stderr and exits successfully:
//! `.ci/run` counts those lines. Arguments that do not start with `-` filter the checks
//! by substring, like libtest's (`!pattern` leaves out the checks that contain `pattern`).
//! With `GPT2_CUDA_QUICK` set only small cases run (for compute-sanitizer, with
//! `GPT2_CUDA_POOL=off` so that it sees exact buffer ends).
//!
//! Tolerances (`max|gpu − cpu| / max|cpu|` per output tensor, see `common.rs`): f32
//! results that are the same operations in the same order must be **bit-identical**
//! (residual, dropout, casts, embedding); f32 results whose reductions run in another
//! order, or that call the GPU's `expf`/`tanhf`, within [`common::F32_TOL`]; bf16 results
//! (bf16 inputs, f32 arithmetic, one rounding of each output to bf16, against the CPU in
//! f32 on the same bf16-rounded inputs) within [`common::BF16_TOL`].

mod common;

mod adamw;
mod cast;
mod crossentropy;
mod dropout;
mod embedding;
mod gelu;
mod layernorm;
mod residual;
mod runtime;
mod softmax;

use std::process::ExitCode;

fn main() -> ExitCode {
    let checks = [
        runtime::checks(),
        embedding::checks(),
        layernorm::checks(),
        gelu::checks(),
        dropout::checks(),
        residual::checks(),
        softmax::checks(),
        crossentropy::checks(),
        adamw::checks(),
        cast::checks(),
    ];
    common::run("cuda_ops", checks.into_iter().flatten().collect())
}
