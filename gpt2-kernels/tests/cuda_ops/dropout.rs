//! Dropout: GPU vs `cpu::dropout`. The mask must be the CPU's bit for bit (the kernels
//! port `rng.rs`), including counters that wrap past `u64::MAX`; kept f32 values are the
//! same `x · scale`, so f32 results are bit-identical (bf16: the f32 result rounded).

use gpt2_kernels::cpu::dropout as cpu;
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;
use crate::gelu::ELEMENTWISE_SIZES;

/// `(p, seed, offset)`: no dropout, typical rates, a large offset, a wrapping counter.
const CASES: [(f32, u64, u64); 4] = [
    (0.0, 1, 0),
    (0.1, 7, 1000),
    (0.5, 42, 1 << 40),
    (0.9, 3, u64::MAX - 100),
];

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "dropout::forward",
            run: |g| both(g, 0.0, (forward::<f32>, forward::<bf16>)),
        },
        Check {
            name: "dropout::backward",
            run: |g| both(g, 0.0, (backward::<f32>, backward::<bf16>)),
        },
    ]
}

fn forward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(50);
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        for (p, seed, offset) in CASES {
            // Values in [0.5, 1.5): never zero, so a zero output means a dropped element.
            let x = round::<T>(&uniform(&mut rng, n, 0.5, 1.5));
            let mut want = vec![0.0; n];
            cpu::forward(isa(), &mut want, &x, p, seed, offset)?;
            let mut out = gpu.alloc::<T>(n)?;
            cuda::dropout::forward(gpu, &mut out, &up::<T>(gpu, &x)?, p, seed, offset)?;
            let what = format!("{} n={n} p={p} offset={offset}", T::NAME);
            exact(&what, &down(&out)?, &round::<T>(&want))?;
        }
    }
    Ok(0.0)
}

fn backward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(51);
    for n in cases(&ELEMENTWISE_SIZES, |n| n) {
        for (p, seed, offset) in CASES {
            let g = round::<T>(&uniform(&mut rng, n, -1.0, 1.0));
            let d0 = round::<T>(&uniform(&mut rng, n, -1.0, 1.0));
            let mut want = d0.clone();
            cpu::backward(isa(), &mut want, &g, p, seed, offset)?;
            let mut d = up::<T>(gpu, &d0)?;
            cuda::dropout::backward(gpu, &mut d, &up::<T>(gpu, &g)?, p, seed, offset)?;
            let what = format!("{} n={n} p={p} offset={offset}", T::NAME);
            exact(&what, &down(&d)?, &round::<T>(&want))?;
        }
    }
    Ok(0.0)
}
