//! Naive references for the tests: triple loops straight from the definitions, f64
//! accumulation, GELU from PyTorch's tanh formula. Same signatures as the fast functions
//! minus the [`Isa`](crate::cpu::simd::Isa); the argument checks are shared.

use super::{Element, Epilogue, MatMut, MatRef, Weight, WeightData, WeightLayout};
use crate::error::Result;

/// GPT-2's GELU exactly as PyTorch writes it, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
/// in f64.
pub fn gelu(x: f32) -> f32 {
    let x = x as f64;
    let s = (2.0 / std::f64::consts::PI).sqrt();
    (0.5 * x * (1.0 + (s * (x + 0.044715 * x * x * x)).tanh())) as f32
}

/// `W[p, j]` of the `(K, N)` product operand, read straight from the stated layout.
fn w_at(weight: &Weight<'_>, k: usize, n: usize, p: usize, j: usize) -> f64 {
    let idx = match weight.layout {
        WeightLayout::InOut => p * n + j,
        WeightLayout::OutIn => j * k + p,
    };
    match weight.data {
        WeightData::F32(w) => w[idx] as f64,
        WeightData::Bf16(w) => w[idx].to_f64(),
    }
}

/// Reference [`super::forward`].
pub fn forward(
    out: &mut [f32],
    inp: &[f32],
    weight: Weight<'_>,
    bias: Option<&[f32]>,
    k: usize,
    n: usize,
) -> Result<()> {
    let m = super::check_forward(
        "reference::forward",
        out.len(),
        None,
        inp.len(),
        weight.len(),
        bias.map(<[f32]>::len),
        (k, n),
    )?;
    for i in 0..m {
        for j in 0..n {
            let mut s = bias.map_or(0.0, |b| b[j] as f64);
            for p in 0..k {
                s += inp[i * k + p] as f64 * w_at(&weight, k, n, p, j);
            }
            out[i * n + j] = s as f32;
        }
    }
    Ok(())
}

/// Reference [`super::forward_gelu`].
#[allow(clippy::too_many_arguments)]
pub fn forward_gelu(
    out: &mut [f32],
    pre: Option<&mut [f32]>,
    inp: &[f32],
    weight: Weight<'_>,
    bias: Option<&[f32]>,
    k: usize,
    n: usize,
) -> Result<()> {
    super::check_forward(
        "reference::forward_gelu",
        out.len(),
        pre.as_ref().map(|p| p.len()),
        inp.len(),
        weight.len(),
        bias.map(<[f32]>::len),
        (k, n),
    )?;
    forward(out, inp, weight, bias, k, n)?;
    if let Some(pre) = pre {
        pre.copy_from_slice(out);
    }
    out.iter_mut().for_each(|v| *v = gelu(*v));
    Ok(())
}

/// Reference [`super::backward`] (accumulates).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dinp: Option<&mut [f32]>,
    dweight: Option<&mut [f32]>,
    dbias: Option<&mut [f32]>,
    dout: &[f32],
    inp: &[f32],
    weight: Weight<'_>,
    k: usize,
    n: usize,
) -> Result<()> {
    let lens = [dinp.as_ref(), dweight.as_ref(), dbias.as_ref()].map(|d| d.map(|d| d.len()));
    let m = super::check_backward(
        "reference::backward",
        lens,
        dout.len(),
        inp.len(),
        weight.len(),
        k,
        n,
    )?;
    if let Some(dinp) = dinp {
        for i in 0..m {
            for p in 0..k {
                let s: f64 = (0..n)
                    .map(|j| dout[i * n + j] as f64 * w_at(&weight, k, n, p, j))
                    .sum();
                dinp[i * k + p] = (dinp[i * k + p] as f64 + s) as f32;
            }
        }
    }
    if let Some(dw) = dweight {
        for p in 0..k {
            for j in 0..n {
                let s: f64 = (0..m)
                    .map(|i| inp[i * k + p] as f64 * dout[i * n + j] as f64)
                    .sum();
                let idx = match weight.layout {
                    WeightLayout::InOut => p * n + j,
                    WeightLayout::OutIn => j * k + p,
                };
                dw[idx] = (dw[idx] as f64 + s) as f32;
            }
        }
    }
    if let Some(db) = dbias {
        for (j, d) in db.iter_mut().enumerate() {
            *d = (*d as f64 + (0..m).map(|i| dout[i * n + j] as f64).sum::<f64>()) as f32;
        }
    }
    Ok(())
}

/// Reference [`super::gemm`].
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Element>(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_, f32>,
    b: MatRef<'_, T>,
    c: MatMut<'_>,
    accumulate: bool,
    epilogue: Epilogue<'_>,
) -> Result<()> {
    super::check_gemm("reference::gemm", (m, n, k), &a, &b, &c, &epilogue)?;
    let Epilogue {
        bias,
        gelu,
        mut pre,
    } = epilogue;
    for i in 0..m {
        for j in 0..n {
            let at = i * c.ldc + j;
            let mut v = if accumulate { c.data[at] as f64 } else { 0.0 };
            for p in 0..k {
                v += a.data[i * a.rs + p * a.cs] as f64
                    * b.data[p * b.rs + j * b.cs].to_f32() as f64;
            }
            let v = (v + bias.map_or(0.0, |b| b[j] as f64)) as f32;
            if let Some(pre) = pre.as_deref_mut() {
                pre[at] = v;
            }
            c.data[at] = if gelu { self::gelu(v) } else { v };
        }
    }
    Ok(())
}
