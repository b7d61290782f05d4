//! Residual add: GPU vs `cpu::residual`. The same single f32 add per element: f32 results
//! must be bit-identical; bf16 results are the f32 sums rounded once, so also exact
//! against the CPU's f32 result rounded to bf16.

use gpt2_kernels::cpu::residual as cpu;
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;
use crate::gelu::ELEMENTWISE_SIZES;

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "residual::forward",
            run: |g| both(g, 0.0, (forward::<f32>, forward::<bf16>)),
        },
        Check {
            name: "residual::backward",
            run: |g| both(g, 0.0, (backward::<f32>, backward::<bf16>)),
        },
    ]
}

fn forward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(40);
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        let a = round::<T>(&uniform(&mut rng, n, -4.0, 4.0));
        let b = round::<T>(&uniform(&mut rng, n, -4.0, 4.0));
        let mut want = vec![0.0; n];
        cpu::forward(isa(), &mut want, &a, &b)?;
        let mut out = gpu.alloc::<T>(n)?;
        cuda::residual::forward(gpu, &mut out, &up::<T>(gpu, &a)?, &up::<T>(gpu, &b)?)?;
        exact(
            &format!("{} n={n}", T::NAME),
            &down(&out)?,
            &round::<T>(&want),
        )?;
    }
    Ok(0.0)
}

fn backward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(41);
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        let g = round::<T>(&uniform(&mut rng, n, -1.0, 1.0));
        let (da0, db0) = (
            round::<T>(&uniform(&mut rng, n, -1.0, 1.0)),
            round::<T>(&uniform(&mut rng, n, -1.0, 1.0)),
        );
        let (mut want_a, mut want_b) = (da0.clone(), db0.clone());
        cpu::backward(isa(), &mut want_a, &mut want_b, &g)?;
        let (mut da, mut db) = (up::<T>(gpu, &da0)?, up::<T>(gpu, &db0)?);
        cuda::residual::backward(gpu, &mut da, &mut db, &up::<T>(gpu, &g)?)?;
        exact(
            &format!("{} n={n} da", T::NAME),
            &down(&da)?,
            &round::<T>(&want_a),
        )?;
        exact(
            &format!("{} n={n} db", T::NAME),
            &down(&db)?,
            &round::<T>(&want_b),
        )?;
    }
    Ok(0.0)
}
