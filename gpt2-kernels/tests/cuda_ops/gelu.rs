//! GELU: GPU vs `cpu::gelu`.

use gpt2_kernels::cpu::gelu as cpu;
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;

/// Elementwise sizes: around the block size, and past one grid of `2^16 · 256` threads
/// (so the grid-stride loop runs more than once).
pub const ELEMENTWISE_SIZES: [usize; 7] = [1, 3, 255, 257, 4099, 65_537, (1 << 24) + 3];

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "gelu::forward",
            run: |g| both(g, F32_TOL, (forward::<f32>, forward::<bf16>)),
        },
        Check {
            name: "gelu::backward",
            run: |g| both(g, F32_TOL, (backward::<f32>, backward::<bf16>)),
        },
    ]
}

fn forward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(30);
    let mut worst = Worst::default();
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        let x = round::<T>(&uniform(&mut rng, n, -6.0, 6.0));
        let mut want = vec![0.0; n];
        cpu::forward(isa(), &mut want, &x)?;
        let mut out = gpu.alloc::<T>(n)?;
        cuda::gelu::forward(gpu, &mut out, &up::<T>(gpu, &x)?)?;
        worst.close_as::<T>(&format!("n={n}"), &down(&out)?, &round::<T>(&want), F32_TOL)?;
    }
    Ok(worst.get())
}

fn backward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(31);
    let mut worst = Worst::default();
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        let x = round::<T>(&uniform(&mut rng, n, -6.0, 6.0));
        let g = round::<T>(&uniform(&mut rng, n, -1.0, 1.0));
        let d0 = round::<T>(&uniform(&mut rng, n, -1.0, 1.0));
        let mut want = d0.clone();
        cpu::backward(isa(), &mut want, &x, &g)?;
        let mut d = up::<T>(gpu, &d0)?;
        cuda::gelu::backward(gpu, &mut d, &up::<T>(gpu, &x)?, &up::<T>(gpu, &g)?)?;
        worst.close_as::<T>(&format!("n={n}"), &down(&d)?, &want, F32_TOL)?;
    }
    Ok(worst.get())
}
