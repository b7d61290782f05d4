use gpt2_kernels::KernelError;
use gpt2_kernels::cpu::embedding::{self, reference};

use crate::common::*;

/// Random ids in `0..bound`, with repeats (so the backward must accumulate).
fn ids(rng: &mut Rng, n: usize, bound: usize) -> Vec<u32> {
    (0..n)
        .map(|_| (rng.next_u64() % bound as u64) as u32)
        .collect()
}

struct Case {
    tokens: Vec<u32>,
    positions: Vec<u32>,
    wte: Vec<f32>,
    wpe: Vec<f32>,
    dout: Vec<f32>,
}

fn case(rng: &mut Rng, n: usize, c: usize) -> Case {
    let (v, max_t) = (n / 2 + 2, n + 1);
    Case {
        tokens: ids(rng, n, v),
        positions: ids(rng, n, max_t),
        wte: uniform(rng, v * c, -1.0, 1.0),
        wpe: uniform(rng, max_t * c, -1.0, 1.0),
        dout: uniform(rng, n * c, -1.0, 1.0),
    }
}

impl Case {
    fn forward(&self, isa: Isa, c: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.tokens.len() * c];
        embedding::forward(
            isa,
            &mut out,
            &self.tokens,
            &self.positions,
            &self.wte,
            &self.wpe,
            c,
        )
        .unwrap();
        out
    }

    /// Accumulates the kernel's gradients into `dwte`, `dwpe`.
    fn backward(&self, isa: Isa, dwte: &mut [f32], dwpe: &mut [f32], c: usize) {
        embedding::backward(
            isa,
            dwte,
            dwpe,
            &self.dout,
            &self.tokens,
            &self.positions,
            c,
        )
        .unwrap();
    }
}

#[test]
fn forward_and_backward_match_reference() {
    let mut rng = Rng::new(10);
    for isa in isas() {
        for n in SIZES {
            for c in [1, 8, 17, 65] {
                let k = case(&mut rng, n, c);
                let out = k.forward(isa, c);
                let mut want = vec![0.0; n * c];
                reference::forward(&mut want, &k.tokens, &k.positions, &k.wte, &k.wpe, c).unwrap();
                // One addition per element: exact.
                assert_eq!(out, want, "{isa} forward n={n} c={c}");

                // Backward accumulates into non-zero gradients.
                let dwte0 = uniform(&mut rng, k.wte.len(), -1.0, 1.0);
                let dwpe0 = uniform(&mut rng, k.wpe.len(), -1.0, 1.0);
                let (mut dwte, mut dwpe) = (dwte0.clone(), dwpe0.clone());
                k.backward(isa, &mut dwte, &mut dwpe, c);
                let (mut rte, mut rpe) = (to_f64(&dwte0), to_f64(&dwpe0));
                reference::backward(
                    &mut rte,
                    &mut rpe,
                    &to_f64(&k.dout),
                    &k.tokens,
                    &k.positions,
                    c,
                )
                .unwrap();
                assert_close(&format!("{isa} dwte n={n} c={c}"), &dwte, &rte, 1e-6);
                assert_close(&format!("{isa} dwpe n={n} c={c}"), &dwpe, &rpe, 1e-6);
            }
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let mut rng = Rng::new(11);
    let (n, c) = (9, 5);
    let k = case(&mut rng, n, c);
    let w = to_f64(&k.dout);
    let f = |wte: &[f64], wpe: &[f64]| {
        let mut out = vec![0.0; n * c];
        reference::forward(&mut out, &k.tokens, &k.positions, wte, wpe, c).unwrap();
        weighted_sum(&w, &out)
    };
    let (wte, wpe) = (to_f64(&k.wte), to_f64(&k.wpe));
    let fd_te = finite_diff(|x| f(x, &wpe), &wte, 1e-5);
    let fd_pe = finite_diff(|x| f(&wte, x), &wpe, 1e-5);
    for isa in isas() {
        let (mut dwte, mut dwpe) = (vec![0.0; wte.len()], vec![0.0; wpe.len()]);
        k.backward(isa, &mut dwte, &mut dwpe, c);
        assert_close(&format!("{isa} dwte vs FD"), &dwte, &fd_te, 1e-6);
        assert_close(&format!("{isa} dwpe vs FD"), &dwpe, &fd_pe, 1e-6);
    }
}

#[test]
fn deterministic_across_thread_counts() {
    let mut rng = Rng::new(12);
    let (n, c) = (700, 67);
    let k = case(&mut rng, n, c);
    for isa in isas() {
        assert_thread_invariant("embedding", || {
            let out = k.forward(isa, c);
            let (mut dwte, mut dwpe) = (vec![0.0; k.wte.len()], vec![0.0; k.wpe.len()]);
            k.backward(isa, &mut dwte, &mut dwpe, c);
            vec![out, dwte, dwpe]
        });
    }
}

#[test]
fn bad_arguments_are_errors() {
    let isa = Isa::best();
    let (wte, wpe) = (vec![0.0; 4 * 2], vec![0.0; 3 * 2]);
    let mut out = vec![0.0; 2 * 2];
    let fwd = |out: &mut [f32], tokens: &[u32], positions: &[u32], c| {
        embedding::forward(isa, out, tokens, positions, &wte, &wpe, c)
    };
    assert!(fwd(&mut out, &[0, 3], &[0, 2], 2).is_ok());
    assert!(matches!(
        fwd(&mut out, &[0, 4], &[0, 1], 2),
        Err(KernelError::Index {
            what: "token id",
            index: 4,
            row: 1,
            bound: 4,
            ..
        })
    ));
    assert!(matches!(
        fwd(&mut out, &[0, 1], &[3, 1], 2),
        Err(KernelError::Index {
            what: "position",
            index: 3,
            row: 0,
            bound: 3,
            ..
        })
    ));
    assert!(matches!(
        fwd(&mut out, &[0, 1], &[0], 2),
        Err(KernelError::Length {
            name: "positions",
            ..
        })
    ));
    assert!(matches!(
        fwd(&mut out, &[0], &[0], 2),
        Err(KernelError::Length { name: "out", .. })
    ));
    assert!(matches!(
        fwd(&mut out, &[0, 1], &[0, 1], 0),
        Err(KernelError::Shape { .. })
    ));
    assert!(matches!(
        fwd(&mut out, &[0, 1], &[0, 1], 3),
        Err(KernelError::Shape { .. })
    ));
    let (mut dwte, mut dwpe) = (vec![0.0; 8], vec![0.0; 6]);
    assert!(matches!(
        embedding::backward(isa, &mut dwte, &mut dwpe, &out, &[9, 0], &[0, 0], 2),
        Err(KernelError::Index { .. })
    ));
    assert!(matches!(
        reference::forward(&mut out, &[0, 4], &[0, 1], &wte, &wpe, 2),
        Err(KernelError::Index { .. })
    ));
}
