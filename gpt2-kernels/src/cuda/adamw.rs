//! AdamW on the GPU; the twin of [`crate::cpu::adamw`] (torch.optim.AdamW's order of
//! operations; the per-step coefficients are the CPU's, computed in f64 and rounded to
//! f32 once).
//!
//! Parameters, `m` and `v` are f32 (master weights); gradients are f32 or bf16.
//! [`step_with_bf16_copy`] also writes the updated weights as bf16, for a bf16 forward.
//! Also here: [`sum_of_squares`] and [`scale`] for global-norm gradient clipping.

use half::bf16;

use super::module::{Arg, Kernels, Module, kernels, ptx_module};
use super::runtime::{blocks, elementwise};
use super::{Gpu, GpuBuf, GpuFloat};
use crate::Result;
use crate::cpu::adamw::{self as cpu, AdamWParams};
use crate::error::check_len;

static MODULE: Module = ptx_module!("adamw");
const STEP: Kernels = kernels!("adamw_step");
const SUM_OF_SQUARES: Kernels = kernels!("adamw_sum_of_squares");
const SCALE: Kernels = kernels!("adamw_scale");
const SUM_PARTIALS: &str = "adamw_sum_partials";

/// Most blocks of [`sum_of_squares`]'s first pass: the number of partial sums. It depends
/// only on the length, so the summation order (and the result) does too.
const MAX_PARTIALS: usize = 1024;

/// The step, writing the bf16 copy when `copy` is given.
#[allow(clippy::too_many_arguments)]
fn launch_step<G: GpuFloat>(
    gpu: &Gpu,
    op: &'static str,
    (params, copy): (&mut GpuBuf<f32>, Option<&mut GpuBuf<bf16>>),
    grads: &GpuBuf<G>,
    m: &mut GpuBuf<f32>,
    v: &mut GpuBuf<f32>,
    hp: &AdamWParams,
    step: u64,
    weight_decay: f32,
) -> Result<()> {
    let lens = (params.len(), grads.len(), m.len(), v.len());
    let k = cpu::coefficients(op, lens, hp, step, weight_decay)?;
    let n = params.len();
    if n == 0 {
        return Ok(());
    }
    let copy = match copy {
        Some(c) => {
            check_len(op, "params_bf16", c.len(), n)?;
            c.arg()
        }
        // A null pointer: the kernel skips the copy.
        None => Arg::Ptr {
            ptr: 0,
            ordinal: gpu.ordinal(),
        },
    };
    let args = [
        params.arg(),
        grads.arg(),
        m.arg(),
        v.arg(),
        copy,
        Arg::U64(n as u64),
        Arg::F32(k.decay),
        Arg::F32(k.one_minus_beta1),
        Arg::F32(k.beta2),
        Arg::F32(k.one_minus_beta2),
        Arg::F32(k.bias_correction2_sqrt),
        Arg::F32(k.step_size),
        Arg::F32(k.eps),
    ];
    gpu.launch(&MODULE, STEP.of::<G>(), elementwise(n), &args)
}

/// One AdamW step (`step` counted from 1) over a flat parameter buffer, updating
/// `params`, `m` and `v` in place.
#[allow(clippy::too_many_arguments)] // the optimizer's state, as the CPU twin
pub fn step<G: GpuFloat>(
    gpu: &Gpu,
    params: &mut GpuBuf<f32>,
    grads: &GpuBuf<G>,
    m: &mut GpuBuf<f32>,
    v: &mut GpuBuf<f32>,
    hp: &AdamWParams,
    step: u64,
    weight_decay: f32,
) -> Result<()> {
    let op = "cuda::adamw::step";
    launch_step(gpu, op, (params, None), grads, m, v, hp, step, weight_decay)
}

/// As [`step`], and writes the updated parameters rounded to bf16 into `params_bf16`.
#[allow(clippy::too_many_arguments)]
pub fn step_with_bf16_copy<G: GpuFloat>(
    gpu: &Gpu,
    params: &mut GpuBuf<f32>,
    params_bf16: &mut GpuBuf<bf16>,
    grads: &GpuBuf<G>,
    m: &mut GpuBuf<f32>,
    v: &mut GpuBuf<f32>,
    hp: &AdamWParams,
    step: u64,
    weight_decay: f32,
) -> Result<()> {
    let op = "cuda::adamw::step_with_bf16_copy";
    let dst = (params, Some(params_bf16));
    launch_step(gpu, op, dst, grads, m, v, hp, step, weight_decay)
}

/// `Σ x_i²` in f64, for the global gradient norm: per-block partial sums, added in order
/// by a second kernel (deterministic). Waits for the result.
pub fn sum_of_squares<T: GpuFloat>(gpu: &Gpu, x: &GpuBuf<T>) -> Result<f64> {
    sum_of_squares_all(gpu, &[x])
}

/// [`sum_of_squares`] over several buffers at once (a model's per-tensor gradients): each
/// buffer's per-block partials go to its own stretch of one array, which one block then
/// adds in order — one wait for the whole list instead of one per buffer.
pub fn sum_of_squares_all<T: GpuFloat>(gpu: &Gpu, xs: &[&GpuBuf<T>]) -> Result<f64> {
    let parts: Vec<usize> = xs
        .iter()
        .map(|x| {
            x.len()
                .div_ceil(super::runtime::BLOCK as usize)
                .min(MAX_PARTIALS)
        })
        .collect();
    let total_parts: usize = parts.iter().sum();
    if total_parts == 0 {
        return Ok(0.0);
    }
    let count = u32::try_from(total_parts).map_err(|_| crate::KernelError::Shape {
        op: "cuda::adamw::sum_of_squares_all",
        msg: format!("{total_parts} partial sums do not fit a u32"),
    })?;
    let partials = gpu.alloc::<f64>(total_parts)?;
    let mut at = 0;
    for (x, &p) in xs.iter().zip(&parts) {
        if p > 0 {
            let dst = partials.arg().offset(at * size_of::<f64>());
            let args = [dst, x.arg(), Arg::U64(x.len() as u64)];
            gpu.launch(&MODULE, SUM_OF_SQUARES.of::<T>(), blocks(p as u32), &args)?;
        }
        at += p;
    }
    let total = gpu.alloc::<f64>(1)?;
    let args = [total.arg(), partials.arg(), Arg::U32(count)];
    gpu.launch(&MODULE, SUM_PARTIALS, blocks(1), &args)?;
    Ok(total.to_vec()?[0])
}

/// `x ← s·x` (e.g. gradient clipping by `max_norm / norm`).
pub fn scale<T: GpuFloat>(gpu: &Gpu, x: &mut GpuBuf<T>, s: f32) -> Result<()> {
    let n = x.len();
    gpu.launch_elementwise(&MODULE, SCALE.of::<T>(), &[x.arg(), Arg::F32(s)], n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ptx_declares_every_kernel() {
        super::MODULE.assert_declares(&[super::STEP, super::SUM_OF_SQUARES, super::SCALE]);
        assert!(super::MODULE.params(super::SUM_PARTIALS).is_some());
    }
}
