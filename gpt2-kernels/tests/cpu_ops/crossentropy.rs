use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::crossentropy::{self, reference};

use crate::common::*;

struct Case {
    logits: Vec<f32>,
    targets: Vec<u32>,
}

/// `n` rows of `vp ≥ v` logits (garbage in the padded columns) and targets `< v`.
fn case(rng: &mut Rng, n: usize, v: usize, vp: usize) -> Case {
    let logits = uniform(rng, n * vp, -10.0, 10.0);
    let targets = (0..n).map(|_| (rng.next_u64() % v as u64) as u32).collect();
    Case { logits, targets }
}

#[test]
fn forward_and_fused_backward_match_f64_reference() {
    let mut rng = Rng::new(70);
    for isa in isas() {
        for n in [1, 3, 17] {
            for (v, vp) in [
                (1, 1),
                (3, 8),
                (17, 17),
                (65, 128),
                (127, 128),
                (1000, 1024),
            ] {
                let k = case(&mut rng, n, v, vp);
                let what = format!("{isa} n={n} v={v} vp={vp}");
                let mut losses = vec![0.0; n];
                crossentropy::forward(isa, &mut losses, &k.logits, &k.targets, v).unwrap();
                let mut r_losses = vec![0.0; n];
                reference::forward(&mut r_losses, &to_f64(&k.logits), &k.targets, v).unwrap();
                assert_close(&format!("{what} loss"), &losses, &r_losses, 1e-6);

                let dloss = 1.0 / n as f32;
                let (mut fused_losses, mut dlogits) = (vec![0.0; n], k.logits.clone());
                crossentropy::forward_backward(
                    isa,
                    &mut fused_losses,
                    &mut dlogits,
                    &k.targets,
                    v,
                    dloss,
                )
                .unwrap();
                let mut r_dlogits = to_f64(&k.logits);
                let mut r2 = vec![0.0; n];
                reference::forward_backward(
                    &mut r2,
                    &mut r_dlogits,
                    &k.targets,
                    v,
                    f64::from(dloss),
                )
                .unwrap();
                assert_close(
                    &format!("{what} fused loss"),
                    &fused_losses,
                    &r_losses,
                    1e-6,
                );
                assert_close(&format!("{what} dlogits"), &dlogits, &r_dlogits, 1e-6);
                // Padded columns are zeroed.
                assert!(
                    dlogits
                        .chunks(vp)
                        .all(|row| row[v..].iter().all(|&x| x == 0.0)),
                    "{what} padding"
                );
            }
        }
    }
}

#[test]
fn dlogits_match_finite_differences() {
    let mut rng = Rng::new(71);
    let (n, v, vp) = (3, 17, 24);
    let k = case(&mut rng, n, v, vp);
    let dloss = 0.5;
    let loss = |x: &[f64]| {
        let mut l = vec![0.0; n];
        reference::forward(&mut l, x, &k.targets, v).unwrap();
        l.iter().sum::<f64>() * dloss
    };
    let fd = finite_diff(loss, &to_f64(&k.logits), 1e-5);
    let mut r = to_f64(&k.logits);
    reference::forward_backward(&mut vec![0.0; n], &mut r, &k.targets, v, dloss).unwrap();
    let r32: Vec<f32> = r.iter().map(|&x| x as f32).collect();
    assert_close("reference dlogits vs FD", &r32, &fd, 1e-7);
    for isa in isas() {
        let mut d = k.logits.clone();
        crossentropy::forward_backward(isa, &mut vec![0.0; n], &mut d, &k.targets, v, dloss as f32)
            .unwrap();
        assert_close(&format!("{isa} dlogits vs FD"), &d, &fd, 1e-5);
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let mut rng = Rng::new(72);
    let (n, v, vp) = (64, 1000, 1024);
    let k = case(&mut rng, n, v, vp);
    for isa in isas() {
        assert_thread_invariant("crossentropy", || {
            let mut losses = vec![0.0; n];
            crossentropy::forward(isa, &mut losses, &k.logits, &k.targets, v).unwrap();
            let (mut l2, mut d) = (vec![0.0; n], k.logits.clone());
            crossentropy::forward_backward(isa, &mut l2, &mut d, &k.targets, v, 0.25).unwrap();
            vec![losses, l2, d]
        });
    }
}

#[test]
fn bad_arguments_are_errors() {
    let isa = Isa::best();
    let mut losses = vec![0.0; 2];
    let mut logits = vec![0.0; 8];
    let bad_target = crossentropy::forward(isa, &mut losses, &logits, &[0, 3], 3);
    assert!(matches!(
        bad_target,
        Err(KernelError::Index {
            what: "target",
            index: 3,
            row: 1,
            bound: 3,
            ..
        })
    ));
    let r = crossentropy::forward_backward(isa, &mut losses, &mut logits, &[0, 5], 4, 1.0);
    assert!(matches!(r, Err(KernelError::Index { .. })));
    // v larger than the row, rows that do not divide, v = 0, wrong number of targets.
    assert!(matches!(
        crossentropy::forward(isa, &mut losses, &logits, &[0, 0], 5),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        crossentropy::forward(isa, &mut losses, &logits[..7], &[0, 0], 3),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        crossentropy::forward(isa, &mut losses, &logits, &[0, 0], 0),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        crossentropy::forward(isa, &mut losses, &logits, &[0], 3),
        Err(KernelError::Length { .. })
    ));
    // Nothing to do is fine.
    assert!(crossentropy::forward(isa, &mut [], &[], &[], 10).is_ok());
}
