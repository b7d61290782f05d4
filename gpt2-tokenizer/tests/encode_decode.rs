//! Encoding modes, decoding (exact, lossy, strict, streaming) and their properties.

use gpt2_tokenizer::{SpecialTokens, Tokenizer, TokenizerError};
use proptest::prelude::*;

fn gpt2() -> Tokenizer {
    Tokenizer::gpt2()
}

#[test]
fn special_token_modes() {
    let tok = gpt2();
    let text = "a<|endoftext|>b <|endoftext|>";
    // Plain text, as GPT-2 did: `<|endoftext|>` is 7 ordinary tokens.
    assert_eq!(
        tok.encode("<|endoftext|>"),
        [27, 91, 437, 1659, 5239, 91, 29]
    );
    assert_eq!(
        tok.encode_with_special(text, SpecialTokens::Text).unwrap(),
        tok.encode(text)
    );
    // Recognised: the text around each one is encoded on its own (so "b " ends in a space
    // piece, as in tiktoken).
    let allowed = tok.encode_with_special(text, SpecialTokens::Allow).unwrap();
    assert_eq!(allowed, [64, 50256, 65, 220, 50256]);
    // Refused, naming the token and where it is.
    match tok.encode_with_special(text, SpecialTokens::Error) {
        Err(TokenizerError::SpecialTokenInText { token, offset }) => {
            assert_eq!((token.as_str(), offset), ("<|endoftext|>", 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        tok.encode_with_special("no specials", SpecialTokens::Error)
            .unwrap(),
        tok.encode("no specials")
    );
    assert_eq!(SpecialTokens::default(), SpecialTokens::Text);
}

/// Overlapping and adjacent special tokens: leftmost first, then longest.
#[test]
fn special_token_matching_is_leftmost_longest() {
    let tok = Tokenizer::train(["some text to learn from"], 262, &["<a>", "<a>>", "a>"]).unwrap();
    let ids = |t: &str| tok.encode_with_special(t, SpecialTokens::Allow).unwrap();
    let (a, aa, a_) = (259, 260, 261);
    assert_eq!(ids("<a>>"), [aa]);
    assert_eq!(ids("<a><a>"), [a, a]);
    assert_eq!(ids("xa><a>"), [tok.encode("x")[0], a_, a]);
}

#[test]
fn empty_input() {
    let tok = gpt2();
    assert!(tok.encode("").is_empty());
    assert_eq!(tok.decode(&[]).unwrap(), b"");
    assert_eq!(
        tok.encode_with_special("", SpecialTokens::Allow).unwrap(),
        Vec::<u32>::new()
    );
}

#[test]
fn batch_equals_one_by_one() {
    let tok = gpt2();
    let texts: Vec<String> = (0..200)
        .map(|i| format!("text number {i}: {}", "ab ".repeat(i % 7)))
        .collect();
    let batch = tok.encode_batch(&texts);
    for (text, ids) in texts.iter().zip(&batch) {
        assert_eq!(&tok.encode(text), ids);
    }
    assert_eq!(
        tok.encode_batch(&["x", "y"]),
        [tok.encode("x"), tok.encode("y")]
    );
}

#[test]
fn decoding_exact_lossy_strict() {
    let tok = gpt2();
    let crab = tok.encode("🦀"); // 4 bytes over several tokens
    assert!(crab.len() > 1);
    let partial = &crab[..crab.len() - 1];
    let bytes = tok.decode(partial).unwrap();
    assert_eq!(bytes, &"🦀".as_bytes()[..bytes.len()]);
    assert_eq!(tok.decode_lossy(partial).unwrap(), "\u{FFFD}");
    assert!(matches!(
        tok.decode_utf8(partial),
        Err(TokenizerError::InvalidUtf8 { offset: 0 })
    ));
    assert_eq!(tok.decode_utf8(&crab).unwrap(), "🦀");

    let unknown = tok.decode(&[15496, 50257, 995]);
    assert!(
        matches!(
            unknown,
            Err(TokenizerError::UnknownId {
                id: 50257,
                position: 1,
                vocab_size: 50257
            })
        ),
        "{unknown:?}"
    );
    assert!(tok.decode_lossy(&[u32::MAX]).is_err());
}

#[test]
fn stream_decoder_holds_partial_characters() {
    let tok = gpt2();
    let ids = tok.encode("a🦀b");
    let mut dec = tok.stream_decoder();
    let pieces: Vec<String> = ids.iter().map(|&id| dec.push(id).unwrap()).collect();
    assert_eq!(pieces.first().map(String::as_str), Some("a"));
    assert!(
        pieces
            .iter()
            .all(|p| p.is_empty() || p == "a" || p == "🦀" || p == "b"),
        "{pieces:?}"
    );
    assert_eq!(pieces.concat(), "a🦀b");
    assert_eq!(dec.finish(), "");

    // An unknown id is an error and changes nothing; a cut-off character at the end
    // becomes U+FFFD.
    let crab = tok.encode("🦀");
    let mut dec = tok.stream_decoder();
    assert_eq!(dec.push(crab[0]).unwrap(), "");
    assert!(matches!(
        dec.push(99_999),
        Err(TokenizerError::UnknownId {
            id: 99_999,
            position: 1,
            ..
        })
    ));
    assert_eq!(dec.finish(), "\u{FFFD}");
    assert_eq!(dec.finish(), "", "finish resets");
}

/// Characters that stress the pre-tokeniser and byte-level encoding.
const TRICKY: &[char] = &[
    ' ',
    ' ',
    '\'',
    's',
    'S',
    'e',
    'l',
    'v',
    '7',
    '\n',
    '\r',
    '\t',
    '\u{a0}',
    '\u{3000}',
    '.',
    '<',
    '|',
    '>',
    'é',
    '\u{301}',
    '中',
    '😀',
    '\u{200d}',
    '\u{1F3FD}',
    '\0',
    '\u{7f}',
    '\u{85}',
    '\u{FFFD}',
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decode_inverts_encode(text in any::<String>()) {
        let tok = gpt2();
        let ids = tok.encode(&text);
        prop_assert_eq!(tok.decode_utf8(&ids).unwrap(), text.clone());
        let allowed = tok.encode_with_special(&text, SpecialTokens::Allow).unwrap();
        prop_assert_eq!(tok.decode(&allowed).unwrap(), text.as_bytes());
    }

    #[test]
    fn decode_inverts_encode_tricky(chars in prop::collection::vec(prop::sample::select(TRICKY), 0..80)) {
        let text: String = chars.into_iter().collect();
        let tok = gpt2();
        prop_assert_eq!(tok.decode_utf8(&tok.encode(&text)).unwrap(), text);
    }

    /// Streaming any ids (not only those of valid text) gives the lossy decoding.
    #[test]
    fn stream_concatenates_to_lossy(ids in prop::collection::vec(0u32..50257, 0..64)) {
        let tok = gpt2();
        let mut dec = tok.stream_decoder();
        let mut text = String::new();
        for &id in &ids {
            text += &dec.push(id).unwrap();
        }
        text += &dec.finish();
        prop_assert_eq!(text, tok.decode_lossy(&ids).unwrap());
    }

    /// Byte tokens alone (ids 0..256 are the 256 bytes) make every kind of invalid UTF-8.
    #[test]
    fn stream_concatenates_to_lossy_on_raw_bytes(ids in prop::collection::vec(0u32..256, 0..64)) {
        let tok = gpt2();
        let mut dec = tok.stream_decoder();
        let mut text = String::new();
        for &id in &ids {
            text += &dec.push(id).unwrap();
        }
        text += &dec.finish();
        prop_assert_eq!(text, tok.decode_lossy(&ids).unwrap());
    }
}

#[test]
fn tokenizer_is_shared_across_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<Tokenizer>();
    shareable::<gpt2_tokenizer::StreamDecoder>();
    let tok = gpt2();
    let ids = std::thread::spawn(move || tok.encode("from another thread"))
        .join()
        .unwrap();
    assert_eq!(gpt2().decode_utf8(&ids).unwrap(), "from another thread");
}
