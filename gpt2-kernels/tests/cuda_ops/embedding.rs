//! Embedding: GPU vs `cpu::embedding`. Both add the same f32 values in the same order
//! (the backward adds each table row's contributions in increasing `n`), so f32 results
//! are bit-identical; bf16 tables accumulate in f32 and round once per row element. The
//! forward also with the ids on the device (`forward_at`), including ids past the tables.

use gpt2_kernels::cpu::embedding as cpu;
use gpt2_kernels::cuda::{self, Gpu};
use half::bf16;

use crate::common::*;

/// `(N, C, V, maxT)`: single rows and columns, odd sizes, many repeats of few ids, and
/// a GPT-2-like batch (more distinct ids than one grid row of blocks could hold is not
/// needed: the groups are the grid's x dimension).
const SIZES: [(usize, usize, usize, usize); 5] = [
    (1, 1, 1, 1),
    (3, 7, 5, 4),
    (17, 65, 3, 17),
    (300, 127, 1000, 64),
    (2048, 768, 50257, 1024),
];

pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "embedding::forward",
            run: |g| both(g, 0.0, (forward::<f32>, forward::<bf16>)),
        },
        Check {
            name: "embedding::backward",
            run: |g| both(g, F32_TOL, (backward::<f32>, backward::<bf16>)),
        },
    ]
}

struct Case {
    tokens: Vec<u32>,
    positions: Vec<u32>,
    wte: Vec<f32>,
    wpe: Vec<f32>,
}

fn case<T: Elem>(rng: &mut Rng, (n, c, v, max_t): (usize, usize, usize, usize)) -> Case {
    Case {
        tokens: indices(rng, n, v),
        positions: (0..n).map(|i| (i % max_t) as u32).collect(),
        wte: round::<T>(&uniform(rng, v * c, -1.0, 1.0)),
        wpe: round::<T>(&uniform(rng, max_t * c, -1.0, 1.0)),
    }
}

fn forward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(10);
    for size in cases(&SIZES, |(n, c, v, _)| n.max(v) * c) {
        let (n, c, ..) = size;
        let k = case::<T>(&mut rng, size);
        let mut want = vec![0.0; n * c];
        cpu::forward(isa(), &mut want, &k.tokens, &k.positions, &k.wte, &k.wpe, c)?;
        let mut out = gpu.alloc::<T>(n * c)?;
        let (wte, wpe) = (up::<T>(gpu, &k.wte)?, up::<T>(gpu, &k.wpe)?);
        cuda::embedding::forward(gpu, &mut out, &k.tokens, &k.positions, &wte, &wpe, c)?;
        exact(
            &format!("{} {size:?}", T::NAME),
            &down(&out)?,
            &round::<T>(&want),
        )?;
        // The same with the ids already on the device (graph replays), and a row whose
        // ids are past the tables: NaN there, never a read out of bounds.
        let (tokens, positions) = (gpu.upload(&k.tokens)?, gpu.upload(&k.positions)?);
        cuda::embedding::forward_at(gpu, &mut out, &tokens, &positions, &wte, &wpe, c)?;
        exact(
            &format!("{} {size:?} forward_at", T::NAME),
            &down(&out)?,
            &round::<T>(&want),
        )?;
        let (v, max_t) = (size.2 as u32, size.3 as u32);
        let mut bad = gpu.alloc::<T>(2 * c)?;
        let (tokens, positions) = (gpu.upload(&[v, 0])?, gpu.upload(&[0, max_t])?);
        cuda::embedding::forward_at(gpu, &mut bad, &tokens, &positions, &wte, &wpe, c)?;
        if !down(&bad)?.iter().all(|x| x.is_nan()) {
            return Err(
                format!("{} {size:?}: ids past the tables did not give NaN", T::NAME).into(),
            );
        }
    }
    Ok(0.0)
}

fn backward<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(11);
    let mut worst = Worst::default();
    for size in cases(&SIZES, |(n, c, v, _)| n.max(v) * c) {
        let (n, c, v, max_t) = size;
        let k = case::<T>(&mut rng, size);
        let dout = round::<T>(&uniform(&mut rng, n * c, -1.0, 1.0));
        // Accumulate onto non-zero gradients, as backward passes do.
        let (dwte0, dwpe0) = (k.wte.clone(), k.wpe.clone());
        let (mut want_te, mut want_pe) = (dwte0.clone(), dwpe0.clone());
        cpu::backward(
            isa(),
            &mut want_te,
            &mut want_pe,
            &dout,
            &k.tokens,
            &k.positions,
            c,
        )?;
        let dout_g = up::<T>(gpu, &dout)?;
        let run = || -> Res<Vec<f32>> {
            let (mut dwte, mut dwpe) = (up::<T>(gpu, &dwte0)?, up::<T>(gpu, &dwpe0)?);
            cuda::embedding::backward(
                gpu,
                &mut dwte,
                &mut dwpe,
                &dout_g,
                &k.tokens,
                &k.positions,
                c,
            )?;
            Ok([down(&dwte)?, down(&dwpe)?].concat())
        };
        let got = run()?;
        let what = format!("{size:?}");
        let (te, pe) = got.split_at(v * c);
        debug_assert_eq!(pe.len(), max_t * c);
        if T::IS_BF16 {
            worst.close_as::<T>(&format!("{what} dwte"), te, &want_te, 0.0)?;
            worst.close_as::<T>(&format!("{what} dwpe"), pe, &want_pe, 0.0)?;
        } else {
            exact(&format!("f32 {what} dwte"), te, &want_te)?;
            exact(&format!("f32 {what} dwpe"), pe, &want_pe)?;
        }
        deterministic(&format!("{} {what}", T::NAME), run)?;
    }
    Ok(worst.get())
}
