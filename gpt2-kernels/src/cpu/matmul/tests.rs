//! Tests of the matmul kernels against [`super::reference`], finite differences, each
//! other (AVX2 vs scalar, 1 vs 2 vs 3 threads), and bad arguments.
//!
//! Errors are `max|got − want| / max|want|` per tensor. Inputs are uniform in [−1, 1),
//! so with f32 accumulation over K ≤ 600 terms the error is a few 1e-7; [`TOL`] = 1e-5
//! leaves room without hiding a wrong index (which gives errors of order 1).

use half::bf16;

use super::*;

/// Tolerance on `max|got − want| / max|want|` against the f64 references.
const TOL: f64 = 1e-5;
/// Awkward sizes: 1, non-multiples of the 8-lane width, of MR = 6 and NR = 16, and
/// neighbours of powers of two.
const SIZES: [usize; 12] = [1, 2, 3, 5, 7, 15, 16, 17, 31, 63, 65, 127];

/// A small deterministic generator (xorshift64*), so tests need no extra crate.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, len: usize) -> Vec<f32> {
        (0..len).map(|_| self.uniform()).collect()
    }
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &w| m.max((w as f64).abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&g, &w)| m.max((g as f64 - w as f64).abs()));
    if diff == 0.0 { 0.0 } else { diff / scale }
}

#[track_caller]
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    let err = rel_err(got, want);
    assert!(err <= TOL, "{what}: relative error {err:e} > {TOL:e}");
}

const LAYOUTS: [WeightLayout; 2] = [WeightLayout::InOut, WeightLayout::OutIn];

/// The weight `w` (f32 values) in the requested dtype; bf16 values are rounded once, and
/// both the kernel and the reference read the same rounded values.
struct Weights {
    f32: Vec<f32>,
    bf16: Vec<bf16>,
}

impl Weights {
    fn new(w: Vec<f32>) -> Self {
        let bf16 = w.iter().map(|&x| bf16::from_f32(x)).collect();
        Weights { f32: w, bf16 }
    }
    fn get(&self, bf16: bool, layout: WeightLayout) -> Weight<'_> {
        if bf16 {
            Weight::bf16(&self.bf16, layout)
        } else {
            Weight::f32(&self.f32, layout)
        }
    }
}

/// Runs `f` on a fresh rayon pool of `threads` threads.
fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

/// forward: every (M, K, N) from awkward sizes (M over all of [`SIZES`], so both the
/// matrix–vector path, M ≤ 4, and BLIS are covered), both layouts, f32 and bf16, with
/// and without bias, on every ISA.
#[test]
fn forward_matches_reference_on_awkward_sizes() {
    let mut rng = Rng(1);
    for &m in &SIZES {
        for k in [1, 3, 16, 17, 65, 127] {
            for n in [1, 5, 16, 17, 63, 127] {
                let inp = rng.vec(m * k);
                let w = Weights::new(rng.vec(k * n));
                let bias = rng.vec(n);
                for (layout, bf16, with_bias) in cases() {
                    let weight = w.get(bf16, layout);
                    let bias = with_bias.then_some(&bias[..]);
                    let mut want = vec![0.0; m * n];
                    reference::forward(&mut want, &inp, weight, bias, k, n).unwrap();
                    for isa in Isa::available() {
                        let mut out = vec![f32::NAN; m * n];
                        forward(isa, &mut out, &inp, weight, bias, k, n).unwrap();
                        let what = format!(
                            "{isa} m={m} k={k} n={n} {layout:?} bf16={bf16} bias={with_bias}"
                        );
                        assert_close(&out, &want, &what);
                    }
                }
            }
        }
    }
}

/// (layout, bf16, with_bias) combinations.
fn cases() -> impl Iterator<Item = (WeightLayout, bool, bool)> {
    LAYOUTS.into_iter().flat_map(|l| {
        [
            (l, false, true),
            (l, true, false),
            (l, false, false),
            (l, true, true),
        ]
    })
}

/// Shapes that cross the BLIS blocking: K > KC = 256 (k blocks accumulate in C),
/// M > MC = 144 (several row blocks), N > NC = 4080 (several B blocks), M > MS = 2304
/// (several packed-A blocks), and matrix–vector shapes wider than one task's chunk.
#[test]
fn forward_matches_reference_across_block_boundaries() {
    let mut rng = Rng(2);
    for (m, k, n) in [
        (13, 513, 4100),
        (290, 300, 33),
        (2310, 2, 17),
        (1, 700, 1500),
        (4, 1000, 1030),
        (3, 9, 4097),
    ] {
        let inp = rng.vec(m * k);
        let w = Weights::new(rng.vec(k * n));
        let bias = rng.vec(n);
        for layout in LAYOUTS {
            for bf16 in [false, true] {
                let weight = w.get(bf16, layout);
                let mut want = vec![0.0; m * n];
                reference::forward(&mut want, &inp, weight, Some(&bias), k, n).unwrap();
                let mut out = vec![0.0; m * n];
                forward(Isa::best(), &mut out, &inp, weight, Some(&bias), k, n).unwrap();
                assert_close(
                    &out,
                    &want,
                    &format!("m={m} k={k} n={n} {layout:?} bf16={bf16}"),
                );
            }
        }
    }
}

/// forward_gelu and its stored pre-activation, both paths and both layouts.
#[test]
fn forward_gelu_matches_reference() {
    let mut rng = Rng(3);
    for (m, k, n) in [
        (1, 17, 63),
        (3, 65, 130),
        (7, 31, 17),
        (65, 300, 70),
        (127, 16, 5),
    ] {
        let inp = rng.vec(m * k);
        let w = Weights::new(rng.vec(k * n).iter().map(|x| x * 0.5).collect());
        let bias = rng.vec(n);
        for (layout, bf16, with_bias) in cases() {
            let weight = w.get(bf16, layout);
            let bias = with_bias.then_some(&bias[..]);
            let (mut want, mut want_pre) = (vec![0.0; m * n], vec![0.0; m * n]);
            reference::forward_gelu(&mut want, Some(&mut want_pre), &inp, weight, bias, k, n)
                .unwrap();
            for isa in Isa::available() {
                let what =
                    format!("{isa} m={m} k={k} n={n} {layout:?} bf16={bf16} bias={with_bias}");
                let (mut out, mut pre) = (vec![0.0; m * n], vec![0.0; m * n]);
                forward_gelu(isa, &mut out, Some(&mut pre), &inp, weight, bias, k, n).unwrap();
                assert_close(&out, &want, &what);
                assert_close(&pre, &want_pre, &what);
                let mut out2 = vec![0.0; m * n];
                forward_gelu(isa, &mut out2, None, &inp, weight, bias, k, n).unwrap();
                assert_eq!(out, out2, "{what}: pre changes the result");
            }
        }
    }
}

/// backward: dinp, dweight, dbias, both layouts, f32 and bf16 weights, accumulating onto
/// non-zero gradients, on matrix–vector and BLIS shapes.
#[test]
fn backward_matches_reference() {
    let mut rng = Rng(4);
    let shapes = [
        (1, 1, 1),
        (1, 17, 63),
        (2, 65, 7),
        (5, 3, 127),
        (17, 63, 16),
        (63, 127, 31),
        (127, 15, 65),
        (300, 70, 45),
        (20, 520, 30),
    ];
    for (m, k, n) in shapes {
        let (inp, dout) = (rng.vec(m * k), rng.vec(m * n));
        let w = Weights::new(rng.vec(k * n));
        let init = (rng.vec(m * k), rng.vec(k * n), rng.vec(n));
        for layout in LAYOUTS {
            for bf16 in [false, true] {
                let weight = w.get(bf16, layout);
                let (mut want_di, mut want_dw, mut want_db) = init.clone();
                reference::backward(
                    Some(&mut want_di),
                    Some(&mut want_dw),
                    Some(&mut want_db),
                    &dout,
                    &inp,
                    weight,
                    k,
                    n,
                )
                .unwrap();
                for isa in Isa::available() {
                    let what = format!("{isa} m={m} k={k} n={n} {layout:?} bf16={bf16}");
                    let (mut di, mut dw, mut db) = init.clone();
                    backward(
                        isa,
                        Some(&mut di),
                        Some(&mut dw),
                        Some(&mut db),
                        &dout,
                        &inp,
                        weight,
                        k,
                        n,
                    )
                    .unwrap();
                    assert_close(&di, &want_di, &format!("{what} dinp"));
                    assert_close(&dw, &want_dw, &format!("{what} dweight"));
                    assert_close(&db, &want_db, &format!("{what} dbias"));
                    // Each gradient alone gives the same as all three together.
                    let mut di1 = init.0.clone();
                    backward(isa, Some(&mut di1), None, None, &dout, &inp, weight, k, n).unwrap();
                    assert_eq!(di1, di, "{what}");
                }
            }
        }
    }
}

/// backward against central finite differences of the forward, in f64: the loss
/// `L = Σ out ⊙ g`, perturbing every element of inp, W and bias.
#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng(5);
    for (m, k, n) in [(1, 3, 4), (3, 5, 4), (7, 6, 17)] {
        for layout in LAYOUTS {
            let (inp, g) = (rng.vec(m * k), rng.vec(m * n));
            let (w, bias) = (rng.vec(k * n), rng.vec(n));
            // The loss in f64, straight from the definition of the layout.
            let loss = |inp: &[f64], w: &[f64], bias: &[f64]| -> f64 {
                let mut l = 0.0;
                for i in 0..m {
                    for j in 0..n {
                        let mut o = bias[j];
                        for p in 0..k {
                            let wij = match layout {
                                WeightLayout::InOut => w[p * n + j],
                                WeightLayout::OutIn => w[j * k + p],
                            };
                            o += inp[i * k + p] * wij;
                        }
                        l += o * g[i * n + j] as f64;
                    }
                }
                l
            };
            let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
            let params = [widen(&inp), widen(&w), widen(&bias)];
            let (mut di, mut dw, mut db) = (vec![0.0; m * k], vec![0.0; k * n], vec![0.0; n]);
            let weight = Weight::f32(&w, layout);
            backward(
                Isa::best(),
                Some(&mut di),
                Some(&mut dw),
                Some(&mut db),
                &g,
                &inp,
                weight,
                k,
                n,
            )
            .unwrap();
            for (which, grad) in [&di, &dw, &db].into_iter().enumerate() {
                let h = 1e-4;
                let fd: Vec<f32> = (0..grad.len())
                    .map(|e| {
                        let mut plus = params.clone();
                        let mut minus = params.clone();
                        plus[which][e] += h;
                        minus[which][e] -= h;
                        ((loss(&plus[0], &plus[1], &plus[2])
                            - loss(&minus[0], &minus[1], &minus[2]))
                            / (2.0 * h)) as f32
                    })
                    .collect();
                assert_close(
                    grad,
                    &fd,
                    &format!("m={m} k={k} n={n} {layout:?} grad #{which}"),
                );
            }
        }
    }
}

/// A as a column slice of a wider matrix (row stride > k): packing reads only its
/// columns and zero-pads the last panel of rows; with a bf16 B stored transposed,
/// against the reference.
#[test]
fn gemm_a_with_row_stride_matches_reference() {
    let mut rng = Rng(9);
    for (m, n, k) in [(5, 9, 3), (7, 40, 300), (149, 33, 20), (2311, 17, 9)] {
        // A is columns 2..2 + k of an (m, k + 7) matrix.
        let a_buf = rng.vec(m * (k + 7));
        let a = MatRef::new(&a_buf[2..], k + 7, 1);
        let b_buf: Vec<bf16> = rng.vec(n * k).iter().map(|&x| bf16::from_f32(x)).collect();
        let b = MatRef::row_major(&b_buf, k).t();
        let mut want = vec![0.0; m * n];
        reference::gemm(
            m,
            n,
            k,
            a,
            b,
            MatMut::new(&mut want, n),
            false,
            Epilogue::default(),
        )
        .unwrap();
        for isa in Isa::available() {
            let mut c = vec![0.0; m * n];
            gemm(
                isa,
                m,
                n,
                k,
                a,
                b,
                MatMut::new(&mut c, n),
                false,
                Epilogue::default(),
            )
            .unwrap();
            assert_close(&c, &want, &format!("{isa} m={m} n={n} k={k}"));
        }
    }
}

/// The general GEMM with transposed and strided views of larger buffers, C with
/// `ldc > n`, accumulate on/off, and every epilogue, against the reference.
#[test]
fn gemm_strided_views_match_reference() {
    let mut rng = Rng(6);
    for (m, n, k) in [
        (1, 5, 7),
        (3, 17, 1),
        (4, 33, 9),
        (7, 16, 17),
        (65, 31, 63),
        (150, 20, 270),
    ] {
        // A stored transposed with padding: A[i, p] = a_buf[p·(m + 3) + i].
        let a_buf = rng.vec(k * (m + 3));
        let a = MatRef::new(&a_buf, 1, m + 3);
        // B every other column of a (k, 2n) matrix, as bf16 and f32.
        let b_buf = rng.vec(k * 2 * n);
        let b_bf16: Vec<bf16> = b_buf.iter().map(|&x| bf16::from_f32(x)).collect();
        let (bias, c0) = (rng.vec(n), rng.vec(m * (n + 5)));
        for (accumulate, gelu, with_bias, with_pre) in [
            (false, false, false, false),
            (true, false, true, false),
            (false, true, true, true),
            (true, true, false, true),
        ] {
            let bias = with_bias.then_some(&bias[..]);
            let what = format!("m={m} n={n} k={k} acc={accumulate} gelu={gelu} bias={with_bias}");
            let (mut want, mut want_pre) = (c0.clone(), vec![0.0; c0.len()]);
            let epi = Epilogue {
                bias,
                gelu,
                pre: with_pre.then_some(&mut want_pre[..]),
            };
            reference::gemm(
                m,
                n,
                k,
                a,
                MatRef::new(&b_buf, 2 * n, 2),
                MatMut::new(&mut want, n + 5),
                accumulate,
                epi,
            )
            .unwrap();
            for isa in Isa::available() {
                let (mut c, mut pre) = (c0.clone(), vec![0.0; c0.len()]);
                let epi = Epilogue {
                    bias,
                    gelu,
                    pre: with_pre.then_some(&mut pre[..]),
                };
                gemm(
                    isa,
                    m,
                    n,
                    k,
                    a,
                    MatRef::new(&b_buf, 2 * n, 2),
                    MatMut::new(&mut c, n + 5),
                    accumulate,
                    epi,
                )
                .unwrap();
                assert_close(&c, &want, &format!("{isa} {what}"));
                assert_close(&pre, &want_pre, &format!("{isa} {what} pre"));
                // Padding columns of C (j ≥ n) are untouched.
                for (i, row) in c.chunks(n + 5).enumerate() {
                    assert_eq!(
                        row[n..],
                        c0[i * (n + 5) + n..][..5],
                        "{isa} {what}: padding written"
                    );
                }
                // The bf16 B matches the reference on the same rounded values.
                let mut want16 = c0.clone();
                let b16 = MatRef::new(&b_bf16, 2 * n, 2);
                reference::gemm(
                    m,
                    n,
                    k,
                    a,
                    b16,
                    MatMut::new(&mut want16, n + 5),
                    accumulate,
                    Epilogue {
                        bias,
                        gelu,
                        pre: None,
                    },
                )
                .unwrap();
                let mut c16 = c0.clone();
                gemm(
                    isa,
                    m,
                    n,
                    k,
                    a,
                    b16,
                    MatMut::new(&mut c16, n + 5),
                    accumulate,
                    Epilogue {
                        bias,
                        gelu,
                        pre: None,
                    },
                )
                .unwrap();
                assert_close(&c16, &want16, &format!("{isa} {what} bf16"));
            }
        }
    }
}

/// Degenerate sizes: k = 0 gives `C = [C +] 0 + bias`, m = 0 or n = 0 does nothing.
#[test]
fn gemm_degenerate_sizes() {
    let bias = [1.0, 2.0, 3.0];
    for isa in Isa::available() {
        let mut c = vec![5.0; 6];
        let epi = Epilogue {
            bias: Some(&bias),
            ..Epilogue::default()
        };
        gemm(
            isa,
            2,
            3,
            0,
            MatRef::row_major(&[], 0),
            MatRef::<f32>::row_major(&[], 3),
            MatMut::new(&mut c, 3),
            true,
            epi,
        )
        .unwrap();
        assert_eq!(c, [6.0, 7.0, 8.0, 6.0, 7.0, 8.0]);
        gemm(
            isa,
            2,
            3,
            0,
            MatRef::row_major(&[], 0),
            MatRef::<f32>::row_major(&[], 3),
            MatMut::new(&mut c, 3),
            false,
            Epilogue::default(),
        )
        .unwrap();
        assert_eq!(c, [0.0; 6]);
        let mut c = vec![5.0; 6];
        gemm(
            isa,
            0,
            3,
            4,
            MatRef::row_major(&[], 4),
            MatRef::row_major(&[0.0f32; 12], 3),
            MatMut::new(&mut c, 3),
            false,
            Epilogue::default(),
        )
        .unwrap();
        gemm(
            isa,
            2,
            0,
            4,
            MatRef::row_major(&[0.0; 8], 4),
            MatRef::<f32>::row_major(&[], 0),
            MatMut::new(&mut c, 0),
            false,
            Epilogue::default(),
        )
        .unwrap();
        assert_eq!(c, [5.0; 6]);
    }
}

/// The AVX2 path against the scalar path directly, on a BLIS and a matrix–vector shape.
#[test]
fn avx2_matches_scalar() {
    let Some(avx2) = Isa::avx2() else { return };
    let mut rng = Rng(7);
    for (m, k, n) in [(100, 300, 200), (1, 800, 900), (3, 77, 4100)] {
        let inp = rng.vec(m * k);
        let w = Weights::new(rng.vec(k * n));
        for layout in LAYOUTS {
            for bf16 in [false, true] {
                let weight = w.get(bf16, layout);
                let (mut fast, mut slow) = (vec![0.0; m * n], vec![0.0; m * n]);
                forward_gelu(avx2, &mut fast, None, &inp, weight, None, k, n).unwrap();
                forward_gelu(Isa::scalar(), &mut slow, None, &inp, weight, None, k, n).unwrap();
                assert_close(
                    &fast,
                    &slow,
                    &format!("m={m} k={k} n={n} {layout:?} bf16={bf16}"),
                );
            }
        }
    }
}

/// Bitwise-identical results with 1, 2 and 3 threads, for forward (BLIS and
/// matrix–vector shapes, both layouts) and every backward product.
#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = Rng(8);
    for (m, k, n) in [
        (1, 300, 1000),
        (3, 700, 600),
        (200, 300, 700),
        (64, 520, 4200),
    ] {
        let (inp, dout) = (rng.vec(m * k), rng.vec(m * n));
        let (w, bias) = (rng.vec(k * n), rng.vec(n));
        for layout in LAYOUTS {
            let weight = Weight::f32(&w, layout);
            let run = || {
                let mut out = vec![0.0; m * n];
                forward_gelu(Isa::best(), &mut out, None, &inp, weight, Some(&bias), k, n).unwrap();
                let (mut di, mut dw, mut db) = (vec![0.0; m * k], vec![0.0; k * n], vec![0.0; n]);
                backward(
                    Isa::best(),
                    Some(&mut di),
                    Some(&mut dw),
                    Some(&mut db),
                    &dout,
                    &inp,
                    weight,
                    k,
                    n,
                )
                .unwrap();
                [out, di, dw, db].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
            };
            let one = in_pool(1, run);
            for threads in [2, 3] {
                assert!(
                    in_pool(threads, run) == one,
                    "m={m} k={k} n={n} {layout:?}: {threads} threads differ from 1"
                );
            }
        }
    }
}

/// Bad sizes give an error and leave the outputs untouched; nothing panics.
#[test]
fn bad_arguments_are_errors() {
    let isa = Isa::best();
    let (inp, w, bias, dout) = (vec![1.0; 6], vec![1.0; 12], vec![1.0; 4], vec![1.0; 8]);
    let weight = Weight::f32(&w, WeightLayout::InOut);
    let mut out = vec![7.0; 8];
    // inp (2, 3) · W (3, 4) = out (2, 4)
    assert!(forward(isa, &mut out, &inp, weight, Some(&bias), 3, 4).is_ok());
    out.fill(7.0);
    assert!(forward(isa, &mut out[..7], &inp, weight, None, 3, 4).is_err());
    assert!(forward(isa, &mut out, &inp[..5], weight, None, 3, 4).is_err());
    assert!(forward(isa, &mut out, &inp, weight, None, 0, 4).is_err());
    assert!(
        forward(
            isa,
            &mut out,
            &inp,
            Weight::f32(&w[..11], WeightLayout::OutIn),
            None,
            3,
            4
        )
        .is_err()
    );
    assert!(forward(isa, &mut out, &inp, weight, Some(&bias[..3]), 3, 4).is_err());
    assert!(forward(isa, &mut out, &inp, weight, None, 3, usize::MAX).is_err());
    let mut pre = vec![7.0; 7];
    assert!(forward_gelu(isa, &mut out, Some(&mut pre), &inp, weight, None, 3, 4).is_err());
    assert!(
        pre.iter().chain(&out).all(|&x| x == 7.0),
        "an error wrote output"
    );
    let (mut di, mut dw, mut db) = (vec![7.0; 6], vec![7.0; 12], vec![7.0; 4]);
    assert!(
        backward(
            isa,
            Some(&mut di[..5]),
            Some(&mut dw),
            None,
            &dout,
            &inp,
            weight,
            3,
            4
        )
        .is_err()
    );
    assert!(
        backward(
            isa,
            Some(&mut di),
            Some(&mut dw[..11]),
            None,
            &dout,
            &inp,
            weight,
            3,
            4
        )
        .is_err()
    );
    assert!(
        backward(
            isa,
            Some(&mut di),
            None,
            Some(&mut db[..3]),
            &dout,
            &inp,
            weight,
            3,
            4
        )
        .is_err()
    );
    assert!(
        backward(
            isa,
            Some(&mut di),
            None,
            None,
            &dout[..7],
            &inp,
            weight,
            3,
            4
        )
        .is_err()
    );
    assert!(
        di.iter().chain(&dw).chain(&db).all(|&x| x == 7.0),
        "an error wrote a gradient"
    );
    // gemm: views that do not fit, overlapping rows, short pre.
    let mut c = vec![7.0; 8];
    let (a, b) = (MatRef::row_major(&inp, 3), MatRef::row_major(&w, 4));
    assert!(
        gemm(
            isa,
            2,
            4,
            3,
            a,
            b,
            MatMut::new(&mut c, 4),
            false,
            Epilogue::default()
        )
        .is_ok()
    );
    c.fill(7.0);
    assert!(
        gemm(
            isa,
            2,
            4,
            3,
            MatRef::new(&inp, 3, 2),
            b,
            MatMut::new(&mut c, 4),
            false,
            Epilogue::default()
        )
        .is_err()
    );
    assert!(
        gemm(
            isa,
            2,
            4,
            3,
            a.t(),
            b,
            MatMut::new(&mut c, 4),
            false,
            Epilogue::default()
        )
        .is_err()
    );
    assert!(
        gemm(
            isa,
            2,
            4,
            3,
            a,
            MatRef::new(&w, 4, 2),
            MatMut::new(&mut c, 4),
            false,
            Epilogue::default()
        )
        .is_err()
    );
    assert!(
        gemm(
            isa,
            2,
            4,
            3,
            a,
            b,
            MatMut::new(&mut c, 3),
            false,
            Epilogue::default()
        )
        .is_err()
    );
    assert!(
        gemm(
            isa,
            2,
            4,
            3,
            a,
            b,
            MatMut::new(&mut c[..7], 4),
            false,
            Epilogue::default()
        )
        .is_err()
    );
    assert!(
        gemm(
            isa,
            2,
            4,
            3,
            a,
            b,
            MatMut::new(&mut c, 4),
            false,
            Epilogue {
                pre: Some(&mut pre),
                ..Epilogue::default()
            }
        )
        .is_err()
    );
    assert!(
        gemm(
            isa,
            usize::MAX,
            4,
            3,
            a,
            b,
            MatMut::new(&mut c, 4),
            false,
            Epilogue::default()
        )
        .is_err()
    );
    assert!(c.iter().all(|&x| x == 7.0), "an error wrote output");
}
