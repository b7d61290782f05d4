//! The portable scalar implementation of every SIMD helper: plain loops, one element
//! at a time, no fused multiply-add. It defines what each helper computes; the vector
//! implementations must agree with it to rounding.
//!
//! Length checks are done once by the dispatching methods on [`super::Isa`].

use super::{AdamWCoeffs, MatMut, MatRef};

pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(super) fn sum(x: &[f32]) -> f32 {
    x.iter().sum()
}

pub(super) fn max(x: &[f32]) -> f32 {
    x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
}

pub(super) fn sum_sq_f64(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
}

pub(super) fn sum_sq_diff(x: &[f32], m: f32) -> f32 {
    x.iter().map(|&v| (v - m) * (v - m)).sum()
}

pub(super) fn sum_exp_shift(x: &[f32], shift: f32) -> f32 {
    x.iter().map(|&v| (v - shift).exp()).sum()
}

pub(super) fn exp_shift(x: &mut [f32], shift: f32) -> f32 {
    let mut s = 0.0;
    for v in x {
        *v = (*v - shift).exp();
        s += *v;
    }
    s
}

pub(super) fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

pub(super) fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += alpha * v;
    }
}

pub(super) fn scale(x: &mut [f32], s: f32) {
    for v in x {
        *v *= s;
    }
}

pub(super) fn softmax_vjp(dp: &mut [f32], p: &[f32], d: f32) {
    for (g, &pv) in dp.iter_mut().zip(p) {
        *g = pv * (*g - d);
    }
}

/// The constants of the tanh-approximate GELU: `√(2/π)` and the cubic coefficient.
pub(super) const GELU_BETA: f32 = 0.797_884_6;
pub(super) const GELU_KAPPA: f32 = 0.044_715;

pub(super) fn gelu_in_place(x: &mut [f32]) {
    for v in x {
        let u = GELU_BETA * (*v + GELU_KAPPA * *v * *v * *v);
        *v /= 1.0 + (-2.0 * u).exp();
    }
}

pub(super) fn gelu_backward(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    for ((d, &x), &g) in dinp.iter_mut().zip(inp).zip(dout) {
        let x2 = x * x;
        let t = (GELU_BETA * (x + GELU_KAPPA * x2 * x)).tanh();
        let left = 0.5 * (1.0 + t);
        let right = 0.5 * x * (1.0 - t * t) * GELU_BETA * (1.0 + 3.0 * GELU_KAPPA * x2);
        *d += g * (left + right);
    }
}

pub(super) fn layernorm_row(
    out: &mut [f32],
    x: &[f32],
    (mean, rstd): (f32, f32),
    w: &[f32],
    b: &[f32],
) {
    for (((o, &xv), &wv), &bv) in out.iter_mut().zip(x).zip(w).zip(b) {
        *o = (xv - mean) * rstd * wv + bv;
    }
}

pub(super) fn layernorm_backward_row(
    (dinp, dw, db): (&mut [f32], &mut [f32], &mut [f32]),
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    (mean, rstd): (f32, f32),
) {
    let c = x.len() as f32;
    // The two row means that the normalisation's Jacobian needs.
    let (mut sum_dn, mut sum_dn_n) = (0.0f32, 0.0f32);
    for ((&g, &xv), &wv) in dout.iter().zip(x).zip(w) {
        let n = (xv - mean) * rstd;
        sum_dn += wv * g;
        sum_dn_n += wv * g * n;
    }
    let (mean_dn, mean_dn_n) = (sum_dn / c, sum_dn_n / c);
    for i in 0..x.len() {
        let n = (x[i] - mean) * rstd;
        let dn = w[i] * dout[i];
        db[i] += dout[i];
        dw[i] += n * dout[i];
        dinp[i] += (dn - mean_dn - n * mean_dn_n) * rstd;
    }
}

pub(super) fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamWCoeffs) {
    for i in 0..p.len() {
        p[i] *= k.decay;
        m[i] += k.one_minus_beta1 * (g[i] - m[i]);
        v[i] = v[i] * k.beta2 + k.one_minus_beta2 * g[i] * g[i];
        let denom = v[i].sqrt() / k.bias_correction2_sqrt + k.eps;
        p[i] -= k.step_size * m[i] / denom;
    }
}

/// `f32 → bf16` bits, rounding to nearest even; NaNs stay NaN (quiet bit set), as `half`.
pub(super) fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7FFF_FFFF > 0x7F80_0000 {
        return ((bits >> 16) | 0x0040) as u16;
    }
    let lsb = (bits >> 16) & 1;
    (bits.wrapping_add(0x7FFF + lsb) >> 16) as u16
}

pub(super) fn f32_to_bf16(out: &mut [u16], inp: &[f32]) {
    for (o, &x) in out.iter_mut().zip(inp) {
        *o = f32_to_bf16_bits(x);
    }
}

pub(super) fn bf16_to_f32(out: &mut [f32], inp: &[u16]) {
    for (o, &h) in out.iter_mut().zip(inp) {
        *o = f32::from_bits(u32::from(h) << 16);
    }
}

pub(super) fn transpose(dst: MatMut, src: MatRef) {
    for i in 0..src.rows {
        for j in 0..src.cols {
            dst.data[j * dst.rs + i] = src.at(i, j);
        }
    }
}

/// `C = A·B`, or `C += A·B` if `acc`.
pub(super) fn gemm(c: MatMut, a: MatRef, b: MatRef, acc: bool) {
    for i in 0..c.rows {
        let row = &mut c.data[i * c.rs..][..c.cols];
        if !acc {
            row.fill(0.0);
        }
        for p in 0..a.cols {
            let aip = a.at(i, p);
            for (j, cij) in row.iter_mut().enumerate() {
                *cij += aip * b.at(p, j);
            }
        }
    }
}

pub(super) fn gemm_nt(c: MatMut, a: MatRef, b: MatRef, alpha: f32) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            let s: f32 = (0..a.cols).map(|p| a.at(i, p) * b.at(j, p)).sum();
            c.data[i * c.rs + j] = alpha * s;
        }
    }
}
