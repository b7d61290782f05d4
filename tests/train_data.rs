//! The data pipeline: llm.c token files (and clear errors for bad ones), parallel
//! tokenisation equal to sequential encoding on real corpora, and the validation split.

use gpt2::gpt2_core::Error;
use gpt2::gpt2_core::train::data::{
    self, DataLoader, Order, TOKEN_MAGIC, read_token_file, write_token_file,
};
use gpt2::gpt2_tokenizer::Tokenizer;

fn header(magic: i32, version: i32, count: i32) -> Vec<u8> {
    let mut h = vec![0u8; 1024];
    for (i, v) in [magic, version, count].into_iter().enumerate() {
        h[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    h
}

/// The error for a file with these bytes.
fn error_for(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.bin");
    std::fs::write(&p, bytes).unwrap();
    let e = read_token_file(&p).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("bad.bin"), "the error names the file: {msg}");
    msg
}

#[test]
fn token_file_reader_rejects_bad_magic_version_and_size() {
    let mut good = header(TOKEN_MAGIC, 1, 3);
    good.extend_from_slice(&[1, 0, 2, 0, 3, 0]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("good.bin");
    std::fs::write(&p, &good).unwrap();
    assert_eq!(read_token_file(&p).unwrap(), vec![1, 2, 3]);

    let mut bad_magic = good.clone();
    bad_magic[0] ^= 1;
    let e = error_for(&bad_magic);
    assert!(e.contains("bad magic") && e.contains("20240520"), "{e}");

    let mut v2 = header(TOKEN_MAGIC, 2, 3);
    v2.extend_from_slice(&[0; 12]);
    let e = error_for(&v2);
    assert!(e.contains("version 2"), "{e}");

    let e = error_for(&good[..good.len() - 1]);
    assert!(e.contains("3 tokens") && e.contains("1029 bytes"), "{e}");
    let mut long = good.clone();
    long.extend_from_slice(&[9, 9]);
    assert!(error_for(&long).contains("1032 bytes"));
    let e = error_for(&header(TOKEN_MAGIC, 1, -5));
    assert!(e.contains("negative"), "{e}");
    let e = error_for(&good[..100]);
    assert!(e.contains("header"), "{e}");
}

#[test]
fn parallel_tokenisation_equals_sequential_encoding() {
    let tok = Tokenizer::gpt2();
    for path in ["data/tinyshakespeare.txt", "data/war_and_peace.txt"] {
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(data::tokenize(&tok, &text), tok.encode(&text), "{path}");
    }
}

#[test]
fn load_tokens_reads_text_and_token_files_alike() {
    let tok = Tokenizer::gpt2();
    let dir = tempfile::tempdir().unwrap();
    let text = "First Citizen:\nBefore we proceed any further, hear me speak.\n";
    let txt = dir.path().join("a.txt");
    std::fs::write(&txt, text).unwrap();
    let ids = data::load_tokens(&txt, &tok).unwrap();
    assert_eq!(ids, tok.encode(text));
    let bin = dir.path().join("a.bin");
    write_token_file(&bin, &ids).unwrap();
    assert_eq!(data::load_tokens(&bin, &tok).unwrap(), ids);
    std::fs::write(&txt, [0xff, 0xfe, 0x00]).unwrap();
    let e = data::load_tokens(&txt, &tok).unwrap_err().to_string();
    assert!(e.contains("UTF-8"), "{e}");
}

#[test]
fn loader_rejects_too_little_data() {
    let e = DataLoader::new(vec![0; 16], 2, 8, Order::Sequential).unwrap_err();
    assert!(e.to_string().contains("not enough"), "{e}");
    assert!(DataLoader::new(vec![0; 17], 2, 8, Order::Sequential).is_ok());
}
