//! Fused softmax + cross-entropy: GPU vs `cpu::crossentropy`, with padded rows
//! (`Vp > V`) whose padding must be ignored by the loss and zeroed by the backward.

use gpt2_kernels::cpu::crossentropy as cpu;
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;

/// `(N, V, Vp)`: no padding, some padding, llm.c's GPT-2 padding.
const SIZES: [(usize, usize, usize); 6] = [
    (1, 1, 1),
    (3, 5, 8),
    (7, 33, 33),
    (17, 1000, 1024),
    (4, 4097, 4224),
    (3, 50257, 50304),
];

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "crossentropy::forward",
            run: |g| both(g, F32_TOL, (forward::<f32>, forward::<bf16>)),
        },
        Check {
            name: "crossentropy::forward_backward",
            run: |g| {
                both(
                    g,
                    F32_TOL,
                    (forward_backward::<f32>, forward_backward::<bf16>),
                )
            },
        },
    ]
}

/// Logits (garbage, even NaN-free huge values, in the padding) and targets `< v`.
fn case<T: Elem>(rng: &mut Rng, (n, v, vp): (usize, usize, usize)) -> (Vec<f32>, Vec<u32>) {
    let mut logits = uniform(rng, n * vp, -10.0, 10.0);
    for row in logits.chunks_mut(vp) {
        row[v..].fill(1e30);
    }
    (round::<T>(&logits), indices(rng, n, v))
}

fn forward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(70);
    let mut worst = Worst::default();
    for size in cases(&SIZES, |(n, _, vp)| n * vp) {
        let (n, v, _) = size;
        let (logits, targets) = case::<T>(&mut rng, size);
        let mut want = vec![0.0; n];
        cpu::forward(isa(), &mut want, &logits, &targets, v)?;
        let mut losses = gpu.alloc::<f32>(n)?;
        cuda::crossentropy::forward(gpu, &mut losses, &up::<T>(gpu, &logits)?, &targets, v)?;
        // Losses are f32 for both element types, from the same bf16 logits.
        worst.close(
            &format!("{} {size:?}", T::NAME),
            &losses.to_vec()?,
            &want,
            F32_TOL,
        )?;
    }
    Ok(worst.get())
}

fn forward_backward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(71);
    let mut worst = Worst::default();
    for size in cases(&SIZES, |(n, _, vp)| n * vp) {
        let (n, v, _) = size;
        let (logits, targets) = case::<T>(&mut rng, size);
        let dloss = 1.0 / n as f32;
        let (mut want_losses, mut want_dlogits) = (vec![0.0; n], logits.clone());
        cpu::forward_backward(
            isa(),
            &mut want_losses,
            &mut want_dlogits,
            &targets,
            v,
            dloss,
        )?;
        let run = || -> Res<Vec<f32>> {
            let (mut losses, mut dlogits) = (gpu.alloc::<f32>(n)?, up::<T>(gpu, &logits)?);
            cuda::crossentropy::forward_backward(
                gpu,
                &mut losses,
                &mut dlogits,
                &targets,
                v,
                dloss,
            )?;
            Ok([losses.to_vec()?, down(&dlogits)?].concat())
        };
        let got = run()?;
        let (losses, dlogits) = got.split_at(n);
        worst.close(
            &format!("{} {size:?} losses", T::NAME),
            losses,
            &want_losses,
            F32_TOL,
        )?;
        worst.close_as::<T>(
            &format!("{size:?} dlogits"),
            dlogits,
            &round::<T>(&want_dlogits),
            F32_TOL,
        )?;
        deterministic(&format!("{} {size:?}", T::NAME), run)?;
    }
    Ok(worst.get())
}
