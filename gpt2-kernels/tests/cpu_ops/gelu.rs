use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::gelu::{self, reference};

use crate::common::*;

fn lengths() -> impl Iterator<Item = usize> {
    SIZES.into_iter().chain([0, 8, 100_000])
}

#[test]
fn forward_and_backward_match_f64_reference() {
    let mut rng = Rng::new(30);
    for isa in isas() {
        for n in lengths() {
            let mut x = uniform(&mut rng, n, -8.0, 8.0);
            // In f32 (here as in PyTorch) 1 + tanh(u) cancels in the far negative tail:
            // the absolute error there is ~1e-7 while the values are tiny. Anchor each
            // tensor with an O(1) value so that max|b| is the activations' scale.
            if let Some(first) = x.first_mut() {
                *first = 2.0;
            }
            let g = uniform(&mut rng, n, -1.0, 1.0);
            let d0 = uniform(&mut rng, n, -1.0, 1.0);
            let mut out = vec![0.0; n];
            gelu::forward(isa, &mut out, &x).unwrap();
            let mut want = vec![0.0; n];
            reference::forward(&mut want, &to_f64(&x)).unwrap();
            assert_close(&format!("{isa} gelu n={n}"), &out, &want, 1e-6);

            let mut d = d0.clone();
            gelu::backward(isa, &mut d, &x, &g).unwrap();
            let mut want = to_f64(&d0);
            reference::backward(&mut want, &to_f64(&x), &to_f64(&g)).unwrap();
            assert_close(&format!("{isa} gelu backward n={n}"), &d, &want, 1e-6);
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng::new(31);
    let x = uniform(&mut rng, 65, -5.0, 5.0);
    let g = to_f64(&uniform(&mut rng, 65, -1.0, 1.0));
    let loss = |x: &[f64]| {
        let mut y = vec![0.0; x.len()];
        reference::forward(&mut y, x).unwrap();
        weighted_sum(&g, &y)
    };
    let fd = finite_diff(loss, &to_f64(&x), 1e-5);
    let mut r = vec![0.0; x.len()];
    reference::backward(&mut r, &to_f64(&x), &g).unwrap();
    let r32: Vec<f32> = r.iter().map(|&v| v as f32).collect();
    assert_close("reference gelu backward vs FD", &r32, &fd, 1e-7);
    let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
    for isa in isas() {
        let mut d = vec![0.0; x.len()];
        gelu::backward(isa, &mut d, &x, &g32).unwrap();
        assert_close(&format!("{isa} gelu backward vs FD"), &d, &fd, 1e-5);
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let mut rng = Rng::new(32);
    let x = uniform(&mut rng, 70_001, -5.0, 5.0);
    for isa in isas() {
        assert_thread_invariant("gelu", || {
            let mut out = vec![0.0; x.len()];
            gelu::forward(isa, &mut out, &x).unwrap();
            let mut d = vec![0.5; x.len()];
            gelu::backward(isa, &mut d, &x, &out).unwrap();
            vec![out, d]
        });
    }
}

#[test]
fn bad_arguments_are_errors() {
    let isa = Isa::best();
    let mut out = vec![0.0; 3];
    assert!(matches!(
        gelu::forward(isa, &mut out, &[0.0; 4]),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        gelu::backward(isa, &mut out, &[0.0; 3], &[0.0; 2]),
        Err(KernelError::Length { .. })
    ));
}
