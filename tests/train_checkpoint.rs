//! Checkpoints: a run resumed from a checkpoint is bit-identical to an uninterrupted one;
//! a crash between the temporary write and the rename leaves `latest` loadable; a saved
//! model directory loads back (f32 exactly, bf16 rounded) with its tokenizer.

use std::path::Path;

use gpt2::gpt2_core::model::{Config, Gpt2, ParamArena};
use gpt2::gpt2_core::train::checkpoint::{self, SaveDType};
use gpt2::gpt2_core::train::data::Order;
use gpt2::gpt2_core::train::optim::AdamWConfig;
use gpt2::gpt2_core::train::schedule::{Schedule, ScheduleKind};
use gpt2::gpt2_core::train::{TrainSettings, Trainer};
use gpt2::gpt2_tokenizer::Tokenizer;

/// A small byte-level vocabulary trained on a few lines, and its encoding of some text.
fn tokenizer_and_tokens() -> (Tokenizer, Vec<u32>) {
    let text = std::fs::read_to_string("data/tinyshakespeare.txt").unwrap();
    let text = &text[..20_000];
    let tok = Tokenizer::train([text], 300, &["<|endoftext|>"]).unwrap();
    let ids = tok.encode(text);
    (tok, ids)
}

fn config(vocab: usize) -> Config {
    let mut cfg = Config::gpt2_sized(2, 2, 16);
    (cfg.vocab_size, cfg.n_ctx) = (vocab, 32);
    (cfg.embd_pdrop, cfg.attn_pdrop, cfg.resid_pdrop) = (0.1, 0.1, 0.1);
    cfg
}

/// Dropout on, shuffled data, gradient accumulation, warmup + cosine: every piece of
/// state that a resume has to restore.
fn settings(steps: u64) -> TrainSettings {
    TrainSettings {
        batch: 2,
        seq: 16,
        grad_accum: 2,
        schedule: Schedule {
            kind: ScheduleKind::Cosine,
            lr: 3e-3,
            warmup: 2,
            total: steps,
            min_lr_frac: 0.1,
        },
        adamw: AdamWConfig::default(),
        grad_clip: 1.0,
        seed: 7,
        order: Order::Shuffled { seed: 7 },
    }
}

fn new_trainer(tokens: &[u32], vocab: usize, steps: u64) -> Trainer {
    let params = ParamArena::gpt2_init(&config(vocab), 3).unwrap();
    Trainer::new(params, tokens.to_vec(), settings(steps)).unwrap()
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn resume_is_bit_identical_to_an_uninterrupted_run() {
    let (tok, tokens) = tokenizer_and_tokens();
    let v = tok.vocab_size();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // 400 tokens are 24 windows of 16, 12 micro-batches per epoch: 8 steps of 2
    // micro-batches cross an epoch, and the resume lands mid-epoch.
    let tokens = tokens[..400].to_vec();
    let steps = 8;

    let mut straight = new_trainer(&tokens, v, steps);
    let losses: Vec<f32> = (0..steps).map(|_| straight.step().unwrap().loss).collect();

    let mut first = new_trainer(&tokens, v, steps);
    for _ in 0..steps / 2 {
        first.step().unwrap();
    }
    let saved = first.save(&out, &tok).unwrap();
    assert_eq!(saved, out.join("step-4"));
    drop(first);

    let ckpt = checkpoint::latest_checkpoint(&out).unwrap();
    let mut resumed = Trainer::resume(&ckpt, tokens.clone(), None).unwrap();
    assert_eq!(resumed.step_count(), steps / 2);
    for s in steps / 2..steps {
        let st = resumed.step().unwrap();
        assert_eq!(st.step, s + 1);
        assert_eq!(
            st.loss.to_bits(),
            losses[s as usize].to_bits(),
            "loss of step {}",
            s + 1
        );
    }
    assert_eq!(
        bits(resumed.params().as_slice()),
        bits(straight.params().as_slice()),
        "parameters after {steps} steps"
    );
    assert_eq!(resumed.data_position(), straight.data_position());
    assert_eq!(straight.data_position().epoch, 1);
    assert_eq!(resumed.history(), straight.history());
    // And the optimizer state: both save to identical files.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    resumed.save(&a, &tok).unwrap();
    straight.save(&b, &tok).unwrap();
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ] {
        let read = |d: &Path| std::fs::read(d.join("step-8").join(f)).unwrap();
        assert!(read(&a) == read(&b), "{f} differs");
    }
}

#[test]
fn crash_before_rename_leaves_latest_loadable() {
    let (tok, tokens) = tokenizer_and_tokens();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let mut t = new_trainer(&tokens, tok.vocab_size(), 6);
    t.step().unwrap();
    t.step().unwrap();
    t.save(out, &tok).unwrap();
    let at_2 = bits(t.params().as_slice());
    t.step().unwrap();
    t.step().unwrap();
    // A save of step 4 that died after writing part of its temporary directory.
    let tmp = out.join(".tmp-step-4");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(tmp.join("model.safetensors"), b"\x10\x00\x00\x00trunc").unwrap();
    std::fs::write(tmp.join("config.json"), "{").unwrap();

    let latest = checkpoint::latest_checkpoint(out).unwrap();
    assert_eq!(latest, out.join("step-2"));
    let model = Gpt2::load(&latest).unwrap();
    let params = ParamArena::from_model(&model).unwrap();
    assert_eq!(bits(params.as_slice()), at_2);
    let mut resumed = Trainer::resume(&latest, tokens.clone(), None).unwrap();
    assert_eq!(resumed.step().unwrap().step, 3);
    // The next save of step 4 replaces the stale temporary directory.
    resumed.step().unwrap();
    resumed.save(out, &tok).unwrap();
    assert!(!tmp.exists());
    assert_eq!(
        checkpoint::latest_checkpoint(out).unwrap(),
        out.join("step-4")
    );
    assert_eq!(
        bits(resumed.params().as_slice()),
        bits(t.params().as_slice())
    );

    // A crash after the rename but before `latest` moved: step-6 exists, latest still
    // names step-4, which is whole.
    std::fs::create_dir(out.join("step-6")).unwrap();
    assert_eq!(
        checkpoint::latest_checkpoint(out).unwrap(),
        out.join("step-4")
    );
    // A stray temporary directory is removed on request; `latest` naming garbage is an
    // error that says so.
    std::fs::create_dir(out.join(".tmp-step-9")).unwrap();
    checkpoint::remove_stale_temps(out).unwrap();
    assert!(!out.join(".tmp-step-9").exists());
    std::fs::write(out.join("latest"), "step-6\n").unwrap();
    let e = checkpoint::latest_checkpoint(out).unwrap_err().to_string();
    assert!(e.contains("not a complete checkpoint"), "{e}");
}

#[test]
fn saved_model_dirs_load_with_their_tokenizer() {
    let (tok, tokens) = tokenizer_and_tokens();
    let dir = tempfile::tempdir().unwrap();
    let mut t = new_trainer(&tokens, tok.vocab_size(), 2);
    t.step().unwrap();
    let x = &tokens[..20];
    let want = t
        .params()
        .view()
        .unwrap()
        .forward_full(x, 1, 20, None)
        .unwrap();
    for (dtype, tol) in [(SaveDType::F32, 0.0), (SaveDType::Bf16, 5e-2)] {
        let d = dir.path().join(format!("{dtype:?}"));
        std::fs::create_dir(&d).unwrap();
        checkpoint::write_model_dir(&d, t.params(), &tok, dtype).unwrap();
        let model = Gpt2::load(&d).unwrap();
        assert_eq!(model.config(), t.params().config());
        let got = model.view().unwrap().forward_full(x, 1, 20, None).unwrap();
        let err = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let scale = want.iter().fold(0.0f32, |m, b| m.max(b.abs()));
        assert!(err <= tol * scale, "{dtype:?}: logits differ by {err}");
        let back = Tokenizer::from_dir(&d).unwrap();
        assert_eq!(
            back.encode("To be, or not to be"),
            tok.encode("To be, or not to be")
        );
        let st = std::fs::read(d.join("model.safetensors")).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&st).unwrap();
        assert_eq!(
            meta.metadata()
                .as_ref()
                .and_then(|m| m.get("format"))
                .map(String::as_str),
            Some("pt")
        );
        assert!(
            meta.tensors()
                .contains_key("transformer.h.1.mlp.c_proj.weight")
        );
    }
}
