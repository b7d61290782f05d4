//! Training: determinism, round trips through the saved files, agreement with Hugging
//! Face's `tokenizers` (fixture written by scripts/hf_roundtrip.py), errors.

use gpt2_tokenizer::{SpecialTokens, Tokenizer, TokenizerError};

fn shakespeare() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/tinyshakespeare.txt"
    ))
    .unwrap()
}

fn train(text: &str, size: usize) -> Tokenizer {
    Tokenizer::train([text], size, &["<|endoftext|>"]).unwrap()
}

#[derive(serde::Deserialize)]
struct Fixture {
    vocab_size: usize,
    special_tokens: Vec<String>,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    vocab_merges: Vec<u32>,
    tokenizer_json: Vec<u32>,
}

/// Hugging Face `tokenizers` loaded our files for this same training run and encoded these
/// texts: from vocab.json + merges.txt (special tokens unknown to it: plain text) and from
/// tokenizer.json (special tokens recognised).
#[test]
fn hf_fixture() {
    let fixture: Fixture =
        serde_json::from_str(include_str!("fixtures/hf_trained.json")).expect("fixture parses");
    let specials: Vec<&str> = fixture.special_tokens.iter().map(String::as_str).collect();
    let tok = Tokenizer::train([shakespeare()], fixture.vocab_size, &specials).unwrap();
    for case in &fixture.cases {
        assert_eq!(tok.encode(&case.text), case.vocab_merges, "{:?}", case.text);
        let allowed = tok
            .encode_with_special(&case.text, SpecialTokens::Allow)
            .unwrap();
        assert_eq!(allowed, case.tokenizer_json, "{:?}", case.text);
    }
}

#[test]
fn deterministic_and_round_trips_through_files() {
    let text = shakespeare();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tok = train(&text, 1000);
    tok.save(a.path()).unwrap();
    train(&text, 1000).save(b.path()).unwrap();
    for file in ["vocab.json", "merges.txt", "tokenizer.json"] {
        let (x, y) = (
            std::fs::read(a.path().join(file)).unwrap(),
            std::fs::read(b.path().join(file)).unwrap(),
        );
        assert!(x == y, "{file} differs between two trainings");
    }
    let from_json = Tokenizer::from_dir(a.path()).unwrap();
    let from_txt =
        Tokenizer::from_vocab_merges(&a.path().join("vocab.json"), &a.path().join("merges.txt"))
            .unwrap();
    let sample = &text[..100_000];
    let ids = tok.encode(sample);
    for loaded in [&from_json, &from_txt] {
        assert_eq!(loaded.vocab_size(), 1000);
        assert_eq!(loaded.encode(sample), ids);
        assert_eq!(loaded.special_tokens(), [("<|endoftext|>", 999)]);
    }
    assert_eq!(tok.decode(&ids).unwrap(), sample.as_bytes());
}

#[test]
fn layout_and_compression() {
    let text = shakespeare();
    let small = train(&text, 300);
    let large = train(&text, 2000);
    // Bytes first, in GPT-2's order; special tokens last.
    assert_eq!(small.id_to_token_bytes(0), Some(&b"!"[..]));
    assert_eq!(small.id_to_token_bytes(220), Some(&b" "[..]));
    assert_eq!(small.eot_id(), Some(299));
    assert_eq!(large.eot_id(), Some(1999));
    // More merges, fewer tokens; every one of them fewer than bytes.
    let (n_small, n_large) = (small.encode(&text).len(), large.encode(&text).len());
    assert!(
        n_large < n_small && n_small < text.len(),
        "{n_large} {n_small} {}",
        text.len()
    );
    // The first merges are the most frequent pairs of Shakespeare: " t", "h" + "e", ...
    assert_eq!(small.id_to_token_bytes(256), Some(&b" t"[..]));
}

#[test]
fn special_tokens_in_the_corpus_are_not_learnt() {
    let text = "the quick brown fox<|endoftext|>jumps over<|endoftext|>".repeat(20);
    let tok = Tokenizer::train([&text], 270, &["<|endoftext|>", "<|pad|>"]).unwrap();
    for id in 256..268 {
        let bytes = tok.id_to_token_bytes(id).unwrap();
        assert!(
            !bytes.contains(&b'|') && !bytes.contains(&b'<'),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    assert_eq!(
        tok.special_tokens(),
        [("<|endoftext|>", 268), ("<|pad|>", 269)]
    );
    let ids = tok
        .encode_with_special("one<|pad|>", SpecialTokens::Allow)
        .unwrap();
    assert_eq!(ids.last(), Some(&269));
}

#[test]
fn errors() {
    let err =
        |size: usize, specials: &[&str], text: &str| match Tokenizer::train([text], size, specials)
        {
            Err(TokenizerError::Training(msg)) => msg,
            other => panic!("expected a training error, got {other:?}"),
        };
    assert!(err(256, &["<|endoftext|>"], "abc").contains("cannot hold"));
    assert!(err(300, &["<s>", "<s>"], "abc").contains("given twice"));
    assert!(err(300, &["x"], "abc").contains("at least two bytes"));
    assert!(err(300, &["Ġx"], "abc").contains("byte-level alphabet"));
    // "abcd" and " abcd" become single tokens after 4 merges: 260 tokens at most.
    let msg = err(300, &[], "abcd abcd");
    assert!(
        msg.contains("yields only 260 tokens before running out of pairs"),
        "{msg}"
    );
}
