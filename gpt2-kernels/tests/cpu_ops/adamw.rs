use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::adamw::{self, AdamWParams, reference};

use crate::common::*;

const HP: AdamWParams = AdamWParams {
    lr: 1e-2,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
};

#[test]
fn steps_match_f64_reference() {
    let mut rng = Rng::new(80);
    for isa in isas() {
        for n in SIZES.into_iter().chain([0, 40_000]) {
            let p0 = uniform(&mut rng, n, -1.0, 1.0);
            let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; n], vec![0.0; n]);
            let (mut rp, mut rm, mut rv) = (to_f64(&p0), vec![0.0; n], vec![0.0; n]);
            for t in 1..=5 {
                let g = uniform(&mut rng, n, -1.0, 1.0);
                adamw::step(isa, &mut p, &g, &mut m, &mut v, &HP, t, 0.1).unwrap();
                reference::step(&mut rp, &to_f64(&g), &mut rm, &mut rv, &HP, t, 0.1).unwrap();
            }
            assert_close(&format!("{isa} n={n} params"), &p, &rp, 1e-6);
            assert_close(&format!("{isa} n={n} m"), &m, &rm, 1e-6);
            assert_close(&format!("{isa} n={n} v"), &v, &rv, 1e-6);
        }
    }
}

#[test]
fn first_step_moves_each_param_by_lr() {
    // With m = v = 0 at step 1, m̂ = g and v̂ = g², so each parameter moves by
    // lr·sign(g) (up to ε) after the decay: an independent closed form.
    let isa = Isa::best();
    let (g, p0) = ([0.5f32, -2.0, 1e-3, -7.0], [1.0f32, -1.0, 0.5, 0.0]);
    let mut p = p0;
    let (mut m, mut v) = ([0.0; 4], [0.0; 4]);
    adamw::step(isa, &mut p, &g, &mut m, &mut v, &HP, 1, 0.1).unwrap();
    for i in 0..4 {
        let want = f64::from(p0[i]) * (1.0 - HP.lr * 0.1) - HP.lr * f64::from(g[i]).signum();
        assert!(
            (f64::from(p[i]) - want).abs() < 1e-6,
            "param {i}: {} vs {want}",
            p[i]
        );
    }
}

#[test]
fn sum_of_squares_and_scale() {
    let mut rng = Rng::new(81);
    for isa in isas() {
        for n in SIZES.into_iter().chain([0, 100_000]) {
            let x = uniform(&mut rng, n, -1.0, 1.0);
            let s = adamw::sum_of_squares(isa, &x);
            let want = reference::sum_of_squares(&x);
            assert!(
                (s - want).abs() <= 1e-12 * want.max(1e-300),
                "{isa} n={n}: {s} vs {want}"
            );
            let mut y = x.clone();
            adamw::scale(isa, &mut y, 0.25).unwrap();
            assert!(
                y.iter().zip(&x).all(|(a, b)| *a == 0.25 * b),
                "{isa} scale n={n}"
            );
        }
    }
}

#[test]
fn deterministic_across_thread_counts_and_errors() {
    let mut rng = Rng::new(82);
    let n = 100_001;
    let (p0, g) = (
        uniform(&mut rng, n, -1.0, 1.0),
        uniform(&mut rng, n, -1.0, 1.0),
    );
    for isa in isas() {
        assert_thread_invariant("adamw", || {
            let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; n], vec![0.0; n]);
            adamw::step(isa, &mut p, &g, &mut m, &mut v, &HP, 1, 0.1).unwrap();
            adamw::step(isa, &mut p, &g, &mut m, &mut v, &HP, 2, 0.1).unwrap();
            let norm = adamw::sum_of_squares(isa, &p);
            vec![
                p,
                m,
                v,
                vec![norm as f32, (norm - f64::from(norm as f32)) as f32],
            ]
        });
    }
    let isa = Isa::best();
    let (mut p, mut m, mut v) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]);
    let r = adamw::step(isa, &mut p, &[0.0; 3], &mut m, &mut v, &HP, 0, 0.0);
    assert!(matches!(r, Err(KernelError::Shape { .. })), "step 0");
    let r = adamw::step(isa, &mut p, &[0.0; 2], &mut m, &mut v, &HP, 1, 0.0);
    assert!(matches!(r, Err(KernelError::Length { name: "grads", .. })));
    let r = adamw::step(isa, &mut p, &[0.0; 3], &mut m[..2], &mut v, &HP, 1, 0.0);
    assert!(matches!(r, Err(KernelError::Length { name: "m", .. })));
}
