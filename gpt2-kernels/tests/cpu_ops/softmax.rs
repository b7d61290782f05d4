use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::softmax::{self, reference};

use crate::common::*;

fn ref_forward(x: &[f64], v: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    reference::forward(&mut y, x, v).unwrap();
    y
}

#[test]
fn forward_and_backward_match_f64_reference() {
    let mut rng = Rng::new(60);
    for isa in isas() {
        for n in [1, 3, 8] {
            for v in SIZES.into_iter().chain([1000]) {
                // Large logits: the max subtraction must prevent overflow.
                let x = uniform(&mut rng, n * v, -30.0, 30.0)
                    .iter()
                    .map(|a| a + 500.0)
                    .collect::<Vec<_>>();
                let mut out = vec![0.0; n * v];
                softmax::forward(isa, &mut out, &x, v).unwrap();
                let want = ref_forward(&to_f64(&x), v);
                assert_close(&format!("{isa} softmax n={n} v={v}"), &out, &want, 1e-6);

                let g = uniform(&mut rng, n * v, -1.0, 1.0);
                let d0 = uniform(&mut rng, n * v, -0.01, 0.01);
                let mut d = d0.clone();
                softmax::backward(isa, &mut d, &out, &g, v).unwrap();
                let mut rd = to_f64(&d0);
                reference::backward(&mut rd, &to_f64(&out), &to_f64(&g), v).unwrap();
                assert_close(
                    &format!("{isa} softmax backward n={n} v={v}"),
                    &d,
                    &rd,
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng::new(61);
    let (n, v) = (3, 17);
    let x = uniform(&mut rng, n * v, -3.0, 3.0);
    let g = uniform(&mut rng, n * v, -1.0, 1.0);
    let g64 = to_f64(&g);
    let fd = finite_diff(
        |x| weighted_sum(&g64, &ref_forward(x, v)),
        &to_f64(&x),
        1e-5,
    );
    for isa in isas() {
        let mut out = vec![0.0; n * v];
        softmax::forward(isa, &mut out, &x, v).unwrap();
        let mut d = vec![0.0; n * v];
        softmax::backward(isa, &mut d, &out, &g, v).unwrap();
        assert_close(&format!("{isa} softmax backward vs FD"), &d, &fd, 1e-5);
    }
}

#[test]
fn deterministic_across_thread_counts_and_errors() {
    let mut rng = Rng::new(62);
    let (n, v) = (97, 301);
    let x = uniform(&mut rng, n * v, -5.0, 5.0);
    for isa in isas() {
        assert_thread_invariant("softmax", || {
            let mut out = vec![0.0; n * v];
            softmax::forward(isa, &mut out, &x, v).unwrap();
            let mut d = vec![0.0; n * v];
            softmax::backward(isa, &mut d, &out, &x, v).unwrap();
            vec![out, d]
        });
    }
    let isa = Isa::best();
    let mut out = vec![0.0; 6];
    assert!(matches!(
        softmax::forward(isa, &mut out, &[0.0; 6], 4),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        softmax::forward(isa, &mut out, &[0.0; 6], 0),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        softmax::forward(isa, &mut out, &[0.0; 3], 3),
        Err(KernelError::Length { .. })
    ));
    assert!(matches!(
        softmax::backward(isa, &mut out, &[0.0; 6], &[0.0; 3], 3),
        Err(KernelError::Length { .. })
    ));
}
