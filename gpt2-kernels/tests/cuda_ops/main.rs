//! GPU tests: every CUDA kernel against its CPU twin on random inputs of awkward sizes,
//! in f32 and bf16, plus determinism (two runs bitwise equal), the runtime (copies,
//! the caching allocator) and typed errors for bad arguments.
//!
//! A plain program (`harness = false`), so that it prints one summary line per kernel
//! and, without a GPU, one `SKIP` line per check on stderr and exits successfully:
//! `.ci/run` counts those lines. Arguments that do not start with `-` filter the checks
//! by substring, like libtest's. With `GPT2_CUDA_QUICK` set only small cases run (for
//! compute-sanitizer, with `GPT2_CUDA_POOL=off` so that it sees exact buffer ends).
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

use gpt2_kernels::cuda::{CudaError, Gpu};

use common::Check;

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let checks: Vec<Check> = [
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
    ]
    .into_iter()
    .flatten()
    .filter(|c| filters.is_empty() || filters.iter().any(|f| c.name.contains(f.as_str())))
    .collect();

    let gpu = match Gpu::get(0) {
        Ok(gpu) => gpu,
        Err(e) => {
            let reason = match e {
                CudaError::Unavailable(why) => why,
                other => other.to_string(),
            };
            for c in &checks {
                eprintln!("SKIP {}: no CUDA device ({reason})", c.name);
            }
            println!(
                "cuda_ops: 0 passed, 0 failed, {} skipped (no CUDA device)",
                checks.len()
            );
            // On the GPU machine (scripts/gpu-check.sh run), a missing device is a failure.
            return if std::env::var_os("GPT2_REQUIRE_GPU").is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let (major, minor) = gpu.compute_capability();
    println!("cuda_ops on cuda:0 {} (sm_{major}{minor})", gpu.name());
    let mut failed = 0;
    for c in &checks {
        // A panic in a check is a failure of that check, not the end of the run.
        let outcome = std::panic::catch_unwind(|| (c.run)(&gpu).map_err(|e| e.to_string()))
            .unwrap_or_else(|p| Err(format!("panicked: {}", common::panic_message(&p))));
        match outcome {
            Ok(detail) => println!("PASS {:<34} {detail}", c.name),
            Err(why) => {
                failed += 1;
                println!("FAIL {:<34} {why}", c.name);
            }
        }
    }
    println!(
        "cuda_ops: {} passed, {failed} failed, 0 skipped",
        checks.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
