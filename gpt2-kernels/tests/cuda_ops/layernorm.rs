//! Layernorm: GPU vs `cpu::layernorm`. Row sums run in another order (warp butterflies),
//! so results agree within tolerance; the backward is also run twice and must be
//! bitwise reproducible (its dweight/dbias partials are added in a fixed order).

use gpt2_kernels::cpu::layernorm as cpu;
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;

/// `(N, C)`: one row or column, odd sizes, exactly one and just over one backward group
/// of 32 rows, and GPT-2's width.
const SIZES: [(usize, usize); 8] = [
    (1, 1),
    (1, 768),
    (3, 7),
    (17, 65),
    (32, 127),
    (33, 33),
    (100, 1031),
    (257, 768),
];

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "layernorm::forward",
            run: |g| both(g, F32_TOL, (forward::<f32>, forward::<bf16>)),
        },
        Check {
            name: "layernorm::backward",
            run: |g| both(g, F32_TOL, (backward::<f32>, backward::<bf16>)),
        },
    ]
}

struct Case {
    inp: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

fn case<T: Elem>(rng: &mut Rng, (n, c): (usize, usize)) -> Case {
    // A non-zero mean per row, as activations in a residual stream have.
    let mut inp = uniform(rng, n * c, -2.0, 2.0);
    for row in inp.chunks_mut(c) {
        let shift = 3.0 * rng.next_f32();
        row.iter_mut().for_each(|x| *x += shift);
    }
    Case {
        inp: round::<T>(&inp),
        weight: round::<T>(&uniform(rng, c, 0.5, 1.5)),
        bias: round::<T>(&uniform(rng, c, -0.5, 0.5)),
    }
}

/// The CPU forward: `(out, mean, rstd)`.
fn cpu_forward(k: &Case, n: usize) -> Res<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let mut out = vec![0.0; k.inp.len()];
    let (mut mean, mut rstd) = (vec![0.0; n], vec![0.0; n]);
    cpu::forward(
        isa(),
        &mut out,
        &mut mean,
        &mut rstd,
        &k.inp,
        &k.weight,
        &k.bias,
    )?;
    Ok((out, mean, rstd))
}

fn forward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(20);
    let mut worst = Worst::default();
    for (n, c) in cases(&SIZES, |(n, c)| n * c) {
        let k = case::<T>(&mut rng, (n, c));
        let (want, want_mean, want_rstd) = cpu_forward(&k, n)?;
        let mut out = gpu.alloc::<T>(n * c)?;
        let (mut mean, mut rstd) = (gpu.alloc::<f32>(n)?, gpu.alloc::<f32>(n)?);
        let (inp, w, b) = (
            up::<T>(gpu, &k.inp)?,
            up::<T>(gpu, &k.weight)?,
            up::<T>(gpu, &k.bias)?,
        );
        cuda::layernorm::forward(gpu, &mut out, &mut mean, &mut rstd, &inp, &w, &b)?;
        let what = format!("n={n} c={c}");
        worst.close_as::<T>(
            &format!("{what} out"),
            &down(&out)?,
            &round::<T>(&want),
            F32_TOL,
        )?;
        // Statistics are f32 for both element types.
        worst.close(
            &format!("{} {what} mean", T::NAME),
            &mean.to_vec()?,
            &want_mean,
            F32_TOL,
        )?;
        worst.close(
            &format!("{} {what} rstd", T::NAME),
            &rstd.to_vec()?,
            &want_rstd,
            F32_TOL,
        )?;
    }
    Ok(worst.get())
}

fn backward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(21);
    let mut worst = Worst::default();
    for (n, c) in cases(&SIZES, |(n, c)| n * c) {
        let k = case::<T>(&mut rng, (n, c));
        let (_, mean, rstd) = cpu_forward(&k, n)?;
        let dout = round::<T>(&uniform(&mut rng, n * c, -1.0, 1.0));
        let dinp0 = round::<T>(&uniform(&mut rng, n * c, -1.0, 1.0));
        let (dw0, db0) = (
            round::<T>(&uniform(&mut rng, c, -1.0, 1.0)),
            round::<T>(&uniform(&mut rng, c, -1.0, 1.0)),
        );
        let (mut want_di, mut want_dw, mut want_db) = (dinp0.clone(), dw0.clone(), db0.clone());
        cpu::backward(
            isa(),
            &mut want_di,
            &mut want_dw,
            &mut want_db,
            &dout,
            &k.inp,
            &k.weight,
            &mean,
            &rstd,
        )?;

        let (inp, w, g) = (
            up::<T>(gpu, &k.inp)?,
            up::<T>(gpu, &k.weight)?,
            up::<T>(gpu, &dout)?,
        );
        let (mean_g, rstd_g) = (gpu.upload(&mean)?, gpu.upload(&rstd)?);
        let run = || -> Res<Vec<f32>> {
            let (mut di, mut dw, mut db) = (
                up::<T>(gpu, &dinp0)?,
                up::<T>(gpu, &dw0)?,
                up::<T>(gpu, &db0)?,
            );
            cuda::layernorm::backward(
                gpu, &mut di, &mut dw, &mut db, &g, &inp, &w, &mean_g, &rstd_g,
            )?;
            Ok([down(&di)?, down(&dw)?, down(&db)?].concat())
        };
        let got = run()?;
        let (di, rest) = got.split_at(n * c);
        let (dw, db) = rest.split_at(c);
        let what = format!("n={n} c={c}");
        worst.close_as::<T>(&format!("{what} dinp"), di, &want_di, F32_TOL)?;
        worst.close_as::<T>(&format!("{what} dweight"), dw, &want_dw, F32_TOL)?;
        worst.close_as::<T>(&format!("{what} dbias"), db, &want_db, F32_TOL)?;
        deterministic(&format!("{} {what}", T::NAME), run)?;
    }
    Ok(worst.get())
}
