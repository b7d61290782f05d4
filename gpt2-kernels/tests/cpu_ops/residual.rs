use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::residual::{self, reference};

use crate::common::*;

#[test]
fn forward_backward_reference_and_finite_differences() {
    let mut rng = Rng::new(40);
    for isa in isas() {
        for n in SIZES.into_iter().chain([0, 40_000]) {
            let (a, b, g) = (
                uniform(&mut rng, n, -1.0, 1.0),
                uniform(&mut rng, n, -1.0, 1.0),
                uniform(&mut rng, n, -1.0, 1.0),
            );
            let mut out = vec![0.0; n];
            residual::forward(isa, &mut out, &a, &b).unwrap();
            let mut want = vec![0.0; n];
            reference::forward(&mut want, &a, &b).unwrap();
            assert_eq!(out, want, "{isa} n={n}: one rounding per element, so exact");

            let (mut da, mut db) = (a.clone(), b.clone());
            residual::backward(isa, &mut da, &mut db, &g).unwrap();
            let (mut ra, mut rb) = (a.clone(), b.clone());
            reference::backward(&mut ra, &mut rb, &g).unwrap();
            assert_eq!((da, db), (ra, rb), "{isa} n={n} backward");
        }
        // FD of Σ g ⊙ (a + b) with respect to a and b.
        let n = 17;
        let (a, b, g) = (
            uniform(&mut rng, n, -1.0, 1.0),
            uniform(&mut rng, n, -1.0, 1.0),
            uniform(&mut rng, n, -1.0, 1.0),
        );
        let g64 = to_f64(&g);
        let loss = |a: &[f64], b: &[f64]| {
            let mut y = vec![0.0; n];
            reference::forward(&mut y, a, b).unwrap();
            weighted_sum(&g64, &y)
        };
        let (a64, b64) = (to_f64(&a), to_f64(&b));
        let (mut da, mut db) = (vec![0.0; n], vec![0.0; n]);
        residual::backward(isa, &mut da, &mut db, &g).unwrap();
        assert_close(
            "da vs FD",
            &da,
            &finite_diff(|x| loss(x, &b64), &a64, 1e-5),
            1e-7,
        );
        assert_close(
            "db vs FD",
            &db,
            &finite_diff(|x| loss(&a64, x), &b64, 1e-5),
            1e-7,
        );
    }
}

#[test]
fn deterministic_across_thread_counts_and_errors() {
    let mut rng = Rng::new(41);
    let (a, b) = (
        uniform(&mut rng, 50_000, -1.0, 1.0),
        uniform(&mut rng, 50_000, -1.0, 1.0),
    );
    for isa in isas() {
        assert_thread_invariant("residual", || {
            let mut out = vec![0.0; a.len()];
            residual::forward(isa, &mut out, &a, &b).unwrap();
            let (mut da, mut db) = (a.clone(), b.clone());
            residual::backward(isa, &mut da, &mut db, &out).unwrap();
            vec![out, da, db]
        });
    }
    let isa = Isa::best();
    let mut out = vec![0.0; 3];
    assert!(matches!(
        residual::forward(isa, &mut out, &[0.0; 3], &[0.0; 4]),
        Err(KernelError::Length { name: "b", .. })
    ));
    let mut da = vec![0.0; 2];
    assert!(matches!(
        residual::backward(isa, &mut da, &mut out, &[0.0; 3]),
        Err(KernelError::Length { name: "da", .. })
    ));
}
