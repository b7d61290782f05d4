//! Training against PyTorch (reference data from scripts/make_reference.py, float64):
//! every parameter gradient after `loss.backward()`, then 10 steps of
//! `torch.optim.AdamW` (decay on ≥ 2-D tensors, global-norm clipping) — per tensor
//! `max|a−b| / max|b| ≤ 1e-4`, losses to 1e-5 relative — on both fixtures.

mod common;

use common::{Reference, assert_close, fixture};
use gpt2::gpt2_core::model::{Activations, Dropout, Gpt2, ParamArena};
use gpt2::gpt2_core::train::optim::{AdamW, AdamWConfig, clip_grad_norm};
use gpt2::gpt2_kernels::cpu::simd::Isa;

const TOL: f64 = 1e-4;

/// The fixture's model as an arena, its batch, and its reference data.
fn setup(name: &str, isa: Isa) -> (ParamArena, Vec<u32>, Vec<u32>, (usize, usize), Reference) {
    let dir = fixture(name);
    let r = Reference::load(&dir.join("reference.safetensors"));
    let model = Gpt2::load(&dir).unwrap();
    let params = ParamArena::from_model(&model).unwrap().with_isa(isa);
    let (b, t) = (r.shape("input_ids")[0], r.shape("input_ids")[1]);
    (
        params,
        r.tokens("input_ids"),
        r.tokens("targets"),
        (b, t),
        r,
    )
}

/// Mean loss and gradients of one batch.
fn loss_and_grads(
    params: &ParamArena,
    acts: &mut Activations,
    x: &[u32],
    y: &[u32],
    grads: &mut [f32],
) -> f32 {
    let view = params.view().unwrap();
    grads.fill(0.0);
    view.forward_train(acts, x, &Dropout::OFF).unwrap();
    let n = x.len() as f32;
    view.backward(acts, x, y, &Dropout::OFF, 1.0 / n, grads)
        .unwrap()
}

/// Compares tensor `name` of `arena` with the reference (on `wte_rows` only for wte when
/// the fixture stores a subset of rows).
fn compare(what: &str, params: &ParamArena, arena: &[f32], r: &Reference, key: &str, i: usize) {
    let spec = &params.specs()[i];
    let got = &arena[params.range(i)];
    let want = r.f32(key);
    if spec.name == "wte.weight" && want.len() != got.len() {
        let c = spec.shape[1];
        let rows: Vec<usize> = r.ints["wte_rows"].1.iter().map(|&x| x as usize).collect();
        let sub: Vec<f32> = rows
            .iter()
            .flat_map(|&row| got[row * c..(row + 1) * c].to_vec())
            .collect();
        assert_close(&format!("{what} {key} (rows)"), &sub, want, TOL);
    } else {
        assert_close(&format!("{what} {key}"), got, want, TOL);
    }
}

fn check_gradients(name: &str) {
    for isa in Isa::available() {
        let (params, x, y, (b, t), r) = setup(name, isa);
        let mut acts = Activations::new(params.config(), b, t);
        let mut grads = vec![0.0; params.len()];
        let loss = loss_and_grads(&params, &mut acts, &x, &y, &mut grads);
        let want = r.f32("loss")[0];
        assert!(
            ((loss - want) / want).abs() <= 1e-5,
            "{name} ({isa}) loss {loss} vs {want}"
        );
        for (i, spec) in params.specs().iter().enumerate() {
            let key = format!("grad.transformer.{}", spec.name);
            compare(&format!("{name} ({isa})"), &params, &grads, &r, &key, i);
        }
    }
}

#[test]
fn gradients_match_pytorch_tiny_small() {
    check_gradients("tiny-small");
}

#[test]
fn gradients_match_pytorch_tiny_vocab() {
    check_gradients("tiny-vocab");
}

/// The hyper-parameters of the reference script's AdamW run.
fn reference_adamw(dir: &std::path::Path) -> (AdamWConfig, f64, f64, usize) {
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let a = &v["adamw"];
    let cfg = AdamWConfig {
        beta1: a["betas"][0].as_f64().unwrap(),
        beta2: a["betas"][1].as_f64().unwrap(),
        eps: a["eps"].as_f64().unwrap(),
        weight_decay: a["weight_decay"].as_f64().unwrap() as f32,
    };
    let lr = a["lr"].as_f64().unwrap();
    let clip = a["grad_clip"].as_f64().unwrap();
    (cfg, lr, clip, a["steps"].as_u64().unwrap() as usize)
}

fn check_adamw(name: &str) {
    let isa = Isa::best();
    let (mut params, x, y, (b, t), r) = setup(name, isa);
    let (cfg, lr, clip, steps) = reference_adamw(&fixture(name));
    let mut opt = AdamW::new(&params, cfg);
    let mut acts = Activations::new(params.config(), b, t);
    let mut grads = vec![0.0; params.len()];
    let (want_loss, want_norm) = (r.f32("adamw.loss"), r.f32("adamw.grad_norm"));
    for s in 0..steps {
        let loss = loss_and_grads(&params, &mut acts, &x, &y, &mut grads);
        let norm = clip_grad_norm(isa, &mut grads, clip).unwrap();
        assert!(
            ((loss - want_loss[s]) / want_loss[s]).abs() <= 1e-5,
            "{name} step {}: loss {loss} vs {}",
            s + 1,
            want_loss[s]
        );
        let rel = (norm - f64::from(want_norm[s])).abs() / f64::from(want_norm[s]);
        assert!(
            rel <= 1e-4,
            "{name} step {}: grad norm {norm} vs {}",
            s + 1,
            want_norm[s]
        );
        opt.step(isa, &mut params, &grads, lr).unwrap();
    }
    for i in 0..params.specs().len() {
        let key = format!("adamw.transformer.{}", params.specs()[i].name);
        compare(name, &params, params.as_slice(), &r, &key, i);
    }
}

#[test]
fn adamw_steps_match_pytorch_tiny_small() {
    check_adamw("tiny-small");
}

#[test]
fn adamw_steps_match_pytorch_tiny_vocab() {
    check_adamw("tiny-vocab");
}

/// llm.c's `(out, in)` checkpoint of the same weights becomes the same arena: transposed
/// once, padded vocabulary rows dropped.
#[test]
fn arena_from_llmc_equals_arena_from_safetensors() {
    let dir = fixture("tiny-small");
    let hf = ParamArena::from_model(&Gpt2::load(&dir).unwrap()).unwrap();
    let llmc = ParamArena::from_model(&Gpt2::load(&dir.join("model_llmc.bin")).unwrap()).unwrap();
    assert_eq!(hf.specs(), llmc.specs());
    assert_eq!(hf.as_slice(), llmc.as_slice());
}
