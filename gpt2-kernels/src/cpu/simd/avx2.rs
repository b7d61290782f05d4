//! AVX2 + FMA implementations of the SIMD helpers: 8 `f32` lanes per `__m256`.
//!
//! Every function here is `#[target_feature(enable = "avx2,fma")]`; the dispatcher in
//! `simd.rs` calls them only through an `Isa` that proved both features are present.
//! Since Rust 1.87 the arithmetic intrinsics are safe inside such functions: `unsafe`
//! is confined to loads and stores through pointers — [`load`]/[`store`] of whole
//! `[f32; 8]` arrays, the bf16 conversions, and the block products of [`blocks`].
//!
//! Elementwise helpers are written once as closures over vectors and driven by
//! [`zip_map`] and [`fold`]; a tail shorter than a vector goes through a stack buffer
//! padded with a neutral value, so each element gets exactly the same arithmetic
//! wherever it sits in the slice.
//!
//! ## Accuracy of the vector transcendentals
//! Measured against `f64` by `simd/tests.rs` over dense sweeps of the input range:
//! - [`exp8`]: max relative error 8.3e-8 (under 1 ulp) on `[-87.3, 88.7]`, where results
//!   are normal numbers; below, gradual underflow into the subnormals; `e^-∞ = 0`
//!   exactly, `+∞` above 88.73, NaN propagates.
//! - [`tanh8`]: max relative error 1.4e-7 (about 1 ulp) on `[-10, 10]` and near 0,
//!   odd (`tanh(-0) = -0`), `±1` for large `|x|`, NaN propagates.

use std::arch::x86_64::*;
use std::cell::Cell;

use super::AdamWCoeffs;
use super::scalar::{self, GELU_BETA, GELU_KAPPA};

mod blocks;
pub(super) use blocks::{gemm, gemm_nt, transpose};

/// Lanes per vector.
const W: usize = 8;

// ---------------------------------------------------------------------------------
// Loads, stores, horizontal reductions.

#[inline]
#[target_feature(enable = "avx2,fma")]
fn load(x: &[f32; W]) -> __m256 {
    // SAFETY: `x` is 8 readable floats; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn store(x: &mut [f32; W], v: __m256) {
    // SAFETY: `x` is 8 writable floats; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(x.as_mut_ptr(), v) }
}

/// Loads `x` (fewer than 8 values) into the low lanes, the other lanes set to `pad`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn load_part(x: &[f32], pad: f32) -> __m256 {
    let mut buf = [pad; W];
    buf[..x.len()].copy_from_slice(x);
    load(&buf)
}

/// Stores the low `x.len()` (fewer than 8) lanes of `v` into `x`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn store_part(x: &mut [f32], v: __m256) {
    let mut buf = [0.0; W];
    store(&mut buf, v);
    let n = x.len();
    x.copy_from_slice(&buf[..n]);
}

/// The `k`-th full vector of `x`.
#[inline]
fn chunk(x: &[f32], k: usize) -> &[f32; W] {
    x[k * W..][..W].try_into().expect("a slice of 8")
}

#[inline]
fn chunk_mut(x: &mut [f32], k: usize) -> &mut [f32; W] {
    (&mut x[k * W..][..W]).try_into().expect("a slice of 8")
}

/// The sum of the 8 lanes, in a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn hmax(v: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
}

/// The four horizontal sums of `v0..v3`, as the lanes of one 128-bit vector.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum4(v: [__m256; 4]) -> __m128 {
    let s01 = _mm256_hadd_ps(v[0], v[1]);
    let s23 = _mm256_hadd_ps(v[2], v[3]);
    let s = _mm256_hadd_ps(s01, s23);
    _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s))
}

// ---------------------------------------------------------------------------------
// Drivers: one loop shape for every elementwise helper.

/// For each group of 8 lanes: `outs ← f(outs, ins)`. All slices have the length of
/// `outs[0]`; the partial tail vector is padded with `pad`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn zip_map<const M: usize, const N: usize>(
    mut outs: [&mut [f32]; M],
    ins: [&[f32]; N],
    pad: f32,
    f: impl Fn([__m256; M], [__m256; N]) -> [__m256; M],
) {
    let len = outs[0].len();
    let full = len / W;
    for k in 0..full {
        let y = f(
            outs.each_ref().map(|o| load(chunk(o, k))),
            ins.map(|x| load(chunk(x, k))),
        );
        for (o, v) in outs.iter_mut().zip(y) {
            store(chunk_mut(o, k), v);
        }
    }
    let t = full * W;
    if t < len {
        let y = f(
            outs.each_ref().map(|o| load_part(&o[t..], pad)),
            ins.map(|x| load_part(&x[t..], pad)),
        );
        for (o, v) in outs.iter_mut().zip(y) {
            store_part(&mut o[t..], v);
        }
    }
}

/// Folds `step` over groups of 8 lanes of `ins` (equal lengths) with four independent
/// accumulators (to hide the FMA latency), the tail padded lane-wise with `pad`;
/// accumulators are combined in a fixed order.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn fold<A: Copy, const N: usize>(
    ins: [&[f32]; N],
    pad: [f32; N],
    init: A,
    step: impl Fn(A, [__m256; N]) -> A,
    combine: impl Fn(A, A) -> A,
) -> A {
    let len = ins[0].len();
    let full = len / W;
    let mut acc = [init; 4];
    let mut k = 0;
    while k + 4 <= full {
        for (j, a) in acc.iter_mut().enumerate() {
            *a = step(*a, ins.map(|x| load(chunk(x, k + j))));
        }
        k += 4;
    }
    for k in k..full {
        acc[0] = step(acc[0], ins.map(|x| load(chunk(x, k))));
    }
    let t = full * W;
    if t < len {
        acc[1] = step(
            acc[1],
            std::array::from_fn(|i| load_part(&ins[i][t..], pad[i])),
        );
    }
    combine(combine(acc[0], acc[1]), combine(acc[2], acc[3]))
}

// ---------------------------------------------------------------------------------
// Vector transcendentals.

/// `e^x` lane-wise. Cody–Waite reduction `x = n·ln2 + r` (`|r| ≤ ln2/2`, `ln2` split so
/// that `n·ln2_hi` is exact), Cephes' degree-6 polynomial for `e^r`, and `2^n` applied
/// as two factors `2^(n/2)·2^(n - n/2)` so that results in the subnormal range and the
/// overflow to `+∞` come out right.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn exp8(x: __m256) -> __m256 {
    // `min(hi, x)` / `max(lo, x)` return `x` when it is NaN, so NaN propagates.
    // Below -110 the result underflows to exactly 0 (`e^-∞ = 0`); above 88.8, to +∞.
    let x = _mm256_max_ps(
        _mm256_set1_ps(-110.0),
        _mm256_min_ps(_mm256_set1_ps(88.8), x),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5e-1,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let er = _mm256_add_ps(
        _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
        _mm256_set1_ps(1.0),
    );
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let pow2 = |k: __m256i| {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            k,
            _mm256_set1_epi32(127),
        )))
    };
    _mm256_mul_ps(_mm256_mul_ps(er, pow2(n1)), pow2(n2))
}

/// `tanh x` lane-wise: Cephes' odd polynomial for `|x| < 0.625`, `1 − 2/(e^{2|x|} + 1)`
/// above (little cancellation there since `tanh ≥ 0.55`).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) fn tanh8(x: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let ax = _mm256_andnot_ps(sign, x);
    let z = _mm256_mul_ps(x, x);
    let mut p = _mm256_set1_ps(-5.704_988_7e-3);
    for c in [2.063_909e-2, -5.373_971_6e-2, 1.333_144_2e-1, -3.333_328e-1] {
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(c));
    }
    let small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), ax, ax);
    let one = _mm256_set1_ps(1.0);
    let e = exp8(_mm256_add_ps(ax, ax));
    let big = _mm256_sub_ps(
        one,
        _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
    );
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(ax, _mm256_set1_ps(0.625));
    // tanh is odd: both branches work on |x|, the sign (of ±0 too) goes back on last.
    _mm256_or_ps(
        _mm256_blendv_ps(big, small, is_small),
        _mm256_and_ps(x, sign),
    )
}

// ---------------------------------------------------------------------------------
// Reductions.

#[target_feature(enable = "avx2,fma")]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let zero = _mm256_setzero_ps();
    hsum(fold(
        [a, b],
        [0.0; 2],
        zero,
        |s, [x, y]| _mm256_fmadd_ps(x, y, s),
        |p, q| _mm256_add_ps(p, q),
    ))
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn sum(x: &[f32]) -> f32 {
    let zero = _mm256_setzero_ps();
    hsum(fold(
        [x],
        [0.0],
        zero,
        |s, [v]| _mm256_add_ps(s, v),
        |p, q| _mm256_add_ps(p, q),
    ))
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn max(x: &[f32]) -> f32 {
    let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
    let max = |p, q| _mm256_max_ps(p, q);
    hmax(fold(
        [x],
        [f32::NEG_INFINITY],
        ninf,
        |s, [v]| max(s, v),
        max,
    ))
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn sum_sq_f64(x: &[f32]) -> f64 {
    let zero = (_mm256_setzero_pd(), _mm256_setzero_pd());
    let (lo, hi) = fold(
        [x],
        [0.0],
        zero,
        |(lo, hi), [v]| {
            let vl = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            let vh = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
            (_mm256_fmadd_pd(vl, vl, lo), _mm256_fmadd_pd(vh, vh, hi))
        },
        |(a, b), (c, d)| (_mm256_add_pd(a, c), _mm256_add_pd(b, d)),
    );
    let s = _mm256_add_pd(lo, hi);
    let s = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd::<1>(s));
    _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn sum_sq_diff(x: &[f32], m: f32) -> f32 {
    let mv = _mm256_set1_ps(m);
    let step = |s, [v]: [__m256; 1]| {
        let d = _mm256_sub_ps(v, mv);
        _mm256_fmadd_ps(d, d, s)
    };
    hsum(fold([x], [m], _mm256_setzero_ps(), step, |p, q| {
        _mm256_add_ps(p, q)
    }))
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn sum_exp_shift(x: &[f32], shift: f32) -> f32 {
    let sv = _mm256_set1_ps(shift);
    let step = |s, [v]: [__m256; 1]| _mm256_add_ps(s, exp8(_mm256_sub_ps(v, sv)));
    let ninf = f32::NEG_INFINITY;
    hsum(fold([x], [ninf], _mm256_setzero_ps(), step, |p, q| {
        _mm256_add_ps(p, q)
    }))
}

// ---------------------------------------------------------------------------------
// Elementwise maps.

#[target_feature(enable = "avx2,fma")]
pub(super) fn exp_shift(x: &mut [f32], shift: f32) -> f32 {
    let sv = _mm256_set1_ps(shift);
    let total = Cell::new(_mm256_setzero_ps());
    // Padding lanes hold -∞, whose exponential (0) leaves the sum alone.
    zip_map([x], [], f32::NEG_INFINITY, |[v], []| {
        let e = exp8(_mm256_sub_ps(v, sv));
        total.set(_mm256_add_ps(total.get(), e));
        [e]
    });
    hsum(total.get())
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn add(out: &mut [f32], a: &[f32], b: &[f32]) {
    zip_map([out], [a, b], 0.0, |_, [x, y]| [_mm256_add_ps(x, y)]);
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    let av = _mm256_set1_ps(alpha);
    zip_map([y], [x], 0.0, |[yv], [xv]| [_mm256_fmadd_ps(av, xv, yv)]);
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn scale(x: &mut [f32], s: f32) {
    let sv = _mm256_set1_ps(s);
    zip_map([x], [], 0.0, |[v], []| [_mm256_mul_ps(v, sv)]);
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn softmax_vjp(dp: &mut [f32], p: &[f32], d: f32) {
    let dv = _mm256_set1_ps(d);
    zip_map([dp], [p], 0.0, |[g], [pv]| {
        [_mm256_mul_ps(pv, _mm256_sub_ps(g, dv))]
    });
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn gelu_in_place(x: &mut [f32]) {
    let (beta, kappa) = (_mm256_set1_ps(GELU_BETA), _mm256_set1_ps(GELU_KAPPA));
    let (minus_two, one) = (_mm256_set1_ps(-2.0), _mm256_set1_ps(1.0));
    zip_map([x], [], 0.0, |[v], []| {
        let v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
        let u = _mm256_mul_ps(beta, _mm256_fmadd_ps(kappa, v3, v));
        let e = exp8(_mm256_mul_ps(minus_two, u));
        [_mm256_div_ps(v, _mm256_add_ps(one, e))]
    });
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn gelu_backward(dinp: &mut [f32], inp: &[f32], dout: &[f32]) {
    let (beta, kappa) = (_mm256_set1_ps(GELU_BETA), _mm256_set1_ps(GELU_KAPPA));
    let (half, one) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0));
    let kappa3 = _mm256_set1_ps(3.0 * GELU_KAPPA);
    zip_map([dinp], [inp, dout], 0.0, |[d], [x, g]| {
        let x2 = _mm256_mul_ps(x, x);
        let t = tanh8(_mm256_mul_ps(
            beta,
            _mm256_fmadd_ps(kappa, _mm256_mul_ps(x2, x), x),
        ));
        let left = _mm256_mul_ps(half, _mm256_add_ps(one, t));
        let sech2 = _mm256_fnmadd_ps(t, t, one);
        let inner_d = _mm256_mul_ps(beta, _mm256_fmadd_ps(kappa3, x2, one));
        let right = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, x), sech2), inner_d);
        [_mm256_fmadd_ps(g, _mm256_add_ps(left, right), d)]
    });
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn layernorm_row(
    out: &mut [f32],
    x: &[f32],
    (mean, rstd): (f32, f32),
    w: &[f32],
    b: &[f32],
) {
    let (mv, rv) = (_mm256_set1_ps(mean), _mm256_set1_ps(rstd));
    zip_map([out], [x, w, b], 0.0, |_, [xv, wv, bv]| {
        [_mm256_fmadd_ps(
            _mm256_mul_ps(_mm256_sub_ps(xv, mv), rv),
            wv,
            bv,
        )]
    });
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn layernorm_backward_row(
    (dinp, dw, db): (&mut [f32], &mut [f32], &mut [f32]),
    dout: &[f32],
    x: &[f32],
    w: &[f32],
    (mean, rstd): (f32, f32),
) {
    let (mv, rv) = (_mm256_set1_ps(mean), _mm256_set1_ps(rstd));
    let norm = |xv| _mm256_mul_ps(_mm256_sub_ps(xv, mv), rv);
    let zero = _mm256_setzero_ps();
    // Padding lanes have dout = 0, so they add nothing to either sum.
    let (s_dn, s_dn_n) = fold(
        [dout, x, w],
        [0.0; 3],
        (zero, zero),
        |(a, b), [g, xv, wv]| {
            let dn = _mm256_mul_ps(wv, g);
            (_mm256_add_ps(a, dn), _mm256_fmadd_ps(dn, norm(xv), b))
        },
        |(a, b), (c, d)| (_mm256_add_ps(a, c), _mm256_add_ps(b, d)),
    );
    let c = x.len() as f32;
    let mean_dn = _mm256_set1_ps(hsum(s_dn) / c);
    let mean_dn_n = _mm256_set1_ps(hsum(s_dn_n) / c);
    zip_map(
        [dinp, dw, db],
        [dout, x, w],
        0.0,
        |[di, dwv, dbv], [g, xv, wv]| {
            let n = norm(xv);
            let t = _mm256_fnmadd_ps(n, mean_dn_n, _mm256_sub_ps(_mm256_mul_ps(wv, g), mean_dn));
            [
                _mm256_fmadd_ps(t, rv, di),
                _mm256_fmadd_ps(n, g, dwv),
                _mm256_add_ps(dbv, g),
            ]
        },
    );
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn adamw(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: &AdamWCoeffs) {
    let decay = _mm256_set1_ps(k.decay);
    let omb1 = _mm256_set1_ps(k.one_minus_beta1);
    let (b2, omb2) = (_mm256_set1_ps(k.beta2), _mm256_set1_ps(k.one_minus_beta2));
    let bc2s = _mm256_set1_ps(k.bias_correction2_sqrt);
    let (step, eps) = (_mm256_set1_ps(k.step_size), _mm256_set1_ps(k.eps));
    zip_map([p, m, v], [g], 0.0, |[pv, mv, vv], [gv]| {
        let pv = _mm256_mul_ps(pv, decay);
        let mv = _mm256_fmadd_ps(omb1, _mm256_sub_ps(gv, mv), mv);
        let vv = _mm256_fmadd_ps(vv, b2, _mm256_mul_ps(_mm256_mul_ps(omb2, gv), gv));
        let denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2s), eps);
        let pv = _mm256_sub_ps(pv, _mm256_div_ps(_mm256_mul_ps(step, mv), denom));
        [pv, mv, vv]
    });
}

// ---------------------------------------------------------------------------------
// bf16 conversions (integer bit manipulation; tails use the scalar code, which is
// bit-for-bit the same function).

#[target_feature(enable = "avx2,fma")]
pub(super) fn f32_to_bf16(out: &mut [u16], inp: &[f32]) {
    let (outs, out_tail) = out.as_chunks_mut::<W>();
    let (ins, in_tail) = inp.as_chunks::<W>();
    let abs_mask = _mm256_set1_epi32(0x7FFF_FFFF);
    let inf_bits = _mm256_set1_epi32(0x7F80_0000);
    for (o, x) in outs.iter_mut().zip(ins) {
        let bits = _mm256_castps_si256(load(x));
        let is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(bits, abs_mask), inf_bits);
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let bias = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(bits, bias));
        let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(0x40));
        let r = _mm256_blendv_epi8(rounded, quiet, is_nan);
        // Values are < 2^16, so the saturating pack is exact; it interleaves 128-bit
        // lanes, which the permute puts back in order.
        let packed = _mm256_permute4x64_epi64::<0b00_00_10_00>(_mm256_packus_epi32(r, r));
        // SAFETY: `o` is 8 writable u16 (16 bytes); `storeu` needs no alignment.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), _mm256_castsi256_si128(packed)) };
    }
    scalar::f32_to_bf16(out_tail, in_tail);
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn bf16_to_f32(out: &mut [f32], inp: &[u16]) {
    let (outs, out_tail) = out.as_chunks_mut::<W>();
    let (ins, in_tail) = inp.as_chunks::<W>();
    for (o, h) in outs.iter_mut().zip(ins) {
        // SAFETY: `h` is 8 readable u16 (16 bytes); `loadu` needs no alignment.
        let v = unsafe { _mm_loadu_si128(h.as_ptr().cast()) };
        let bits = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(v));
        store(o, _mm256_castsi256_ps(bits));
    }
    scalar::bf16_to_f32(out_tail, in_tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    fn exp_all(xs: &[f32]) -> Vec<f32> {
        let mut out = xs.to_vec();
        zip_map([&mut out], [], 0.0, |[v], []| [exp8(v)]);
        out
    }

    #[target_feature(enable = "avx2,fma")]
    fn tanh_all(xs: &[f32]) -> Vec<f32> {
        let mut out = xs.to_vec();
        zip_map([&mut out], [], 0.0, |[v], []| [tanh8(v)]);
        out
    }

    /// `n` evenly spaced points on `[lo, hi]`.
    fn sweep(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| lo + (hi - lo) * (i as f32 / (n - 1) as f32))
            .collect()
    }

    /// The largest relative error of `got` against `exact` (computed in `f64`).
    fn max_rel(xs: &[f32], got: &[f32], exact: impl Fn(f64) -> f64) -> (f64, f32) {
        let mut worst = (0.0, 0.0);
        for (&x, &y) in xs.iter().zip(got) {
            let e = exact(f64::from(x));
            let rel = (f64::from(y) - e).abs() / e.abs();
            if rel > worst.0 {
                worst = (rel, x);
            }
        }
        worst
    }

    fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    #[test]
    fn exp8_accuracy() {
        if !has_avx2() {
            return;
        }
        // -87.3 is just above ln(f32::MIN_POSITIVE): results are normal numbers.
        let xs = sweep(-87.3, 88.7, 1 << 21);
        // SAFETY: AVX2 and FMA were detected above.
        let got = unsafe { exp_all(&xs) };
        let (rel, at) = max_rel(&xs, &got, f64::exp);
        eprintln!("exp8: max relative error {rel:.3e} at x = {at}");
        assert!(rel < 1.0e-7, "exp8 max rel err {rel:e} at {at}");
        let specials = [
            f32::NEG_INFINITY,
            -200.0,
            0.0,
            89.0,
            f32::INFINITY,
            f32::NAN,
            -100.0,
        ];
        // SAFETY: as above.
        let got = unsafe { exp_all(&specials) };
        assert_eq!(got[0], 0.0);
        assert_eq!(got[1], 0.0);
        assert_eq!(got[2], 1.0);
        assert_eq!(got[3], f32::INFINITY);
        assert_eq!(got[4], f32::INFINITY);
        assert!(got[5].is_nan());
        // Subnormal range: tiny absolute error.
        assert!((f64::from(got[6]) - (-100f64).exp()).abs() < 1e-44);
    }

    #[test]
    fn tanh8_accuracy() {
        if !has_avx2() {
            return;
        }
        let mut xs = sweep(-10.0, 10.0, 1 << 21);
        xs.extend(sweep(-0.01, 0.01, 1 << 12));
        xs.extend([1e-30, -1e-20, 1e-8, 0.624_999_9, 0.625, 0.625_000_1]);
        let xs: Vec<f32> = xs.into_iter().filter(|&x| x != 0.0).collect();
        // SAFETY: AVX2 and FMA were detected above.
        let got = unsafe { tanh_all(&xs) };
        let (rel, at) = max_rel(&xs, &got, f64::tanh);
        eprintln!("tanh8: max relative error {rel:.3e} at x = {at}");
        assert!(rel < 1.6e-7, "tanh8 max rel err {rel:e} at {at}");
        let specials = [
            0.0,
            -0.0,
            20.0,
            -20.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        // SAFETY: as above.
        let got = unsafe { tanh_all(&specials) };
        assert_eq!(got[..6], [0.0, 0.0, 1.0, -1.0, 1.0, -1.0]);
        assert!(got[1].is_sign_negative());
        assert!(got[6].is_nan());
    }
}
