//! Loading vocabulary files: the three formats, `from_dir`'s order, saving and reloading,
//! and errors that name the file and the line or entry at fault.

use std::path::Path;

use gpt2_tokenizer::{Tokenizer, TokenizerError};

const ENCODER_JSON: &str = include_str!("../data/encoder.json");
const VOCAB_BPE: &str = include_str!("../data/vocab.bpe");

/// GPT-2's 256 byte tokens as `"char": id` JSON entries (ids 0..256).
fn byte_entries() -> Vec<String> {
    let map: std::collections::HashMap<String, u32> = serde_json::from_str(ENCODER_JSON).unwrap();
    let mut bytes: Vec<(u32, String)> = map
        .into_iter()
        .filter(|&(_, id)| id < 256)
        .map(|(s, id)| (id, s))
        .collect();
    bytes.sort();
    bytes
        .iter()
        .map(|(id, s)| format!("{}: {id}", serde_json::to_string(s).unwrap()))
        .collect()
}

/// A vocab.json of the 256 bytes plus `extra` entries (JSON text, e.g. `"\"ab\": 256"`).
fn vocab_json(extra: &[&str]) -> String {
    let mut entries = byte_entries();
    entries.extend(extra.iter().map(|s| s.to_string()));
    format!("{{{}}}", entries.join(", "))
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
}

/// The error's message, which must name `file` and contain `what`.
fn assert_error(result: Result<Tokenizer, TokenizerError>, file: &str, what: &str) {
    let msg = result.expect_err("expected an error").to_string();
    assert!(
        msg.contains(file) && msg.contains(what),
        "message {msg:?} should name {file:?} and say {what:?}"
    );
}

#[test]
fn embedded_gpt2() {
    let tok = Tokenizer::gpt2();
    assert_eq!(tok.vocab_size(), 50257);
    assert_eq!(tok.eot_id(), Some(50256));
    assert_eq!(tok.special_tokens(), [("<|endoftext|>", 50256)]);
    assert_eq!(tok.token_to_id(" the"), Some(262));
    assert_eq!(tok.token_to_id("!"), Some(0));
    assert_eq!(tok.id_to_token_bytes(220), Some(&b" "[..]));
    assert_eq!(tok.id_to_token_bytes(50257), None);
    assert!(tok.is_special(50256) && !tok.is_special(262));
}

#[test]
fn from_files_equals_embedded_and_dir_order() {
    let dir = tempfile::tempdir().unwrap();
    let empty = Tokenizer::from_dir(dir.path());
    assert!(
        matches!(empty, Err(TokenizerError::NoVocabulary { .. })),
        "{empty:?}"
    );

    write(
        dir.path(),
        &[("encoder.json", ENCODER_JSON), ("vocab.bpe", VOCAB_BPE)],
    );
    let text = "Hello world, it's GPT-2 <|endoftext|> 🦀";
    let gpt2_ids = Tokenizer::gpt2().encode(text);
    assert_eq!(
        Tokenizer::from_dir(dir.path()).unwrap().encode(text),
        gpt2_ids
    );

    // vocab.json + merges.txt win over encoder.json + vocab.bpe ...
    let small = Tokenizer::train(["hello hello world"], 260, &[]).unwrap();
    let saved = tempfile::tempdir().unwrap();
    small.save(saved.path()).unwrap();
    let read = |name: &str| std::fs::read_to_string(saved.path().join(name)).unwrap();
    write(
        dir.path(),
        &[
            ("vocab.json", &read("vocab.json")),
            ("merges.txt", &read("merges.txt")),
        ],
    );
    assert_eq!(Tokenizer::from_dir(dir.path()).unwrap().vocab_size(), 260);
    // ... and tokenizer.json wins over both.
    let other = Tokenizer::train(["abab abab"], 258, &[]).unwrap();
    let saved2 = tempfile::tempdir().unwrap();
    other.save(saved2.path()).unwrap();
    write(
        dir.path(),
        &[(
            "tokenizer.json",
            &std::fs::read_to_string(saved2.path().join("tokenizer.json")).unwrap(),
        )],
    );
    assert_eq!(Tokenizer::from_dir(dir.path()).unwrap().vocab_size(), 258);
}

/// Saving GPT-2 writes OpenAI's vocabulary back (same entries, same merges in order), and
/// all three saved forms load to the same tokenizer.
#[test]
fn gpt2_save_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let tok = Tokenizer::gpt2();
    tok.save(dir.path()).unwrap();
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();

    let original: serde_json::Value = serde_json::from_str(ENCODER_JSON).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&read("vocab.json")).unwrap();
    assert_eq!(saved, original);
    let lines = |s: &str| s.lines().skip(1).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(lines(&read("merges.txt")), lines(VOCAB_BPE));

    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/tinyshakespeare.txt"
    ))
    .unwrap();
    let text = &text[..200_000];
    let expected = tok.encode(text);
    let from_json = Tokenizer::from_tokenizer_json(&dir.path().join("tokenizer.json")).unwrap();
    let from_str = Tokenizer::from_tokenizer_json_str(&read("tokenizer.json")).unwrap();
    let from_txt =
        Tokenizer::from_vocab_merges_str(&read("vocab.json"), &read("merges.txt")).unwrap();
    for loaded in [from_json, from_str, from_txt] {
        assert_eq!(loaded.vocab_size(), 50257);
        assert_eq!(loaded.special_tokens(), tok.special_tokens());
        assert_eq!(loaded.encode(text), expected);
    }
}

/// tokenizer.json as Hugging Face writes it for GPT-2 (merges as pairs, as tokenizers ≥
/// 0.20 writes them, an added token repeating a vocabulary entry).
#[test]
fn tokenizer_json_variants() {
    let vocab = vocab_json(&["\"ab\": 256", "\"<|endoftext|>\": 257"]);
    let json = |merges: &str, added: &str, pre: &str| {
        format!(
            r#"{{"version": "1.0", "added_tokens": [{added}], "normalizer": null, "pre_tokenizer": {pre},
               "model": {{"type": "BPE", "dropout": null, "vocab": {vocab}, "merges": [{merges}]}}}}"#
        )
    };
    let byte_level = r#"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#;
    let eot = r#"{"id": 257, "content": "<|endoftext|>", "special": true}"#;
    // transformers writes "" for unset prefix/suffix.
    let empty_affixes = |j: String| {
        j.replace(
            "\"dropout\": null",
            "\"dropout\": null, \"continuing_subword_prefix\": \"\", \"end_of_word_suffix\": \"\"",
        )
    };
    for merges in [r#""a b""#, r#"["a", "b"]"#] {
        let tok = Tokenizer::from_tokenizer_json_str(&json(merges, eot, byte_level)).unwrap();
        let same =
            Tokenizer::from_tokenizer_json_str(&empty_affixes(json(merges, eot, byte_level)))
                .unwrap();
        assert_eq!(same.encode("abc"), tok.encode("abc"));
        assert_eq!(tok.encode("abc"), [256, u32::from(b'c') - 33]);
        assert_eq!(tok.eot_id(), Some(257));
    }
    // An added token beyond the vocabulary extends it, and is special.
    let extra = r#"{"id": 258, "content": "<|im start|>", "special": true}"#;
    let tok = Tokenizer::from_tokenizer_json_str(&json(r#""a b""#, extra, byte_level)).unwrap();
    assert_eq!(tok.vocab_size(), 259);
    assert_eq!(tok.token_to_id("<|im start|>"), Some(258));
    assert!(tok.is_special(258));

    // An empty added token is kept as a token but is not special (it would match
    // everywhere).
    let empty = r#"{"id": 258, "content": "", "special": true}"#;
    let tok = Tokenizer::from_tokenizer_json_str(&json(r#""a b""#, empty, byte_level)).unwrap();
    assert!(!tok.is_special(258));
    assert_eq!(
        tok.encode_with_special("ab", gpt2_tokenizer::SpecialTokens::Allow)
            .unwrap(),
        [256]
    );

    let f = "tokenizer.json";
    let bad = |merges: &str, added: &str, pre: &str| {
        Tokenizer::from_tokenizer_json_str(&json(merges, added, pre))
    };
    assert_error(
        bad(r#""a b""#, "", r#"{"type": "Metaspace"}"#),
        f,
        "pre_tokenizer",
    );
    assert_error(
        bad(
            r#""a b""#,
            "",
            r#"{"type": "ByteLevel", "add_prefix_space": true}"#,
        ),
        f,
        "add_prefix_space",
    );
    assert_error(bad(r#""a b""#, "", "null"), f, "no pre-tokenizer");
    assert_error(bad(r#""a  b""#, "", byte_level), f, "model.merges[0]");
    assert_error(
        bad(r#""a b", "abc d""#, "", byte_level),
        f,
        "model.merges[1]: token \"abc\" is not in",
    );
    let clash = r#"{"id": 256, "content": "<other>", "special": true}"#;
    assert_error(
        bad(r#""a b""#, clash, byte_level),
        f,
        "added_tokens[0]: id 256 already belongs to \"ab\"",
    );
    let wordpiece = json("", "", byte_level).replace("\"BPE\"", "\"WordPiece\"");
    assert_error(
        Tokenizer::from_tokenizer_json_str(&wordpiece),
        f,
        "model.type",
    );
    let dropout = json("", "", byte_level).replace("\"dropout\": null", "\"dropout\": 0.1");
    let prefix = json("", "", byte_level)
        .replace("\"dropout\": null", "\"continuing_subword_prefix\": \"##\"");
    assert_error(
        Tokenizer::from_tokenizer_json_str(&prefix),
        f,
        "model.continuing_subword_prefix",
    );
    assert_error(
        Tokenizer::from_tokenizer_json_str(&dropout),
        f,
        "model.dropout",
    );
    let normalizer = json("", "", byte_level).replace(
        "\"normalizer\": null",
        "\"normalizer\": {\"type\": \"NFC\"}",
    );
    assert_error(
        Tokenizer::from_tokenizer_json_str(&normalizer),
        f,
        "normalizer",
    );
}

#[test]
fn malformed_vocab_and_merges_name_file_and_entry_or_line() {
    let (v, m) = ("vocab.json", "merges.txt");
    let load = Tokenizer::from_vocab_merges_str;
    let ok_vocab = vocab_json(&["\"ab\": 256"]);
    assert!(load(&ok_vocab, "#version: 0.2\na b\n").is_ok());
    assert!(
        load(&ok_vocab, "a b").is_ok(),
        "the version line is optional"
    );

    assert_error(load("{\"a\": 0,", ""), v, "line 1 column");
    assert_error(load("{\"a\": \"zero\"}", ""), v, "expected u32");
    assert_error(load("[1, 2]", ""), v, "JSON object");
    assert_error(
        load(&vocab_json(&["\"ab\": 255"]), ""),
        v,
        "entry \"ab\": id 255 already belongs to",
    );
    assert_error(
        load(&vocab_json(&["\"ab\": 300"]), ""),
        v,
        "entry \"ab\": id 300 out of range",
    );
    assert_error(
        load(&vocab_json(&["\"a\u{120}\": 256", "\"a \": 257"]), ""),
        v,
        "entry \"a \": same bytes as \"aĠ\"",
    );
    let missing_byte = ok_vocab.replace("\"!\": 0", "\"xy\": 0");
    assert_error(
        load(&missing_byte, ""),
        v,
        "byte 0x21: no token for this byte (written '!')",
    );

    assert_error(
        load(&ok_vocab, "#version: 0.2\na b\na b c\n"),
        m,
        "line 3: expected two tokens",
    );
    assert_error(
        load(&ok_vocab, "#version: 0.2\na b\n\n"),
        m,
        "line 3: expected two tokens",
    );
    assert_error(
        load(&ok_vocab, "a q\u{1ff}"),
        m,
        "line 1: token \"q\u{1ff}\" is not in vocab.json",
    );
    assert_error(
        load(&ok_vocab, "a c"),
        m,
        "line 1: merged token \"ac\" is not in vocab.json",
    );
    assert_error(
        load(&ok_vocab, "#version: 0.2\na b\na b\n"),
        m,
        "line 3: repeats the merge at line 2",
    );
}

#[test]
fn file_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let (vocab, merges) = (dir.path().join("vocab.json"), dir.path().join("merges.txt"));
    let missing = Tokenizer::from_vocab_merges(&vocab, &merges);
    assert!(
        matches!(&missing, Err(TokenizerError::Io { path, .. }) if *path == vocab),
        "{missing:?}"
    );
    std::fs::write(&vocab, b"{\"\xff\": 0}").unwrap();
    std::fs::write(&merges, "").unwrap();
    assert_error(
        Tokenizer::from_vocab_merges(&vocab, &merges),
        &vocab.display().to_string(),
        "not valid UTF-8",
    );
    std::fs::write(&vocab, vocab_json(&[])).unwrap();
    std::fs::write(&merges, "a b").unwrap();
    assert_error(
        Tokenizer::from_dir(dir.path()),
        &merges.display().to_string(),
        "line 1",
    );
}
