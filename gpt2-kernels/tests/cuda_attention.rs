//! GPU tests of attention: the flash kernels (bf16, head sizes 32, 64, 128) and the row
//! kernels (f32 and bf16, any head size) against the CPU twin (`cpu::attention`) on
//! sequence lengths that are not multiples of the blocks; the backward against the CPU's
//! backward given the same forward outputs, and run twice (bitwise reproducible); the
//! decode kernel against `forward_cached` with caches longer than the sequence, and at a
//! position held on the device (`append_and_attend_at`); errors.
//! Outputs are poisoned with NaN before each run.
//!
//! Tolerances (`max|gpu − cpu| / max|cpu|`): f32 within `F32_TOL`; bf16 within
//! `BF16_TOL`: both sides see the same bf16-rounded qkv; the GPU rounds the outputs to
//! bf16, and flash also rounds the probabilities P (and dS in the backward) to bf16 for
//! the tensor cores, as FlashAttention does (2⁻⁹ relative each, averaging out over keys).
//! `lse` is f32 on both sides: within `LSE_TOL`.
//!
//! Same binary conventions as `cuda_ops` (SKIP lines without a GPU, filters,
//! `GPT2_CUDA_QUICK`).

#[path = "cuda_ops/common.rs"]
#[allow(dead_code)] // the helpers of all GPU tests; this binary uses some
mod common;

use std::process::ExitCode;

use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::attention as cpu;
use gpt2_kernels::cuda::Gpu;
use gpt2_kernels::cuda::attention::{self, Version};
use half::bf16;

use common::*;

/// `lse` tolerance: f32 sums of exponentials in another order (and exp2 in flash).
const LSE_TOL: f64 = 1e-4;

/// `(B, T, NH, HS)`.
type Dims = (usize, usize, usize, usize);

/// One token, a partial block, several blocks with a partial last one, GPT-2's heads.
const FLASH: [Dims; 6] = [
    (1, 1, 2, 64),
    (2, 100, 2, 32),
    (1, 200, 3, 64),
    (2, 129, 2, 128),
    (1, 1000, 2, 64),
    (2, 256, 12, 64),
];
/// The row kernels also take other head sizes.
const ROWS: [Dims; 4] = [
    (1, 1, 1, 8),
    (2, 17, 3, 48),
    (1, 100, 2, 64),
    (1, 70, 2, 200),
];

fn main() -> ExitCode {
    let checks = vec![
        Check {
            name: "attention::flash forward",
            run: |g| forward::<bf16>(g, Version::Flash, &FLASH).map(|e| e.1),
        },
        Check {
            name: "attention::flash backward",
            run: |g| backward::<bf16>(g, Version::Flash, &FLASH).map(|e| e.1),
        },
        Check {
            name: "attention::rows forward",
            run: |g| {
                both(
                    g,
                    F32_TOL,
                    (
                        |g| forward::<f32>(g, Version::Rows, &ROWS).map(|e| e.0),
                        |g| forward::<bf16>(g, Version::Rows, &ROWS).map(|e| e.0),
                    ),
                )
            },
        },
        Check {
            name: "attention::rows backward",
            run: |g| {
                both(
                    g,
                    F32_TOL,
                    (
                        |g| backward::<f32>(g, Version::Rows, &ROWS).map(|e| e.0),
                        |g| backward::<bf16>(g, Version::Rows, &ROWS).map(|e| e.0),
                    ),
                )
            },
        },
        Check {
            name: "attention::forward_cached",
            run: |g| both(g, F32_TOL, (cached::<f32>, cached::<bf16>)),
        },
        Check {
            name: "attention::append_and_attend_at",
            run: |g| both(g, F32_TOL, (append_at::<f32>, append_at::<bf16>)),
        },
        Check {
            name: "attention::errors",
            run: errors,
        },
    ];
    common::run("cuda_attention", checks)
}

/// qkv of `(B, T, NH, HS)` rounded through `T`: scores of a few units (peaked rows).
fn qkv<T: Elem>(rng: &mut Rng, (b, t, nh, hs): Dims) -> Vec<f32> {
    round::<T>(&uniform(rng, b * t * 3 * nh * hs, -2.0, 2.0))
}

/// The CPU forward: `(out, lse)`.
fn cpu_forward(x: &[f32], (b, t, nh, hs): Dims) -> Res<(Vec<f32>, Vec<f32>)> {
    let (mut out, mut lse) = (vec![0.0; b * t * nh * hs], vec![0.0; b * nh * t]);
    cpu::forward(isa(), &mut out, &mut lse, x, b, t, nh)?;
    Ok((out, lse))
}

fn selected(shapes: &[Dims]) -> Vec<Dims> {
    cases(shapes, |(b, t, nh, hs)| b * t * nh * hs * 3)
}

/// Forward of every shape on `version`; returns `(worst error, summary)`.
fn forward<T: Elem>(gpu: &Gpu, version: Version, shapes: &[Dims]) -> Res<(f64, String)> {
    let mut rng = Rng::new(70);
    let mut worst = Worst::default();
    let shapes = selected(shapes);
    for &(b, t, nh, hs) in &shapes {
        let x = qkv::<T>(&mut rng, (b, t, nh, hs));
        let (want, want_lse) = cpu_forward(&x, (b, t, nh, hs))?;
        let mut out = up::<T>(gpu, &vec![f32::NAN; want.len()])?;
        let mut lse = gpu.upload(&vec![f32::NAN; want_lse.len()])?;
        attention::forward(
            gpu,
            version,
            &mut out,
            &mut lse,
            &up::<T>(gpu, &x)?,
            b,
            t,
            nh,
        )?;
        let what = format!("{} b={b} t={t} nh={nh} hs={hs}", T::NAME);
        worst.close(&format!("{what} out"), &down(&out)?, &want, T::tol(F32_TOL))?;
        worst.close(&format!("{what} lse"), &lse.to_vec()?, &want_lse, LSE_TOL)?;
    }
    let e = worst.get();
    Ok((
        e,
        format!(
            "{} err {e:.1e} (tol {:.0e}), {} shapes",
            T::NAME,
            T::tol(F32_TOL),
            shapes.len()
        ),
    ))
}

/// Backward of every shape on `version`, given the CPU forward's `out` (rounded through
/// `T`) and `lse`; twice, bitwise equal.
fn backward<T: Elem>(gpu: &Gpu, version: Version, shapes: &[Dims]) -> Res<(f64, String)> {
    let mut rng = Rng::new(71);
    let mut worst = Worst::default();
    let shapes = selected(shapes);
    for &(b, t, nh, hs) in &shapes {
        let x = qkv::<T>(&mut rng, (b, t, nh, hs));
        let (out, lse) = cpu_forward(&x, (b, t, nh, hs))?;
        let out = round::<T>(&out);
        let dout = round::<T>(&uniform(&mut rng, out.len(), -1.0, 1.0));
        let dqkv0 = round::<T>(&uniform(&mut rng, x.len(), -1.0, 1.0));
        let mut want = dqkv0.clone();
        cpu::backward(isa(), &mut want, &dout, &x, &out, &lse, b, t, nh)?;
        let (xg, og, dg, lg) = (
            up::<T>(gpu, &x)?,
            up::<T>(gpu, &out)?,
            up::<T>(gpu, &dout)?,
            gpu.upload(&lse)?,
        );
        let what = format!("{} b={b} t={t} nh={nh} hs={hs}", T::NAME);
        let run = || -> Res<Vec<f32>> {
            let mut dqkv = up::<T>(gpu, &dqkv0)?;
            attention::backward(gpu, version, &mut dqkv, &dg, &xg, &og, &lg, b, t, nh)?;
            Ok(down(&dqkv)?)
        };
        worst.close(&format!("{what} dqkv"), &run()?, &want, T::tol(F32_TOL))?;
        deterministic(&what, run)?;
    }
    let e = worst.get();
    Ok((
        e,
        format!(
            "{} err {e:.1e} (tol {:.0e}), {} shapes, bitwise reproducible",
            T::NAME,
            T::tol(F32_TOL),
            shapes.len()
        ),
    ))
}

/// Decoding: `tq` new queries at the end of `kv_len` cached positions; caches allocated
/// for `max_len` positions (the tail is garbage the kernel must not read as keys).
fn cached<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(72);
    let mut worst = Worst::default();
    for (kv_len, tq, nh, hs, max_len) in [
        (1, 1, 1, 64, 1),
        (37, 1, 12, 64, 64),
        (300, 5, 2, 64, 1024),
        (50, 2, 3, 48, 60),
    ] {
        let c = nh * hs;
        // Queries as rows of a (tq, 3C) qkv (q_stride 3C), caches as rows of C.
        let q = round::<T>(&uniform(&mut rng, tq * 3 * c, -2.0, 2.0));
        let k_cache = round::<T>(&uniform(&mut rng, max_len * c, -2.0, 2.0));
        let v_cache = round::<T>(&uniform(&mut rng, max_len * c, -2.0, 2.0));
        let mut want = vec![0.0; tq * c];
        cpu::forward_cached(
            isa(),
            &mut want,
            &q,
            3 * c,
            &k_cache,
            &v_cache,
            kv_len,
            c,
            nh,
        )?;
        let mut out = up::<T>(gpu, &vec![f32::NAN; tq * c])?;
        let (qg, kg, vg) = (
            up::<T>(gpu, &q)?,
            up::<T>(gpu, &k_cache)?,
            up::<T>(gpu, &v_cache)?,
        );
        attention::forward_cached(gpu, &mut out, &qg, 3 * c, &kg, &vg, kv_len, c, nh)?;
        let what = format!("{} kv_len={kv_len} tq={tq} nh={nh} hs={hs}", T::NAME);
        worst.close_as::<T>(&what, &down(&out)?, &want, F32_TOL)?;
    }
    Ok(worst.get())
}

/// A graph replay's step: the new qkv row appended at a position held on the device,
/// then its attention, against `cpu::forward_cached` on the appended cache; the rest of
/// the cache untouched. A position past the cache writes nothing and gives NaN.
fn append_at<T: Elem>(gpu: &Gpu) -> Res<f64> {
    let mut rng = Rng::new(73);
    let mut worst = Worst::default();
    for (pos, nh, hs, cap) in [(0, 2, 64, 4), (36, 12, 64, 64), (299, 2, 48, 1024)] {
        let (c, c3) = (nh * hs, 3 * nh * hs);
        let row = round::<T>(&uniform(&mut rng, c3, -2.0, 2.0));
        let mut cache = round::<T>(&uniform(&mut rng, cap * c3, -2.0, 2.0));
        cache[(pos + 1) * c3..].fill(f32::NAN); // past the new row: never read
        let mut want_cache = cache.clone();
        want_cache[pos * c3..(pos + 1) * c3].copy_from_slice(&row);
        let part = |p: usize| -> Vec<f32> {
            (0..=pos)
                .flat_map(|j| want_cache[j * c3 + p * c..j * c3 + (p + 1) * c].to_vec())
                .collect()
        };
        let mut want = vec![0.0; c];
        cpu::forward_cached(
            isa(),
            &mut want,
            &row,
            c3,
            &part(1),
            &part(2),
            pos + 1,
            c,
            nh,
        )?;
        let (rowg, mut cacheg) = (up::<T>(gpu, &row)?, up::<T>(gpu, &cache)?);
        let mut out = up::<T>(gpu, &vec![f32::NAN; c])?;
        let posg = gpu.upload(&[pos as u32])?;
        attention::append_and_attend_at(gpu, &mut out, &rowg, &mut cacheg, &posg, c, nh)?;
        let what = format!("{} pos={pos} nh={nh} hs={hs} cap={cap}", T::NAME);
        worst.close_as::<T>(&what, &down(&out)?, &want, F32_TOL)?;
        let got_cache = down(&cacheg)?;
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        if !same(&got_cache, &want_cache) {
            return Err(
                format!("{what}: the cache is not the old one with the new row at {pos}").into(),
            );
        }
        // Past the cache: nothing appended, NaN out.
        let past = gpu.upload(&[cap as u32])?;
        attention::append_and_attend_at(gpu, &mut out, &rowg, &mut cacheg, &past, c, nh)?;
        if !down(&out)?.iter().all(|x| x.is_nan()) || !same(&down(&cacheg)?, &want_cache) {
            return Err(format!("{what}: a position past the cache was not refused").into());
        }
    }
    Ok(worst.get())
}

fn errors(gpu: &Gpu) -> Res<String> {
    let (b, t, nh, hs) = (1, 4, 2, 64);
    let c = nh * hs;
    let x = gpu.zeros::<f32>(b * t * 3 * c)?;
    let mut out = gpu.zeros::<f32>(b * t * c)?;
    let mut lse = gpu.zeros::<f32>(b * nh * t)?;
    let expect = |r: gpt2_kernels::Result<()>, what: &str| -> Res<()> {
        match r {
            Err(KernelError::Shape { .. } | KernelError::Length { .. }) => Ok(()),
            other => Err(format!("{what}: {other:?}").into()),
        }
    };
    expect(
        attention::forward(gpu, Version::Flash, &mut out, &mut lse, &x, b, t, nh),
        "flash on f32",
    )?;
    expect(
        attention::forward(gpu, Version::Auto, &mut out, &mut lse, &x, b, t + 1, nh),
        "wrong T",
    )?;
    let xb = gpu.zeros::<bf16>(b * t * 3 * 96)?;
    let mut ob = gpu.zeros::<bf16>(b * t * 96)?;
    let mut lb = gpu.zeros::<f32>(b * t)?;
    expect(
        attention::forward(gpu, Version::Flash, &mut ob, &mut lb, &xb, b, t, 1),
        "flash with HS = 96",
    )?;
    attention::forward(gpu, Version::Auto, &mut ob, &mut lb, &xb, b, t, 1)?; // rows
    let (k, v) = (gpu.zeros::<f32>(3 * c)?, gpu.zeros::<f32>(3 * c)?);
    let mut o1 = gpu.zeros::<f32>(c)?;
    let q = gpu.zeros::<f32>(c)?;
    expect(
        attention::forward_cached(gpu, &mut o1, &q, c, &k, &v, 4, c, nh),
        "cache shorter than kv_len",
    )?;
    Ok("typed errors for wrong lengths and versions that do not apply".into())
}
