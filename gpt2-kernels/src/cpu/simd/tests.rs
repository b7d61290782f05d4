//! Every helper: the AVX2 path against the scalar path (and sums against `f64`), on
//! lengths around the vector width and the 4-accumulator unroll.

use super::*;
use crate::rng::Rng;

const LENS: [usize; 17] = [
    0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 65, 127, 1000,
];

fn vec_in(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * rng.next_f32()).collect()
}

/// `max|a − b| / max|b|` (or `max|a − b|` when `b` is all zeros).
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f32::max);
    if scale > 0.0 { diff / scale } else { diff }
}

/// The AVX2 path, or `None` (and the test passes vacuously, saying so) on a CPU without.
fn avx2() -> Option<Isa> {
    let isa = Isa::avx2();
    if isa.is_none() {
        eprintln!("no AVX2+FMA on this CPU: only the scalar path is tested");
    }
    isa
}

#[test]
fn isa_constructors() {
    assert_eq!(Isa::scalar().name(), "scalar");
    assert!(!Isa::scalar().is_avx2());
    assert!(Isa::available().contains(&Isa::scalar()));
    assert!(Isa::available().contains(&Isa::best()));
    if let Some(a) = Isa::avx2() {
        assert!(a.is_avx2());
        assert_eq!(a.to_string(), "avx2+fma");
    }
}

/// Reductions agree with an `f64` sum to within `1e-6 · Σ|terms|` on both paths.
#[test]
fn reductions_match_f64() {
    let mut rng = Rng::new(1);
    for isa in Isa::available() {
        for n in LENS {
            let a = vec_in(&mut rng, n, -2.0, 2.0);
            let b = vec_in(&mut rng, n, -2.0, 2.0);
            let m = 0.3f32;
            let check = |got: f32, exact: f64, mag: f64, what: &str| {
                let err = (f64::from(got) - exact).abs();
                assert!(
                    err <= 1e-6 * mag.max(1e-30),
                    "{isa} n={n} {what}: {got} vs {exact}"
                );
            };
            let (a64, b64) = (|i: usize| f64::from(a[i]), |i: usize| f64::from(b[i]));
            let dot: f64 = (0..n).map(|i| a64(i) * b64(i)).sum();
            let dot_mag: f64 = (0..n).map(|i| (a64(i) * b64(i)).abs()).sum();
            check(isa.dot(&a, &b), dot, dot_mag, "dot");
            let s: f64 = (0..n).map(a64).sum();
            check(isa.sum(&a), s, (0..n).map(|i| a64(i).abs()).sum(), "sum");
            let sq: f64 = (0..n).map(|i| (a64(i) - f64::from(m)).powi(2)).sum();
            check(isa.sum_sq_diff(&a, m), sq, sq, "sum_sq_diff");
            let se: f64 = (0..n).map(|i| (a64(i) - 1.0).exp()).sum();
            check(isa.sum_exp_shift(&a, 1.0), se, se, "sum_exp_shift");
            let ss: f64 = (0..n).map(|i| a64(i) * a64(i)).sum();
            let got = isa.sum_sq_f64(&a);
            assert!(
                (got - ss).abs() <= 1e-12 * ss.max(1e-300),
                "{isa} n={n} sum_sq_f64"
            );
            let mx = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(isa.max(&a), mx, "{isa} n={n} max");
        }
    }
}

#[test]
fn elementwise_avx2_matches_scalar() {
    let Some(avx) = avx2() else { return };
    let sc = Isa::scalar();
    let mut rng = Rng::new(2);
    for n in LENS {
        let a = vec_in(&mut rng, n, -3.0, 3.0);
        let b = vec_in(&mut rng, n, -3.0, 3.0);
        let y0 = vec_in(&mut rng, n, -1.0, 1.0);
        // Each case runs one helper on (out initialised to y0) with both paths.
        type Case<'a> = (&'a str, f32, Box<dyn Fn(Isa, &mut [f32]) + 'a>);
        let cases: Vec<Case> = vec![
            (
                "add",
                0.0,
                Box::new(|isa: Isa, o: &mut [f32]| isa.add(o, &a, &b)),
            ),
            (
                "axpy",
                1e-7,
                Box::new(|isa: Isa, o: &mut [f32]| isa.axpy(o, -0.7, &a)),
            ),
            (
                "scale",
                0.0,
                Box::new(|isa: Isa, o: &mut [f32]| isa.scale(o, 1.3)),
            ),
            (
                "softmax_vjp",
                1e-7,
                Box::new(|isa: Isa, o: &mut [f32]| isa.softmax_vjp(o, &a, 0.4)),
            ),
            (
                "gelu",
                1e-6,
                Box::new(|isa: Isa, o: &mut [f32]| {
                    o.copy_from_slice(&a);
                    isa.gelu_in_place(o)
                }),
            ),
            (
                "gelu_backward",
                1e-6,
                Box::new(|isa: Isa, o: &mut [f32]| isa.gelu_backward(o, &a, &b)),
            ),
            (
                "layernorm_row",
                1e-6,
                Box::new(|isa: Isa, o: &mut [f32]| isa.layernorm_row(o, &a, (0.2, 1.7), &b, &y0)),
            ),
            (
                "exp_shift",
                1e-6,
                Box::new(|isa: Isa, o: &mut [f32]| {
                    o.copy_from_slice(&a);
                    let s = isa.exp_shift(o, 0.5);
                    let exact: f32 = o.iter().sum();
                    assert!(
                        (s - exact).abs() <= 1e-5 * exact.max(1e-30),
                        "{isa} exp_shift sum"
                    );
                }),
            ),
        ];
        for (name, tol, run) in cases {
            let (mut ys, mut yv) = (y0.clone(), y0.clone());
            run(sc, &mut ys);
            run(avx, &mut yv);
            let e = rel_err(&yv, &ys);
            assert!(e <= tol, "{name} n={n}: rel err {e} > {tol}");
        }
    }
}

#[test]
fn layernorm_backward_row_avx2_matches_scalar() {
    let Some(avx) = avx2() else { return };
    let mut rng = Rng::new(3);
    for n in LENS {
        let (x, w, g) = (
            vec_in(&mut rng, n, -2.0, 2.0),
            vec_in(&mut rng, n, 0.5, 1.5),
            vec_in(&mut rng, n, -1.0, 1.0),
        );
        let init = vec_in(&mut rng, 3 * n, -1.0, 1.0);
        let run = |isa: Isa| {
            let mut buf = init.clone();
            let (di, rest) = buf.split_at_mut(n);
            let (dw, db) = rest.split_at_mut(n);
            isa.layernorm_backward_row((di, dw, db), &g, &x, &w, (0.1, 0.9));
            buf
        };
        let e = rel_err(&run(avx), &run(Isa::scalar()));
        assert!(e <= 1e-6, "n={n}: {e}");
    }
}

#[test]
fn adamw_avx2_matches_scalar() {
    let Some(avx) = avx2() else { return };
    let mut rng = Rng::new(4);
    let k = AdamWCoeffs {
        decay: 1.0 - 1e-3 * 0.1,
        one_minus_beta1: 0.1,
        beta2: 0.999,
        one_minus_beta2: 0.001,
        bias_correction2_sqrt: (1.0f32 - 0.999f32.powi(3)).sqrt(),
        step_size: 1e-3 / (1.0 - 0.9f32.powi(3)),
        eps: 1e-8,
    };
    for n in LENS {
        let g = vec_in(&mut rng, n, -1.0, 1.0);
        let init = [
            vec_in(&mut rng, n, -1.0, 1.0),
            vec_in(&mut rng, n, -0.1, 0.1),
            vec_in(&mut rng, n, 0.0, 0.01),
        ];
        let run = |isa: Isa| {
            let [mut p, mut m, mut v] = init.clone();
            isa.adamw(&mut p, &g, &mut m, &mut v, &k);
            [p, m, v]
        };
        let (s, v) = (run(Isa::scalar()), run(avx));
        for t in 0..3 {
            assert!(rel_err(&v[t], &s[t]) <= 1e-6, "n={n} tensor {t}");
        }
    }
}

/// bf16 conversions are bit-exact integer code: both paths must equal `half`, for
/// every special value and a spread of random bit patterns.
#[test]
fn bf16_is_bit_exact_with_half() {
    let mut rng = Rng::new(5);
    let mut xs: Vec<f32> = [
        0.0,
        -0.0,
        1.0,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-40,
        f32::INFINITY,
    ]
    .into_iter()
    .chain([
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7F80_0001),
        f32::from_bits(0xFFC0_1234),
    ])
    .chain([
        f32::from_bits(0x3F80_8000),
        f32::from_bits(0x3F81_8000),
        f32::from_bits(0x3F80_8001),
    ])
    .collect();
    xs.extend((0..5000).map(|_| f32::from_bits(rng.next_u64() as u32)));
    for isa in Isa::available() {
        for n in [xs.len(), 17, 9, 1] {
            let mut bits = vec![0u16; n];
            isa.f32_to_bf16(&mut bits, &xs[..n]);
            for (i, (&b, &x)) in bits.iter().zip(&xs).enumerate() {
                assert_eq!(
                    b,
                    half::bf16::from_f32(x).to_bits(),
                    "{isa} element {i}: {x:e}"
                );
            }
            let mut back = vec![0f32; n];
            isa.bf16_to_f32(&mut back, &bits);
            for (&y, &b) in back.iter().zip(&bits) {
                assert_eq!(y.to_bits(), half::bf16::from_bits(b).to_f32().to_bits());
            }
        }
    }
}

/// Block products against a triple loop in `f64`, for every tile edge.
#[test]
fn block_products_match_f64() {
    let mut rng = Rng::new(6);
    for isa in Isa::available() {
        for (m, n, k) in [
            (1, 1, 1),
            (1, 64, 64),
            (7, 17, 9),
            (13, 33, 64),
            (6, 16, 5),
            (64, 64, 64),
            (5, 8, 0),
            (3, 7, 17),
        ] {
            // A (m × k) stored transposed with padding: exercises a general stride.
            let lda = m + 3;
            let at = vec_in(&mut rng, k * lda, -1.0, 1.0);
            let a = MatRef::new(&at, (m, k), 1, lda);
            let ldb = n + 2;
            let bd = vec_in(&mut rng, k * ldb, -1.0, 1.0);
            let b = MatRef::rows(&bd, (k, n), ldb);
            let ldc = n + 1;
            let c0 = vec_in(&mut rng, m * ldc, -1.0, 1.0);
            let mut c = c0.clone();
            isa.gemm_acc(MatMut::new(&mut c, (m, n), ldc), a, b);
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = f64::from(c0[i * ldc + j])
                        + (0..k)
                            .map(|p| f64::from(a.at(i, p)) * f64::from(b.at(p, j)))
                            .sum::<f64>();
                    let got = f64::from(c[i * ldc + j]);
                    assert!(
                        (got - exact).abs() < 1e-5 * (1.0 + k as f64),
                        "{isa} acc {m}x{n}x{k} ({i},{j})"
                    );
                }
            }
            // Overwriting: C = A·B, whatever C held.
            let mut c2 = c0.clone();
            isa.gemm(MatMut::new(&mut c2, (m, n), ldc), a, b);
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k)
                        .map(|p| f64::from(a.at(i, p)) * f64::from(b.at(p, j)))
                        .sum();
                    let got = f64::from(c2[i * ldc + j]);
                    assert!(
                        (got - exact).abs() < 1e-5 * (1.0 + k as f64),
                        "{isa} set {m}x{n}x{k} ({i},{j})"
                    );
                }
            }
            // C = 0.5·A·Bᵀ with A = (m × k) row-major and B = (n × k) row-major.
            let lda = k + 1;
            let ad = vec_in(&mut rng, m * lda, -1.0, 1.0);
            let a = MatRef::rows(&ad, (m, k), lda);
            let bd = vec_in(&mut rng, n * lda, -1.0, 1.0);
            let b = MatRef::rows(&bd, (n, k), lda);
            let mut c = c0.clone();
            isa.gemm_nt(MatMut::new(&mut c, (m, n), ldc), a, b, 0.5);
            for i in 0..m {
                for j in 0..n {
                    let exact = 0.5
                        * (0..k)
                            .map(|p| f64::from(a.at(i, p)) * f64::from(b.at(j, p)))
                            .sum::<f64>();
                    let got = f64::from(c[i * ldc + j]);
                    assert!(
                        (got - exact).abs() < 1e-5 * (1.0 + k as f64),
                        "{isa} nt {m}x{n}x{k} ({i},{j})"
                    );
                }
                // Padding columns of C are untouched.
                if i * ldc + n < c.len() {
                    assert_eq!(c[i * ldc + n], c0[i * ldc + n]);
                }
            }
        }
    }
}

#[test]
fn matref_rejects_out_of_bounds_views() {
    let data = [0.0f32; 10];
    assert!(std::panic::catch_unwind(|| MatRef::new(&data, (3, 4), 3, 1)).is_ok());
    assert!(std::panic::catch_unwind(|| MatRef::new(&data, (3, 4), 4, 1)).is_err());
    assert!(std::panic::catch_unwind(|| MatRef::new(&data, (0, 4), 400, 1)).is_ok());
}

#[test]
fn transpose_matches_definition() {
    let mut rng = Rng::new(7);
    for isa in Isa::available() {
        for (rows, cols) in [
            (0, 3),
            (1, 1),
            (8, 8),
            (3, 17),
            (17, 9),
            (64, 64),
            (65, 24),
            (16, 63),
        ] {
            let lds = cols + 5;
            let src_data = vec_in(&mut rng, rows * lds, -1.0, 1.0);
            let src = MatRef::rows(&src_data, (rows, cols), lds);
            let ldd = rows + 2;
            let mut dst = vec![f32::NAN; cols * ldd];
            isa.transpose(MatMut::new(&mut dst, (cols, rows), ldd), src);
            for j in 0..cols {
                for i in 0..rows {
                    assert_eq!(
                        dst[j * ldd + i],
                        src.at(i, j),
                        "{isa} {rows}x{cols} ({i},{j})"
                    );
                }
                // The padding of each destination row is untouched.
                assert!(
                    dst[j * ldd + rows..(j + 1) * ldd]
                        .iter()
                        .all(|x| x.is_nan())
                );
            }
        }
    }
}
