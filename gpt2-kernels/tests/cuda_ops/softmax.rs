//! Softmax: GPU vs `cpu::softmax`, on rows from 1 to GPT-2's vocabulary; reductions
//! run in another order, so within tolerance, and bitwise reproducible run to run.

use gpt2_kernels::cpu::softmax as cpu;
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;

/// `(N, V)`: a single element, short rows, rows of one and several block widths, and
/// GPT-2's vocabulary.
pub const ROWS: [(usize, usize); 7] = [
    (1, 1),
    (3, 5),
    (7, 33),
    (5, 256),
    (3, 1000),
    (2, 4097),
    (3, 50257),
];

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "softmax::forward",
            run: |g| both(g, F32_TOL, (forward::<f32>, forward::<bf16>)),
        },
        Check {
            name: "softmax::backward",
            run: |g| both(g, F32_TOL, (backward::<f32>, backward::<bf16>)),
        },
    ]
}

fn forward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(60);
    let mut worst = Worst::default();
    for (n, v) in cases(&ROWS, |(n, v)| n * v) {
        let x = round::<T>(&uniform(&mut rng, n * v, -10.0, 10.0));
        let mut want = vec![0.0; n * v];
        cpu::forward(isa(), &mut want, &x, v)?;
        let xg = up::<T>(gpu, &x)?;
        let run = || -> Res<Vec<f32>> {
            let mut out = gpu.alloc::<T>(n * v)?;
            cuda::softmax::forward(gpu, &mut out, &xg, v)?;
            Ok(down(&out)?)
        };
        worst.close_as::<T>(
            &format!("n={n} v={v}"),
            &run()?,
            &round::<T>(&want),
            F32_TOL,
        )?;
        deterministic(&format!("{} n={n} v={v}", T::NAME), run)?;
    }
    Ok(worst.get())
}

fn backward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(61);
    let mut worst = Worst::default();
    for (n, v) in cases(&ROWS, |(n, v)| n * v) {
        let x = uniform(&mut rng, n * v, -3.0, 3.0);
        let mut out = vec![0.0; n * v];
        cpu::forward(isa(), &mut out, &x, v)?;
        let out = round::<T>(&out);
        let dout = round::<T>(&uniform(&mut rng, n * v, -1.0, 1.0));
        let d0 = round::<T>(&uniform(&mut rng, n * v, -1e-3, 1e-3));
        let mut want = d0.clone();
        cpu::backward(isa(), &mut want, &out, &dout, v)?;
        let (out_g, dout_g) = (up::<T>(gpu, &out)?, up::<T>(gpu, &dout)?);
        let run = || -> Res<Vec<f32>> {
            let mut d = up::<T>(gpu, &d0)?;
            cuda::softmax::backward(gpu, &mut d, &out_g, &dout_g, v)?;
            Ok(down(&d)?)
        };
        worst.close_as::<T>(&format!("n={n} v={v}"), &run()?, &want, F32_TOL)?;
        deterministic(&format!("{} n={n} v={v}", T::NAME), run)?;
    }
    Ok(worst.get())
}
