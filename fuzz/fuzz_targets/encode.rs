//! Encoding arbitrary text: never panics, decodes back exactly in every special-token
//! mode, and equals tiktoken-rs (`r50k_base`) wherever tiktoken does not itself panic.
#![no_main]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;

use gpt2_tokenizer::{SpecialTokens, Tokenizer};
use libfuzzer_sys::fuzz_target;

static TIKTOKEN: LazyLock<tiktoken_rs::CoreBPE> =
    LazyLock::new(|| tiktoken_rs::r50k_base().unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let tok = Tokenizer::gpt2();
    let ids = tok.encode(text);
    assert_eq!(tok.decode(&ids).unwrap(), data);
    let allowed = tok.encode_with_special(text, SpecialTokens::Allow).unwrap();
    assert_eq!(tok.decode(&allowed).unwrap(), data);
    if tok.encode_with_special(text, SpecialTokens::Error).is_ok() {
        assert!(!text.contains("<|endoftext|>"));
    }
    if text.len() <= 4096 {
        if let Ok(expected) = catch_unwind(AssertUnwindSafe(|| TIKTOKEN.encode_ordinary(text))) {
            assert_eq!(ids, expected, "differs from tiktoken on {text:?}");
        }
    }
});
