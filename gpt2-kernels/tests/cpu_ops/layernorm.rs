use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::layernorm::{self, reference};

use crate::common::*;

struct Case {
    inp: Vec<f32>,
    weight: Vec<f32>,
    bias: Vec<f32>,
    dout: Vec<f32>,
}

fn case(rng: &mut Rng, n: usize, c: usize) -> Case {
    // A non-zero mean per row, as activations in a residual stream have.
    let mut inp = uniform(rng, n * c, -2.0, 2.0);
    for row in inp.chunks_mut(c) {
        let shift = 3.0 * rng.next_f32();
        row.iter_mut().for_each(|x| *x += shift);
    }
    Case {
        inp,
        weight: uniform(rng, c, 0.5, 1.5),
        bias: uniform(rng, c, -0.5, 0.5),
        dout: uniform(rng, n * c, -1.0, 1.0),
    }
}

/// Runs the kernel's forward: `(out, mean, rstd)`.
fn run_forward(isa: Isa, k: &Case, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut out = vec![0.0; k.inp.len()];
    let (mut mean, mut rstd) = (vec![0.0; n], vec![0.0; n]);
    layernorm::forward(
        isa, &mut out, &mut mean, &mut rstd, &k.inp, &k.weight, &k.bias,
    )
    .unwrap();
    (out, mean, rstd)
}

/// The `f64` reference forward: `(out, mean, rstd)`.
fn ref_forward(inp: &[f64], w: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = inp.len() / w.len();
    let mut out = vec![0.0; inp.len()];
    let (mut mean, mut rstd) = (vec![0.0; n], vec![0.0; n]);
    reference::forward(&mut out, &mut mean, &mut rstd, inp, w, b).unwrap();
    (out, mean, rstd)
}

#[test]
fn forward_and_backward_match_f64_reference() {
    let mut rng = Rng::new(20);
    for isa in isas() {
        for n in [1, 3, 17] {
            for c in SIZES.into_iter().chain([768]) {
                let k = case(&mut rng, n, c);
                let what = format!("{isa} n={n} c={c}");
                let (out, mean, rstd) = run_forward(isa, &k, n);
                let (w, b) = (to_f64(&k.weight), to_f64(&k.bias));
                let (r_out, r_mean, r_rstd) = ref_forward(&to_f64(&k.inp), &w, &b);
                assert_close(&format!("{what} out"), &out, &r_out, 1e-5);
                assert_close(&format!("{what} mean"), &mean, &r_mean, 1e-6);
                assert_close(&format!("{what} rstd"), &rstd, &r_rstd, 1e-5);

                let init = uniform(&mut rng, n * c + 2 * c, -1.0, 1.0);
                let (mut dinp, mut dw, mut db) = (
                    init[..n * c].to_vec(),
                    init[n * c..n * c + c].to_vec(),
                    init[n * c + c..].to_vec(),
                );
                layernorm::backward(
                    isa, &mut dinp, &mut dw, &mut db, &k.dout, &k.inp, &k.weight, &mean, &rstd,
                )
                .unwrap();
                let (mut r_dinp, mut r_dw, mut r_db) = (
                    to_f64(&init[..n * c]),
                    to_f64(&init[n * c..n * c + c]),
                    to_f64(&init[n * c + c..]),
                );
                reference::backward(
                    &mut r_dinp,
                    &mut r_dw,
                    &mut r_db,
                    &to_f64(&k.dout),
                    &to_f64(&k.inp),
                    &w,
                    &r_mean,
                    &r_rstd,
                )
                .unwrap();
                assert_close(&format!("{what} dinp"), &dinp, &r_dinp, 1e-5);
                assert_close(&format!("{what} dweight"), &dw, &r_dw, 1e-5);
                assert_close(&format!("{what} dbias"), &db, &r_db, 1e-5);
            }
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng::new(21);
    for (n, c) in [(3, 7), (2, 17)] {
        let k = case(&mut rng, n, c);
        let (x, w, b) = (to_f64(&k.inp), to_f64(&k.weight), to_f64(&k.bias));
        let g = to_f64(&k.dout);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| weighted_sum(&g, &ref_forward(x, w, b).0);
        let fd_x = finite_diff(|v| loss(v, &w, &b), &x, 1e-5);
        let fd_w = finite_diff(|v| loss(&x, v, &b), &w, 1e-5);
        let fd_b = finite_diff(|v| loss(&x, &w, v), &b, 1e-5);
        // The f64 reference backward is exact to FD accuracy.
        let (_, mean, rstd) = ref_forward(&x, &w, &b);
        let (mut rx, mut rw, mut rb) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
        reference::backward(&mut rx, &mut rw, &mut rb, &g, &x, &w, &mean, &rstd).unwrap();
        for (name, got, fd) in [("dinp", &rx, &fd_x), ("dw", &rw, &fd_w), ("db", &rb, &fd_b)] {
            let got: Vec<f32> = got.iter().map(|&v| v as f32).collect();
            assert_close(&format!("reference {name} vs FD"), &got, fd, 1e-6);
        }
        for isa in isas() {
            let (_, mean, rstd) = run_forward(isa, &k, n);
            let (mut dx, mut dw, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
            layernorm::backward(
                isa, &mut dx, &mut dw, &mut db, &k.dout, &k.inp, &k.weight, &mean, &rstd,
            )
            .unwrap();
            assert_close(&format!("{isa} dinp vs FD"), &dx, &fd_x, 1e-4);
            assert_close(&format!("{isa} dweight vs FD"), &dw, &fd_w, 1e-4);
            assert_close(&format!("{isa} dbias vs FD"), &db, &fd_b, 1e-4);
        }
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let mut rng = Rng::new(22);
    let (n, c) = (203, 65);
    let k = case(&mut rng, n, c);
    for isa in isas() {
        assert_thread_invariant("layernorm", || {
            let (out, mean, rstd) = run_forward(isa, &k, n);
            let (mut dx, mut dw, mut db) = (vec![0.0; n * c], vec![0.0; c], vec![0.0; c]);
            layernorm::backward(
                isa, &mut dx, &mut dw, &mut db, &k.dout, &k.inp, &k.weight, &mean, &rstd,
            )
            .unwrap();
            vec![out, mean, rstd, dx, dw, db]
        });
    }
}

#[test]
fn bad_arguments_are_errors() {
    let isa = Isa::best();
    let (w, b) = (vec![1.0; 4], vec![0.0; 4]);
    let (mut out, mut mean, mut rstd) = (vec![0.0; 8], vec![0.0; 2], vec![0.0; 2]);
    let inp = vec![0.0; 8];
    assert!(layernorm::forward(isa, &mut out, &mut mean, &mut rstd, &inp, &w, &b).is_ok());
    let r = layernorm::forward(isa, &mut out, &mut mean, &mut rstd, &inp[..7], &w, &b);
    assert!(matches!(r, Err(KernelError::Shape { .. })));
    let r = layernorm::forward(isa, &mut out, &mut mean, &mut rstd, &inp, &w, &b[..3]);
    assert!(matches!(r, Err(KernelError::Length { name: "bias", .. })));
    let r = layernorm::forward(isa, &mut out, &mut mean[..1], &mut rstd, &inp, &w, &b);
    assert!(matches!(r, Err(KernelError::Length { name: "mean", .. })));
    let r = layernorm::forward(isa, &mut out, &mut mean, &mut rstd, &inp, &[], &[]);
    assert!(matches!(r, Err(KernelError::Shape { .. })));
    let (mut dx, mut dw, mut db) = (vec![0.0; 8], vec![0.0; 3], vec![0.0; 4]);
    let r = layernorm::backward(isa, &mut dx, &mut dw, &mut db, &inp, &inp, &w, &mean, &rstd);
    assert!(matches!(
        r,
        Err(KernelError::Length {
            name: "dweight",
            ..
        })
    ));
}
