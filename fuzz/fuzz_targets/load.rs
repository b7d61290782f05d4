//! Loading arbitrary vocabulary files (vocab.json + merges.txt, split at the first NUL
//! byte, and tokenizer.json): never panics; whatever loads encodes and decodes back.
#![no_main]

use gpt2_tokenizer::{SpecialTokens, Tokenizer};
use libfuzzer_sys::fuzz_target;

fn exercise(tok: &Tokenizer) {
    let text = "Hello world, it's <|endoftext|> 🦀 123";
    let ids = tok.encode(text);
    assert_eq!(tok.decode(&ids).unwrap(), text.as_bytes());
    let allowed = tok.encode_with_special(text, SpecialTokens::Allow).unwrap();
    assert_eq!(tok.decode(&allowed).unwrap(), text.as_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (vocab, merges) = text.split_once('\0').unwrap_or((text, ""));
    if let Ok(tok) = Tokenizer::from_vocab_merges_str(vocab, merges) {
        exercise(&tok);
    }
    if let Ok(tok) = Tokenizer::from_tokenizer_json_str(text) {
        exercise(&tok);
    }
});
