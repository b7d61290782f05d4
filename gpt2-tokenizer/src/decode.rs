//! [`StreamDecoder`]: decoding ids one at a time, emitting only whole characters.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// Decodes a stream of ids (as a model generates them) to text, emitting only complete
/// UTF-8 characters: a character split across tokens (common for emoji and CJK) is held
/// back until its last byte arrives. Invalid bytes become U+FFFD exactly as
/// [`Tokenizer::decode_lossy`] would make them, so the concatenation of everything
/// [`push`](StreamDecoder::push) and [`finish`](StreamDecoder::finish) return equals
/// `decode_lossy` of all the ids.
///
/// ```
/// use gpt2_tokenizer::Tokenizer;
/// let tok = Tokenizer::gpt2();
/// let ids = tok.encode("naïve 🦀");
/// let mut dec = tok.stream_decoder();
/// let mut text = String::new();
/// for &id in &ids {
///     text += &dec.push(id).unwrap();
/// }
/// text += &dec.finish();
/// assert_eq!(text, "naïve 🦀");
/// ```
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    tokenizer: Tokenizer,
    /// Bytes of an incomplete character, waiting for the rest.
    pending: Vec<u8>,
    /// Ids pushed so far (for error positions).
    pushed: usize,
}

impl StreamDecoder {
    pub(crate) fn new(tokenizer: Tokenizer) -> StreamDecoder {
        StreamDecoder {
            tokenizer,
            pending: Vec::new(),
            pushed: 0,
        }
    }

    /// Adds token `id`; returns the text completed by it (possibly empty). An unknown id
    /// is an error and leaves the decoder unchanged.
    pub fn push(&mut self, id: u32) -> Result<String> {
        let bytes = self.tokenizer.token_bytes(id, self.pushed)?;
        self.pushed += 1;
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest = self.pending.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out += s;
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out += std::str::from_utf8(valid).expect("valid up to here");
                    match e.error_len() {
                        // An invalid sequence: one U+FFFD, as from_utf8_lossy.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                        // A character cut off at the end: keep it for the next token.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        self.pending.drain(..self.pending.len() - keep);
        Ok(out)
    }

    /// Ends the stream: returns what is still held back (an incomplete character becomes
    /// U+FFFD) and resets the decoder.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.pushed = 0;
        out
    }
}
