//! Loading GPT-2 checkpoints: the layouts found in the wild, config inference for every
//! GPT-2 size, zero-copy mapping, and a clear error (never a panic) for each kind of bad
//! input.

mod common;

use std::io::Write;
use std::path::Path;

use common::fixture;
use gpt2::gpt2_core::Error;
use gpt2::gpt2_core::generate::{GenerateOptions, Truncate, generate};
use gpt2::gpt2_core::model::{Config, Gpt2, KvCache, Segment, param_specs};
use gpt2::gpt2_kernels::cpu::matmul::WeightLayout;
use gpt2::gpt2_tokenizer::Tokenizer;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// (name, dtype, shape, bytes) of every tensor in a safetensors file.
fn read_all(path: &Path) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn write_all(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn logits_of(model: &Gpt2, tokens: &[u32]) -> Vec<f32> {
    model
        .view()
        .unwrap()
        .forward_full(tokens, 1, tokens.len(), None)
        .unwrap()
}

fn load_err(path: &Path) -> String {
    match Gpt2::load(path) {
        Ok(_) => panic!("{} loaded but should not have", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn f32_safetensors_are_memory_mapped_without_copy() {
    let model = Gpt2::load(&fixture("tiny-small")).unwrap();
    assert!(
        model.params().iter().all(|t| t.is_mapped()),
        "every f32 tensor should be read in place"
    );
}

#[test]
fn hub_layout_with_mask_buffers_and_lm_head_loads_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = read_all(&fixture("tiny-small").join("model.safetensors"));
    let wte = tensors
        .iter()
        .find(|t| t.0 == "transformer.wte.weight")
        .unwrap()
        .clone();
    for t in tensors.iter_mut() {
        t.0 = t.0.trim_start_matches("transformer.").to_string();
    }
    let mask = vec![0u8; 64 * 64 * 4];
    for l in 0..2 {
        tensors.push((
            format!("h.{l}.attn.bias"),
            Dtype::F32,
            vec![1, 1, 64, 64],
            mask.clone(),
        ));
        tensors.push((
            format!("h.{l}.attn.masked_bias"),
            Dtype::F32,
            vec![],
            vec![0, 0, 0, 0],
        ));
    }
    tensors.push(("lm_head.weight".into(), wte.1, wte.2, wte.3));
    write_all(&dir.path().join("model.safetensors"), &tensors);
    std::fs::copy(
        fixture("tiny-small").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let tokens = [3, 1, 4, 1, 5, 9, 2, 6];
    let a = logits_of(&Gpt2::load(&fixture("tiny-small")).unwrap(), &tokens);
    let b = logits_of(&Gpt2::load(dir.path()).unwrap(), &tokens);
    assert_eq!(a, b);
}

/// A safetensors header for a GPT-2 of `cfg`'s sizes in the hub's key style, with all data
/// in a sparse file: real shapes, no disk space, no memory.
fn sparse_checkpoint(path: &Path, cfg: &Config) {
    let specs = param_specs(cfg, WeightLayout::InOut, cfg.vocab_size);
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for s in &specs {
        let len = s.numel() * 4;
        header.insert(s.name.clone(), serde_json::json!({"dtype": "F32", "shape": s.shape, "data_offsets": [offset, offset + len]}));
        offset += len;
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    f.set_len((8 + h.len() + offset) as u64).unwrap();
}

#[test]
fn every_gpt2_size_is_inferred_from_shapes_without_config() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"] {
        let cfg = Config::named(name).unwrap();
        let path = dir.path().join(format!("{name}.safetensors"));
        sparse_checkpoint(&path, &cfg);
        let model = Gpt2::load(&path).unwrap();
        assert_eq!(model.config(), &cfg, "{name}");
        assert_eq!(
            model.params().iter().map(|t| t.numel()).sum::<usize>(),
            cfg.num_params(),
            "{name}"
        );
        assert!(
            model.params().iter().all(|t| t.is_mapped()),
            "{name}: zero copy"
        );
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn config_less_file_gives_the_same_logits_as_with_config() {
    // 128 channels = 2 heads of GPT-2's size 64, so the sizes can be inferred.
    let mut cfg = Config::gpt2_sized(2, 2, 128);
    cfg.vocab_size = 300;
    cfg.n_ctx = 32;
    let model = Gpt2::random(cfg.clone(), 5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let specs = param_specs(&cfg, WeightLayout::InOut, cfg.vocab_size);
    let tensors: Vec<_> = specs
        .iter()
        .zip(model.params())
        .map(|(s, t)| {
            (
                format!("transformer.{}", s.name),
                Dtype::F32,
                s.shape.clone(),
                t.to_vec_f32()
                    .unwrap()
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
            )
        })
        .collect();
    let file = dir.path().join("weights.safetensors");
    write_all(&file, &tensors);
    let loaded = Gpt2::load(&file).unwrap();
    assert_eq!(loaded.config(), &cfg);
    assert_eq!(
        logits_of(&loaded, &[1, 2, 3]),
        logits_of(&model, &[1, 2, 3])
    );
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("tiny-small").join("model.safetensors")).unwrap();
    let path = dir.path().join("model.safetensors");

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let e = load_err(&path);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated or corrupt"),
        "{e}"
    );

    let mut corrupt = good.clone();
    corrupt[8..40].copy_from_slice(&[b'#'; 32]);
    std::fs::write(&path, &corrupt).unwrap();
    assert!(load_err(&path).contains("not a valid safetensors file"));

    std::fs::write(&path, [1u8, 2, 3]).unwrap();
    assert!(load_err(&path).contains("too short"));

    let tensors = read_all(&fixture("tiny-small").join("model.safetensors"));
    let without: Vec<_> = tensors
        .iter()
        .filter(|t| t.0 != "transformer.ln_f.bias")
        .cloned()
        .collect();
    write_all(&path, &without);
    std::fs::copy(
        fixture("tiny-small").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("missing tensor `ln_f.bias`"), "{e}");

    let mut reshaped = tensors.clone();
    let i = reshaped
        .iter()
        .position(|t| t.0 == "transformer.h.1.mlp.c_fc.weight")
        .unwrap();
    reshaped[i].2 = vec![384, 96];
    write_all(&path, &reshaped);
    let e = load_err(dir.path());
    assert!(
        e.contains("h.1.mlp.c_fc.weight") && e.contains("[384, 96]") && e.contains("[96, 384]"),
        "{e}"
    );

    let mut wrong_dtype = tensors.clone();
    let i = wrong_dtype
        .iter()
        .position(|t| t.0 == "transformer.ln_f.weight")
        .unwrap();
    wrong_dtype[i].1 = Dtype::I32;
    write_all(&path, &wrong_dtype);
    let e = load_err(dir.path());
    assert!(e.contains("ln_f.weight") && e.contains("I32"), "{e}");

    let mut extra = tensors.clone();
    extra.push(("score.weight".into(), Dtype::F32, vec![2], vec![0; 8]));
    write_all(&path, &extra);
    assert!(load_err(dir.path()).contains("score.weight"));

    std::fs::remove_file(&path).unwrap();
    assert!(load_err(dir.path()).contains("no model.safetensors"));
    std::fs::write(dir.path().join("pytorch_model.bin"), b"PK\x03\x04 pickle").unwrap();
    assert!(load_err(dir.path()).contains("save_pretrained"));
    assert!(load_err(&dir.path().join("pytorch_model.bin")).contains("save_pretrained"));
    assert!(matches!(
        Gpt2::load(&dir.path().join("missing.safetensors")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn bad_llmc_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("tiny-small").join("model_llmc.bin")).unwrap();
    let path = dir.path().join("model.bin");

    std::fs::write(&path, &good[..good.len() - 4]).unwrap();
    let e = load_err(&path);
    assert!(
        e.contains("truncated or corrupt") && e.contains("model.bin"),
        "{e}"
    );

    let mut v = good.clone();
    v[4..8].copy_from_slice(&7i32.to_le_bytes());
    std::fs::write(&path, &v).unwrap();
    assert!(load_err(&path).contains("version 7"));

    let mut v = good.clone();
    v[24..28].copy_from_slice(&(-96i32).to_le_bytes());
    std::fs::write(&path, &v).unwrap();
    assert!(load_err(&path).contains("positive"));

    std::fs::write(&path, &good[..100]).unwrap();
    assert!(load_err(&path).contains("header"));
}

#[test]
fn bad_model_inputs_are_errors() {
    let model = Gpt2::load(&fixture("tiny-small")).unwrap();
    let view = model.view().unwrap();
    let e = view
        .forward_full(&[1, 2, 211], 1, 3, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown token id 211"), "{e}");
    assert!(
        view.forward_full(&[1; 65], 1, 65, None).is_err(),
        "longer than n_ctx = 64"
    );
    assert!(
        view.forward_full(&[1; 6], 4, 2, None).is_err(),
        "tokens do not form (B, T)"
    );

    let mut cache = KvCache::new(model.config(), 2);
    assert!(
        view.forward_cached(
            &mut cache,
            &[Segment {
                seq: 2,
                tokens: &[1]
            }]
        )
        .is_err()
    );
    assert!(
        view.forward_cached(
            &mut cache,
            &[Segment {
                seq: 0,
                tokens: &[]
            }]
        )
        .is_err()
    );
    assert!(
        view.forward_cached(
            &mut cache,
            &[
                Segment {
                    seq: 0,
                    tokens: &[1]
                },
                Segment {
                    seq: 0,
                    tokens: &[2]
                }
            ]
        )
        .is_err()
    );
    view.forward_cached(
        &mut cache,
        &[Segment {
            seq: 1,
            tokens: &[1; 60],
        }],
    )
    .unwrap();
    let e = view
        .forward_cached(
            &mut cache,
            &[Segment {
                seq: 1,
                tokens: &[1; 5],
            }],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("context"), "{e}");

    // Prompt + new tokens over the context: an error by default, truncated on request.
    let opts = GenerateOptions {
        max_new_tokens: 10,
        ..Default::default()
    };
    let e = generate(view.clone(), None, &[1; 60], opts.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("exceeds the context"), "{e}");
    let g = generate(
        view.clone(),
        None,
        &[1; 60],
        GenerateOptions {
            truncate: Truncate::Left,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(g.prompt().len(), 54);

    // GPT-2's 50257-token vocabulary does not belong to a 211-token model.
    let tok = Tokenizer::gpt2();
    let e = generate(view, Some(&tok), &[1], GenerateOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("50257") && e.contains("211"), "{e}");
}
