//! AdamW: GPU vs `cpu::adamw` over several steps (same per-step coefficients, the same
//! operations per element; FMA contraction may move the last bit), with f32 and bf16
//! gradients, the bf16 weight copy, `sum_of_squares` and `scale`.

use gpt2_kernels::cpu::adamw::{self as cpu, AdamWParams};
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;
use crate::gelu::ELEMENTWISE_SIZES;

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "adamw::step",
            run: |g| both(g, F32_TOL, (step::<f32>, step::<bf16>)),
        },
        Check {
            name: "adamw::step_with_bf16_copy",
            run: step_with_bf16_copy,
        },
        Check {
            name: "adamw::sum_of_squares",
            run: |g| both(g, 1e-10, (sum_of_squares::<f32>, sum_of_squares::<bf16>)),
        },
        Check {
            name: "adamw::scale",
            run: |g| both(g, 0.0, (scale::<f32>, scale::<bf16>)),
        },
    ]
}

const HP: AdamWParams = AdamWParams {
    lr: 3e-4,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
};
const WEIGHT_DECAY: f32 = 0.1;
const STEPS: u64 = 3;

/// Three steps with gradients of element type `G` (the CPU gets the same values in f32);
/// compares params, m and v after each. With `copy`, also the bf16 weights.
fn steps<G: Elem>(gpu: &Gpu, copy: bool) -> Res<f64> {
    let mut rng = Rng::new(80);
    let mut worst = Worst::default();
    for n in cases(&ELEMENTWISE_SIZES[..6], |n| n) {
        let mut p = uniform(&mut rng, n, -1.0, 1.0);
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let (mut pg, mut mg, mut vg) =
            (gpu.upload(&p)?, gpu.zeros::<f32>(n)?, gpu.zeros::<f32>(n)?);
        let mut p16 = gpu.alloc::<bf16>(n)?;
        for t in 1..=STEPS {
            let g = round::<G>(&uniform(&mut rng, n, -0.1, 0.1));
            cpu::step(isa(), &mut p, &g, &mut m, &mut v, &HP, t, WEIGHT_DECAY)?;
            let gg = up::<G>(gpu, &g)?;
            if copy {
                cuda::adamw::step_with_bf16_copy(
                    gpu,
                    &mut pg,
                    &mut p16,
                    &gg,
                    &mut mg,
                    &mut vg,
                    &HP,
                    t,
                    WEIGHT_DECAY,
                )?;
            } else {
                cuda::adamw::step(gpu, &mut pg, &gg, &mut mg, &mut vg, &HP, t, WEIGHT_DECAY)?;
            }
            let what = format!("{} grads n={n} step {t}", G::NAME);
            // Parameters move by ~lr per step: compare them with an error relative to the
            // update, not to the weights, so a wrong update cannot hide.
            let moved: Vec<f32> = pg.to_vec()?.iter().zip(&p).map(|(a, b)| a - b).collect();
            let scale = HP.lr as f32;
            let rel: Vec<f32> = moved.iter().map(|d| d / scale).collect();
            worst.close(
                &format!("{what} params (in units of lr)"),
                &rel,
                &vec![0.0; n],
                5e-3,
            )?;
            worst.close(&format!("{what} m"), &mg.to_vec()?, &m, F32_TOL)?;
            worst.close(&format!("{what} v"), &vg.to_vec()?, &v, F32_TOL)?;
            if copy {
                let got: Vec<f32> = p16.to_vec()?.into_iter().map(f32::from).collect();
                worst.close(
                    &format!("{what} bf16 copy"),
                    &got,
                    &round::<bf16>(&pg.to_vec()?),
                    0.0,
                )?;
            }
        }
    }
    Ok(worst.get())
}

fn step<G: Elem>(gpu: &Gpu) -> Res<f64> {
    steps::<G>(gpu, false)
}

fn step_with_bf16_copy(gpu: &Gpu) -> Res<String> {
    let e = steps::<f32>(gpu, true)?;
    Ok(format!(
        "f32 grads, err {e:.1e}; bf16 copy bit-identical to the rounded f32 weights"
    ))
}

fn sum_of_squares<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(81);
    let mut worst = Worst::default();
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        let x = round::<T>(&uniform(&mut rng, n, -2.0, 2.0));
        let want = cpu::sum_of_squares(isa(), &x);
        let xg = up::<T>(gpu, &x)?;
        let got = cuda::adamw::sum_of_squares(gpu, &xg)?;
        let e = (got - want).abs() / want.abs().max(f64::MIN_POSITIVE);
        if e > 1e-10 {
            return Err(format!("{} n={n}: {got} vs CPU {want} (rel err {e:.2e})", T::NAME).into());
        }
        worst.record(e);
        if cuda::adamw::sum_of_squares(gpu, &xg)?.to_bits() != got.to_bits() {
            return Err(format!("{} n={n}: two runs differ", T::NAME).into());
        }
    }
    // Several buffers at once (as the global gradient norm of a model's tensors, empty
    // ones included) give the sum of all of them.
    let parts: Vec<Vec<f32>> = [3000, 0, 1, 70_000, 257]
        .iter()
        .map(|&n| round::<T>(&uniform(&mut rng, n, -2.0, 2.0)))
        .collect();
    let want: f64 = parts.iter().map(|x| cpu::sum_of_squares(isa(), x)).sum();
    let bufs = parts
        .iter()
        .map(|x| up::<T>(gpu, x))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<_> = bufs.iter().collect();
    let got = cuda::adamw::sum_of_squares_all(gpu, &refs)?;
    let e = (got - want).abs() / want.abs();
    if e > 1e-10 {
        return Err(format!("{} sum_of_squares_all: {got} vs CPU {want}", T::NAME).into());
    }
    worst.record(e);
    Ok(worst.get())
}

fn scale<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(82);
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        let x = round::<T>(&uniform(&mut rng, n, -2.0, 2.0));
        let mut want = x.clone();
        cpu::scale(isa(), &mut want, 0.37)?;
        let mut xg = up::<T>(gpu, &x)?;
        cuda::adamw::scale(gpu, &mut xg, 0.37)?;
        exact(
            &format!("{} n={n}", T::NAME),
            &down(&xg)?,
            &round::<T>(&want),
        )?;
    }
    Ok(0.0)
}
