//! GPU tests of the matmul ladder: every version against the CPU twin
//! (`cpu::matmul`) on random and awkward shapes (M, N, K not multiples of any tile), in
//! both weight layouts, for the forward (with bias), the fused GELU (with the stored
//! pre-activation) and the backward (dX, dW, dbias, accumulating); outputs poisoned with
//! NaN before each run so that an unwritten element fails; the version choice; errors.
//!
//! Tolerances (`max|gpu − cpu| / max|cpu|` per output, see `cuda_ops/common.rs`): f32
//! (v1, v2) within `F32_TOL` (the sums run in another order); bf16 within `BF16_TOL`:
//! both sides see the same bf16-rounded inputs and sum in f32, so the gap is the GPU
//! output's rounding to bf16 (2⁻⁹ relative) plus summation order.
//!
//! The v4 (wgmma) checks are named `matmul::v4 ...` and `matmul::auto`: `gpu-check.sh`
//! runs them in a second process (`cuda_matmul v4 auto`), after the others with
//! `GPT2_CUDA_WGMMA=off` and `!v4 !auto`, so that a faulting kernel, which ends the
//! CUDA context, cannot take the other results with it. Same binary conventions as
//! `cuda_ops` (SKIP lines without a GPU, filters, `GPT2_CUDA_QUICK`).

#[path = "cuda_ops/common.rs"]
#[allow(dead_code)] // the helpers of all GPU tests; this binary uses some
mod common;

use std::process::ExitCode;

use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::matmul as cpu;
use gpt2_kernels::cuda::matmul::{self, Pass, Version, Weight, WeightLayout};
use gpt2_kernels::cuda::{Gpu, GpuBuf};
use half::bf16;

use common::*;

/// `(M, K, N)`: rows, inputs, outputs.
type Dims = (usize, usize, usize);

/// Shapes the tensor-core versions take (K, N multiples of 8), edges anywhere else: one
/// row, a partial tile everywhere, several tiles with partial edges, GPT-2's qkv layer.
const TENSOR_CORE: [Dims; 5] = [
    (1, 8, 8),
    (7, 24, 40),
    (100, 72, 136),
    (129, 264, 200),
    (300, 768, 2304),
];
/// Shapes only the CUDA-core versions take (odd K, N).
const ODD: [Dims; 3] = [(1, 1, 1), (5, 7, 3), (33, 65, 17)];
/// Large enough for v4's 128 x 256 tiles (at least one per multiprocessor).
const WIDE: Dims = (2048, 768, 2304);

fn main() -> ExitCode {
    let mut checks = Vec::new();
    for (name, version) in [
        ("matmul::v1 tiled", Version::Tiled),
        ("matmul::v2 regblock", Version::RegBlock),
    ] {
        checks.push(check(name, version));
    }
    checks.push(check("matmul::v3 mma", Version::Mma));
    checks.push(Check {
        name: "matmul::errors",
        run: errors,
    });
    checks.push(Check {
        name: "matmul::determinism",
        run: determinism,
    });
    checks.push(check("matmul::v4 wgmma", Version::Wgmma));
    checks.push(Check {
        name: "matmul::auto",
        run: auto,
    });
    common::run("cuda_matmul", checks)
}

fn check(name: &'static str, version: Version) -> Check {
    let run: fn(&Gpu) -> Res<String> = match version {
        Version::Tiled => |g| ladder(g, Version::Tiled),
        Version::RegBlock => |g| ladder(g, Version::RegBlock),
        Version::Mma => |g| ladder(g, Version::Mma),
        _ => |g| ladder(g, Version::Wgmma),
    };
    Check { name, run }
}

/// Every case `version` takes, in f32 and bf16 where it takes them.
fn ladder(gpu: &Gpu, version: Version) -> Res<String> {
    let cc = gpu.compute_capability();
    if version == Version::Wgmma && cc != (9, 0) {
        return Ok(format!(
            "not run: v4 needs sm_90, this is sm_{}{}",
            cc.0, cc.1
        ));
    }
    let tensor_core = matches!(version, Version::Mma | Version::Wgmma);
    let mut shapes: Vec<Dims> = TENSOR_CORE.to_vec();
    if !tensor_core {
        shapes.extend(ODD);
    }
    if version == Version::Wgmma {
        shapes.push(WIDE);
    }
    let shapes = cases(&shapes, |(m, k, n)| m * k.max(n));
    let b = layer::<bf16>(gpu, version, &shapes)?;
    if tensor_core {
        return Ok(format!(
            "bf16 err {b:.1e} (tol {BF16_TOL:.0e}), {} shapes x 2 layouts",
            shapes.len()
        ));
    }
    let f = layer::<f32>(gpu, version, &shapes)?;
    Ok(format!(
        "f32 err {f:.1e} (tol {F32_TOL:.0e}), bf16 err {b:.1e} (tol {BF16_TOL:.0e}), {} shapes x 2 layouts",
        shapes.len()
    ))
}

/// A layer's operands, rounded through `T`.
struct Layer {
    inp: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    dout: Vec<f32>,
}

fn make<T: Elem>(rng: &mut Rng, (m, k, n): Dims) -> Layer {
    Layer {
        inp: round::<T>(&uniform(rng, m * k, -1.0, 1.0)),
        w: round::<T>(&uniform(rng, k * n, -1.0, 1.0)),
        bias: round::<T>(&uniform(rng, n, -1.0, 1.0)),
        dout: round::<T>(&uniform(rng, m * n, -1.0, 1.0)),
    }
}

/// `len` NaNs on the device: an output that a kernel must overwrite completely.
fn poisoned<T: Elem>(gpu: &Gpu, len: usize) -> gpt2_kernels::Result<GpuBuf<T>> {
    up::<T>(gpu, &vec![f32::NAN; len])
}

/// Forward, forward_gelu and backward of every shape in both layouts on `version`
/// against the CPU; returns the worst error.
fn layer<T: Elem>(gpu: &Gpu, version: Version, shapes: &[Dims]) -> Res<f64> {
    let mut rng = Rng::new(80);
    let mut worst = Worst::default();
    let tol = T::tol(F32_TOL);
    for &(m, k, n) in shapes {
        for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
            let what = format!("{} m={m} k={k} n={n} {layout:?}", T::NAME);
            let l = make::<T>(&mut rng, (m, k, n));
            let cw = cpu::Weight::f32(&l.w, layout);
            let (inp, w, bias) = (
                up::<T>(gpu, &l.inp)?,
                up::<T>(gpu, &l.w)?,
                up::<T>(gpu, &l.bias)?,
            );
            let weight = Weight::new(&w, layout);

            let mut want = vec![0.0; m * n];
            cpu::forward(isa(), &mut want, &l.inp, cw, Some(&l.bias), k, n)?;
            let mut out = poisoned::<T>(gpu, m * n)?;
            matmul::forward(gpu, version, &mut out, &inp, weight, Some(&bias), k, n)?;
            worst.close(&format!("{what} forward"), &down(&out)?, &want, tol)?;

            let (mut want_pre, mut want) = (vec![0.0; m * n], vec![0.0; m * n]);
            cpu::forward_gelu(
                isa(),
                &mut want,
                Some(&mut want_pre),
                &l.inp,
                cw,
                Some(&l.bias),
                k,
                n,
            )?;
            let (mut out, mut pre) = (poisoned::<T>(gpu, m * n)?, poisoned::<T>(gpu, m * n)?);
            matmul::forward_gelu(
                gpu,
                version,
                &mut out,
                Some(&mut pre),
                &inp,
                weight,
                Some(&bias),
                k,
                n,
            )?;
            worst.close(&format!("{what} forward_gelu"), &down(&out)?, &want, tol)?;
            worst.close(
                &format!("{what} forward_gelu pre"),
                &down(&pre)?,
                &want_pre,
                tol,
            )?;

            // Backward, accumulating into random gradients.
            let di0 = round::<T>(&uniform(&mut rng, m * k, -1.0, 1.0));
            let dw0 = round::<T>(&uniform(&mut rng, k * n, -1.0, 1.0));
            let db0 = round::<T>(&uniform(&mut rng, n, -1.0, 1.0));
            let (mut want_di, mut want_dw, mut want_db) = (di0.clone(), dw0.clone(), db0.clone());
            cpu::backward(
                isa(),
                Some(&mut want_di),
                Some(&mut want_dw),
                Some(&mut want_db),
                &l.dout,
                &l.inp,
                cw,
                k,
                n,
            )?;
            let dout = up::<T>(gpu, &l.dout)?;
            let (mut di, mut dw, mut db) = (
                up::<T>(gpu, &di0)?,
                up::<T>(gpu, &dw0)?,
                up::<T>(gpu, &db0)?,
            );
            matmul::backward(
                gpu,
                version,
                Some(&mut di),
                Some(&mut dw),
                Some(&mut db),
                &dout,
                &inp,
                weight,
                k,
                n,
            )?;
            worst.close(&format!("{what} dinp"), &down(&di)?, &want_di, tol)?;
            worst.close(&format!("{what} dweight"), &down(&dw)?, &want_dw, tol)?;
            worst.close(&format!("{what} dbias"), &down(&db)?, &want_db, tol)?;
        }
    }
    Ok(worst.get())
}

/// Wrong lengths, versions that do not apply: typed errors, nothing launched.
fn errors(gpu: &Gpu) -> Res<String> {
    let (m, k, n) = (4, 8, 8);
    let x = gpu.zeros::<f32>(m * k)?;
    let w = gpu.zeros::<f32>(k * n)?;
    let mut out = gpu.zeros::<f32>(m * n)?;
    let weight = Weight::new(&w, WeightLayout::InOut);
    let shape_err = |r: gpt2_kernels::Result<()>, what: &str| -> Res<()> {
        match r {
            Err(KernelError::Shape { .. } | KernelError::Length { .. }) => Ok(()),
            other => Err(format!("{what}: {other:?}").into()),
        }
    };
    let r = matmul::forward(gpu, Version::Mma, &mut out, &x, weight, None, k, n);
    shape_err(r, "v3 on f32")?;
    let r = matmul::forward(gpu, Version::Auto, &mut out, &x, weight, None, k, n + 1);
    shape_err(r, "out of the wrong length")?;
    let (xb, wb) = (gpu.zeros::<bf16>(m * 7)?, gpu.zeros::<bf16>(7 * n)?);
    let mut ob = gpu.zeros::<bf16>(m * n)?;
    let wb = Weight::new(&wb, WeightLayout::InOut);
    let r = matmul::forward(gpu, Version::Mma, &mut ob, &xb, wb, None, 7, n);
    shape_err(r, "v3 with K = 7")?;
    // Auto falls back to v2 for the same product.
    matmul::forward(gpu, Version::Auto, &mut ob, &xb, wb, None, 7, n)?;
    Ok("typed errors for wrong lengths and versions that do not apply".into())
}

/// Two runs of the backward on the fastest version are bitwise equal.
fn determinism(gpu: &Gpu) -> Res<String> {
    let (m, k, n) = cases(&[(300, 768, 2304), (64, 64, 64)], |(m, k, n)| m * k.max(n))[0];
    let mut rng = Rng::new(81);
    let l = make::<bf16>(&mut rng, (m, k, n));
    let (inp, w, dout) = (
        up::<bf16>(gpu, &l.inp)?,
        up::<bf16>(gpu, &l.w)?,
        up::<bf16>(gpu, &l.dout)?,
    );
    for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
        deterministic(&format!("m={m} k={k} n={n} {layout:?}"), || {
            let (mut di, mut dw, mut db) = (gpu.zeros(m * k)?, gpu.zeros(k * n)?, gpu.zeros(n)?);
            matmul::backward::<bf16>(
                gpu,
                Version::Auto,
                Some(&mut di),
                Some(&mut dw),
                Some(&mut db),
                &dout,
                &inp,
                Weight::new(&w, layout),
                k,
                n,
            )?;
            Ok([down(&di)?, down(&dw)?, down(&db)?].concat())
        })?;
    }
    Ok("backward bitwise reproducible (dinp, dweight, dbias)".into())
}

/// What `Version::Auto` picks here, and that it is right on GPT-2's shapes.
fn auto(gpu: &Gpu) -> Res<String> {
    let (k, n) = (768, 3072);
    let pick = Version::Auto.resolve::<bf16>(gpu, Pass::Forward, WeightLayout::InOut, k, n)?;
    let f32_pick = Version::Auto.resolve::<f32>(gpu, Pass::Forward, WeightLayout::InOut, k, n)?;
    let odd = Version::Auto.resolve::<bf16>(gpu, Pass::Forward, WeightLayout::InOut, k, 50257)?;
    let head = Version::Auto.resolve::<bf16>(gpu, Pass::Forward, WeightLayout::OutIn, k, 50257)?;
    if f32_pick != Version::RegBlock || odd != Version::RegBlock {
        return Err(format!("f32 -> {f32_pick:?}, bf16 with N = 50257 -> {odd:?}").into());
    }
    let want = if gpu.compute_capability() == (9, 0) {
        [Version::Wgmma, Version::Mma]
    } else {
        [Version::Mma, Version::Mma]
    };
    if !want.contains(&pick) || !want.contains(&head) {
        return Err(
            format!("bf16 picks {pick:?} (head {head:?}), expected one of {want:?}").into(),
        );
    }
    let e = layer::<bf16>(
        gpu,
        Version::Auto,
        &cases(&[(257, 768, 3072)], |(m, _, n)| m * n),
    )?;
    Ok(format!(
        "bf16 -> {} (LM head with N = 50257: {}), f32 -> {}; err {e:.1e} at GPT-2's fc shape",
        pick.name(),
        head.name(),
        f32_pick.name()
    ))
}
