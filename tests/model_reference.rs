//! GPT-2 forward against PyTorch + transformers (reference data from
//! scripts/make_reference.py, computed in float64): logits, hidden states, loss, greedy
//! continuation with a KV cache, and the f16/bf16/llm.c variants of the same weights.

mod common;

use common::{Reference, assert_close, fixture, greedy};
use gpt2::gpt2_core::generate::{GenerateOptions, generate};
use gpt2::gpt2_core::model::{Config, Gpt2};
use gpt2::gpt2_core::sample::SamplingParams;
use gpt2::gpt2_kernels::cpu::crossentropy;
use gpt2::gpt2_kernels::cpu::simd::Isa;
use gpt2::gpt2_tokenizer::Tokenizer;

/// Tolerance for f32 results against the float64 reference, as `max|a−b| / max|b|`.
const TOL: f64 = 1e-4;

fn check_forward(name: &str) {
    let dir = fixture(name);
    let r = Reference::load(&dir.join("reference.safetensors"));
    let ids = r.tokens("input_ids");
    let (b, t) = (r.shape("input_ids")[0], r.shape("input_ids")[1]);
    for isa in Isa::available() {
        let model = Gpt2::load(&dir).unwrap().with_isa(isa);
        let mut hidden = Vec::new();
        let logits = model
            .view()
            .unwrap()
            .forward_full(&ids, b, t, Some(&mut hidden))
            .unwrap();
        assert_close(
            &format!("{name} logits ({isa})"),
            &logits,
            r.f32("logits"),
            TOL,
        );
        assert_eq!(hidden.len(), model.config().n_layer + 1);
        for (i, h) in hidden.iter().enumerate() {
            assert_close(
                &format!("{name} hidden.{i} ({isa})"),
                h,
                r.f32(&format!("hidden.{i}")),
                TOL,
            );
        }
        // Mean cross-entropy of the logits against the targets.
        let targets = r.tokens("targets");
        let mut losses = vec![0.0; b * t];
        crossentropy::forward(
            isa,
            &mut losses,
            &logits,
            &targets,
            model.config().vocab_size,
        )
        .unwrap();
        let loss = losses.iter().map(|&l| l as f64).sum::<f64>() / losses.len() as f64;
        let want = r.f32("loss")[0] as f64;
        assert!(
            ((loss - want) / want).abs() <= 1e-5,
            "{name} loss {loss} vs {want}"
        );
    }
}

#[test]
fn logits_hidden_states_and_loss_match_pytorch_small_vocab() {
    check_forward("tiny-small");
}

#[test]
fn logits_hidden_states_and_loss_match_pytorch_full_vocab() {
    check_forward("tiny-vocab");
}

fn check_greedy(name: &str, tokenizer: Option<&Tokenizer>) {
    let dir = fixture(name);
    let g = greedy(&dir);
    let model = Gpt2::load(&dir).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: g.generated.len(),
        sampling: SamplingParams::greedy(),
        stop_token: Some(g.eos),
        ..Default::default()
    };
    let ids: Vec<u32> = generate(model.view().unwrap(), tokenizer, &g.prompt, opts)
        .unwrap()
        .map(|t| t.unwrap().id)
        .collect();
    assert_eq!(
        ids, g.generated,
        "{name}: greedy continuation differs from transformers' (use_cache=True)"
    );
}

#[test]
fn greedy_continuation_with_kv_cache_matches_transformers() {
    check_greedy("tiny-vocab", Some(&Tokenizer::gpt2()));
    // The small fixture has 211 tokens and no tokenizer: ids only.
    check_greedy("tiny-small", None);
}

#[test]
fn bf16_and_f16_checkpoints_match_pytorch_on_their_rounded_weights() {
    let dir = fixture("tiny-small");
    let r = Reference::load(&dir.join("reference.safetensors"));
    let low = Reference::load(&dir.join("reference_lowp.safetensors"));
    let ids = r.tokens("input_ids");
    let (b, t) = (r.shape("input_ids")[0], r.shape("input_ids")[1]);
    let config = Config::from_hf_json(&dir.join("config.json")).unwrap();
    for tag in ["bf16", "f16"] {
        let model = Gpt2::from_safetensors(
            &dir.join(format!("model-{tag}.safetensors")),
            Some(config.clone()),
        )
        .unwrap();
        let logits = model
            .view()
            .unwrap()
            .forward_full(&ids, b, t, None)
            .unwrap();
        assert_close(
            &format!("logits from {tag} weights"),
            &logits,
            low.f32(&format!("logits.{tag}")),
            TOL,
        );
    }
}

#[test]
fn llmc_checkpoint_gives_the_same_model() {
    let dir = fixture("tiny-small");
    let r = Reference::load(&dir.join("reference.safetensors"));
    let ids = r.tokens("input_ids");
    let (b, t) = (r.shape("input_ids")[0], r.shape("input_ids")[1]);
    let model = Gpt2::load(&dir.join("model_llmc.bin")).unwrap();
    assert_eq!(model.config().vocab_size, 211);
    assert_eq!(
        model.params()[0].shape(),
        &[256, 96],
        "wte keeps llm.c's padded rows"
    );
    let logits = model
        .view()
        .unwrap()
        .forward_full(&ids, b, t, None)
        .unwrap();
    assert_eq!(
        logits.len(),
        b * t * 211,
        "padded vocabulary rows never become logits"
    );
    assert_close("llm.c logits", &logits, r.f32("logits"), TOL);
}
