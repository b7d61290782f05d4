use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::dropout::{self, reference};
use gpt2_kernels::rng;

use crate::common::*;

#[test]
fn forward_and_backward_match_reference() {
    let mut rng = Rng::new(50);
    for isa in isas() {
        for n in SIZES.into_iter().chain([0, 70_000]) {
            for p in [0.0, 0.1, 0.5] {
                let (x, g) = (
                    uniform(&mut rng, n, -1.0, 1.0),
                    uniform(&mut rng, n, -1.0, 1.0),
                );
                let mut out = vec![0.0; n];
                dropout::forward(isa, &mut out, &x, p, 7, 1000).unwrap();
                let mut want = vec![0.0; n];
                reference::forward(&mut want, &x, p, 7, 1000).unwrap();
                assert_eq!(out, want, "{isa} n={n} p={p}");
                let d0 = uniform(&mut rng, n, -1.0, 1.0);
                let mut d = d0.clone();
                dropout::backward(isa, &mut d, &g, p, 7, 1000).unwrap();
                let mut want = d0;
                reference::backward(&mut want, &g, p, 7, 1000).unwrap();
                assert_eq!(d, want, "{isa} n={n} p={p} backward");
            }
        }
    }
}

#[test]
fn mask_follows_the_counter_rule() {
    let isa = Isa::best();
    let (n, p, seed, offset) = (100_000, 0.3f32, 99u64, 12_345u64);
    let x = vec![1.0f32; n];
    let mut out = vec![0.0; n];
    dropout::forward(isa, &mut out, &x, p, seed, offset).unwrap();
    let scale = 1.0 / (1.0 - p);
    let mut dropped = 0;
    for (i, &y) in out.iter().enumerate() {
        let keep = rng::uniform(seed, offset + i as u64) >= p;
        assert_eq!(y, if keep { scale } else { 0.0 }, "element {i}");
        dropped += usize::from(!keep);
    }
    // The dropped fraction is within 5 standard deviations of p.
    let frac = dropped as f64 / n as f64;
    let sd = (f64::from(p) * (1.0 - f64::from(p)) / n as f64).sqrt();
    assert!((frac - f64::from(p)).abs() < 5.0 * sd, "dropped {frac}");
    // p = 0 is the identity; a different seed or offset gives a different mask.
    dropout::forward(isa, &mut out, &x, 0.0, seed, offset).unwrap();
    assert_eq!(out, x);
    let mask = |seed, offset| {
        let mut o = vec![0.0; 256];
        dropout::forward(isa, &mut o, &x[..256], 0.5, seed, offset).unwrap();
        o
    };
    assert_ne!(mask(1, 0), mask(2, 0));
    assert_ne!(mask(1, 0), mask(1, 256));
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng::new(51);
    let n = 33;
    let (x, g) = (
        uniform(&mut rng, n, -1.0, 1.0),
        uniform(&mut rng, n, -1.0, 1.0),
    );
    let g64 = to_f64(&g);
    let loss = |x: &[f64]| {
        let mut y = vec![0.0; n];
        reference::forward(&mut y, x, 0.4, 5, 0).unwrap();
        weighted_sum(&g64, &y)
    };
    let fd = finite_diff(loss, &to_f64(&x), 1e-5);
    for isa in isas() {
        let mut d = vec![0.0; n];
        dropout::backward(isa, &mut d, &g, 0.4, 5, 0).unwrap();
        assert_close(&format!("{isa} dropout backward vs FD"), &d, &fd, 1e-6);
    }
}

#[test]
fn deterministic_across_thread_counts_and_errors() {
    let mut rng = Rng::new(52);
    let x = uniform(&mut rng, 100_003, -1.0, 1.0);
    for isa in isas() {
        assert_thread_invariant("dropout", || {
            let mut out = vec![0.0; x.len()];
            dropout::forward(isa, &mut out, &x, 0.2, 3, 17).unwrap();
            let mut d = x.clone();
            dropout::backward(isa, &mut d, &out, 0.2, 3, 17).unwrap();
            vec![out, d]
        });
    }
    let isa = Isa::best();
    let mut out = vec![0.0; 4];
    for p in [1.0, -0.1, 1.5, f32::NAN] {
        assert!(
            matches!(
                dropout::forward(isa, &mut out, &[0.0; 4], p, 0, 0),
                Err(KernelError::Shape { .. })
            ),
            "p={p}"
        );
        assert!(matches!(
            dropout::backward(isa, &mut out, &[0.0; 4], p, 0, 0),
            Err(KernelError::Shape { .. })
        ));
    }
    assert!(matches!(
        dropout::forward(isa, &mut out, &[0.0; 3], 0.1, 0, 0),
        Err(KernelError::Length { .. })
    ));
}
