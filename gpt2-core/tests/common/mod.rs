//! The harness of gpt2-core's GPU test programs (`harness = false`): one `PASS`/`FAIL`
//! line per check and a summary, or one `SKIP` line per check without a CUDA device (a
//! failure when `GPT2_REQUIRE_GPU` is set, as on the GPU machine).

use std::process::ExitCode;

use gpt2_core::{Error, Result};
use gpt2_kernels::cuda::{CudaError, Gpu};

/// A named check.
pub type Check = (&'static str, fn() -> Result<()>);

/// A failed check's error.
pub fn fail(msg: String) -> Result<()> {
    Err(Error::Input(msg))
}

/// Runs `checks` on GPU 0, or skips them all without one; `program` names the summary.
pub fn run(program: &str, checks: &[Check]) -> ExitCode {
    if let Err(e) = Gpu::get(0) {
        let reason = match e {
            CudaError::Unavailable(why) => why,
            other => other.to_string(),
        };
        for (name, _) in checks {
            eprintln!("SKIP {name}: no CUDA device ({reason})");
        }
        println!(
            "{program}: 0 passed, 0 failed, {} skipped (no CUDA device)",
            checks.len()
        );
        // On the GPU machine (scripts/gpu-check.sh run), a missing device is a failure.
        return if std::env::var_os("GPT2_REQUIRE_GPU").is_some() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }
    let mut failed = 0;
    for (name, check) in checks {
        match check() {
            Ok(()) => println!("PASS {name}"),
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!(
        "{program}: {} passed, {failed} failed, 0 skipped",
        checks.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
