//! Decoding arbitrary ids (valid or not): exact bytes, lossy and strict text, and the
//! stream decoder, which must concatenate to the lossy text; unknown ids are errors.
#![no_main]

use gpt2_tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tok = Tokenizer::gpt2();
    // Two bytes per id, slightly past the vocabulary so unknown ids occur.
    let ids: Vec<u32> = data
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])) % 50300)
        .collect();
    let exact = tok.decode(&ids);
    let lossy = tok.decode_lossy(&ids);
    let mut dec = tok.stream_decoder();
    let mut streamed = String::new();
    let mut failed = false;
    for &id in &ids {
        match dec.push(id) {
            Ok(s) => streamed += &s,
            Err(_) => failed = true,
        }
    }
    streamed += &dec.finish();
    match (exact, lossy) {
        (Ok(bytes), Ok(text)) => {
            assert!(!failed);
            assert_eq!(text, String::from_utf8_lossy(&bytes));
            assert_eq!(streamed, text);
            assert_eq!(tok.decode_utf8(&ids).ok(), String::from_utf8(bytes).ok());
        }
        (Err(_), Err(_)) => {
            assert!(failed && ids.iter().any(|&id| id as usize >= tok.vocab_size()))
        }
        _ => panic!("decode and decode_lossy disagree on errors"),
    }
});
