//! [`Tokenizer`]: loading, encoding, decoding.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::decode::StreamDecoder;
use crate::error::{Result, TokenizerError};
use crate::load;
use crate::pretokenize::Pieces;
use crate::special::SpecialMatcher;
use crate::vocab::{Scratch, Vocab};

/// OpenAI's GPT-2 vocabulary, embedded (see `data/SOURCE.md`).
const GPT2_ENCODER_JSON: &str = include_str!("../data/encoder.json");
const GPT2_VOCAB_BPE: &str = include_str!("../data/vocab.bpe");

/// How [`Tokenizer::encode_with_special`] treats special-token strings such as
/// `<|endoftext|>` found in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpecialTokens {
    /// As ordinary text (GPT-2's original behaviour, and [`Tokenizer::encode`]'s):
    /// `<|endoftext|>` becomes 7 ordinary tokens.
    #[default]
    Text,
    /// Recognised: each occurrence becomes its special token id.
    Allow,
    /// Refused: the text must not contain any, else [`TokenizerError::SpecialTokenInText`].
    Error,
}

/// A byte-level BPE tokenizer (GPT-2's, or one loaded or trained). Cloning is cheap: the
/// vocabulary is shared.
///
/// ```
/// use gpt2_tokenizer::Tokenizer;
/// let tok = Tokenizer::gpt2();
/// let ids = tok.encode("Hello world");
/// assert_eq!(ids, [15496, 995]);
/// assert_eq!(tok.decode_utf8(&ids).unwrap(), "Hello world");
/// ```
#[derive(Clone)]
pub struct Tokenizer {
    pub(crate) vocab: Arc<Vocab>,
    specials: Arc<SpecialMatcher>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("merges", &self.vocab.merge_list.len())
            .field("special_tokens", &self.special_tokens())
            .finish()
    }
}

fn read(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_owned(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| TokenizerError::FileNotUtf8 {
        file: path.display().to_string(),
        offset: e.utf8_error().valid_up_to(),
    })
}

impl Tokenizer {
    pub(crate) fn from_vocab(vocab: Vocab) -> Tokenizer {
        let specials = SpecialMatcher::new(&vocab);
        Tokenizer {
            vocab: Arc::new(vocab),
            specials: Arc::new(specials),
        }
    }

    /// OpenAI's GPT-2 tokenizer (`r50k_base`; 50257 tokens, `<|endoftext|>` = 50256), from
    /// the vocabulary embedded in the crate: no files, no network. Parsed once per process;
    /// later calls clone a shared handle.
    pub fn gpt2() -> Tokenizer {
        static GPT2: OnceLock<Tokenizer> = OnceLock::new();
        GPT2.get_or_init(|| {
            let vocab = load::vocab_merges(
                GPT2_ENCODER_JSON,
                "encoder.json",
                GPT2_VOCAB_BPE,
                "vocab.bpe",
            )
            .expect("the embedded GPT-2 vocabulary is valid (checked by the crate's tests)");
            Tokenizer::from_vocab(vocab)
        })
        .clone()
    }

    /// Loads the vocabulary in `dir`: `tokenizer.json` if present, else `vocab.json` +
    /// `merges.txt` (Hugging Face), else `encoder.json` + `vocab.bpe` (OpenAI).
    pub fn from_dir(dir: &Path) -> Result<Tokenizer> {
        let tokenizer_json = dir.join("tokenizer.json");
        if tokenizer_json.is_file() {
            return Tokenizer::from_tokenizer_json(&tokenizer_json);
        }
        for (vocab, merges) in [("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")] {
            let (vocab, merges) = (dir.join(vocab), dir.join(merges));
            if vocab.is_file() && merges.is_file() {
                return Tokenizer::from_vocab_merges(&vocab, &merges);
            }
        }
        Err(TokenizerError::NoVocabulary {
            dir: dir.to_owned(),
        })
    }

    /// Loads a JSON vocabulary (token string → id) and a merges file (optional `#version`
    /// line, then one merge `left right` per line, highest priority first): Hugging Face's
    /// `vocab.json` + `merges.txt`, or OpenAI's `encoder.json` + `vocab.bpe`, which are the
    /// same formats.
    pub fn from_vocab_merges(vocab_json: &Path, merges_txt: &Path) -> Result<Tokenizer> {
        let (vocab, merges) = (read(vocab_json)?, read(merges_txt)?);
        let (vocab_name, merges_name) = (
            vocab_json.display().to_string(),
            merges_txt.display().to_string(),
        );
        load::vocab_merges(&vocab, &vocab_name, &merges, &merges_name).map(Tokenizer::from_vocab)
    }

    /// [`Tokenizer::from_vocab_merges`] from the files' contents; errors call them
    /// `vocab.json` and `merges.txt`.
    pub fn from_vocab_merges_str(vocab_json: &str, merges_txt: &str) -> Result<Tokenizer> {
        load::vocab_merges(vocab_json, "vocab.json", merges_txt, "merges.txt")
            .map(Tokenizer::from_vocab)
    }

    /// Loads a Hugging Face `tokenizer.json` describing a GPT-2-style byte-level BPE model
    /// (BPE model, `ByteLevel` pre-tokenizer without prefix space, no normalizer). Its
    /// `added_tokens` become special tokens. Other tokenizer types are an error.
    pub fn from_tokenizer_json(path: &Path) -> Result<Tokenizer> {
        load::tokenizer_json(&read(path)?, &path.display().to_string()).map(Tokenizer::from_vocab)
    }

    /// [`Tokenizer::from_tokenizer_json`] from the file's content; errors call it
    /// `tokenizer.json`.
    pub fn from_tokenizer_json_str(json: &str) -> Result<Tokenizer> {
        load::tokenizer_json(json, "tokenizer.json").map(Tokenizer::from_vocab)
    }

    /// Encodes `text`, special-token strings included, as ordinary text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3);
        self.encode_ordinary_into(text, &mut Scratch::default(), &mut out);
        out
    }

    /// Encodes `text`, treating special-token strings as `mode` says.
    pub fn encode_with_special(&self, text: &str, mode: SpecialTokens) -> Result<Vec<u32>> {
        match mode {
            SpecialTokens::Text => Ok(self.encode(text)),
            SpecialTokens::Error => match self.specials.find_iter(text).next() {
                Some(m) => Err(TokenizerError::SpecialTokenInText {
                    token: self.specials.text(m.id).to_owned(),
                    offset: m.start,
                }),
                None => Ok(self.encode(text)),
            },
            SpecialTokens::Allow => {
                let (mut out, mut scratch) =
                    (Vec::with_capacity(text.len() / 3), Scratch::default());
                let mut pos = 0;
                for m in self.specials.find_iter(text) {
                    self.encode_ordinary_into(&text[pos..m.start], &mut scratch, &mut out);
                    out.push(m.id);
                    pos = m.end;
                }
                self.encode_ordinary_into(&text[pos..], &mut scratch, &mut out);
                Ok(out)
            }
        }
    }

    /// Encodes many texts in parallel on rayon's current pool (ordinary encoding, as
    /// [`Tokenizer::encode`]).
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        texts.par_iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Pre-tokenises `text` (the segments between special tokens when those are
    /// recognised) and BPE-encodes each piece.
    fn encode_ordinary_into(&self, text: &str, scratch: &mut Scratch, out: &mut Vec<u32>) {
        for piece in Pieces::new(text) {
            self.vocab.encode_piece(piece.as_bytes(), scratch, out);
        }
    }

    /// The exact bytes of `ids`; an id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for (position, &id) in ids.iter().enumerate() {
            out.extend_from_slice(self.token_bytes(id, position)?);
        }
        Ok(out)
    }

    /// Decodes to text, each invalid UTF-8 stretch becoming U+FFFD (as
    /// [`String::from_utf8_lossy`]).
    pub fn decode_lossy(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode(ids)?).into_owned())
    }

    /// Decodes to text; bytes that are not valid UTF-8 are an error.
    pub fn decode_utf8(&self, ids: &[u32]) -> Result<String> {
        String::from_utf8(self.decode(ids)?).map_err(|e| TokenizerError::InvalidUtf8 {
            offset: e.utf8_error().valid_up_to(),
        })
    }

    /// A decoder for ids arriving one at a time (generation): see [`StreamDecoder`].
    pub fn stream_decoder(&self) -> StreamDecoder {
        StreamDecoder::new(self.clone())
    }

    /// The bytes of token `id`, or [`TokenizerError::UnknownId`] naming `position`.
    pub(crate) fn token_bytes(&self, id: u32, position: usize) -> Result<&[u8]> {
        self.vocab.token(id).ok_or(TokenizerError::UnknownId {
            id,
            position,
            vocab_size: self.vocab_size(),
        })
    }

    /// Number of tokens, special ones included; ids are `0..vocab_size()`.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The id of the token whose bytes are the UTF-8 of `token` (its text, e.g. `" the"`,
    /// not the vocabulary file's spelling `"Ġthe"`), special tokens included.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.id_of(token.as_bytes())
    }

    /// The bytes of token `id`, `None` if there is no such token.
    pub fn id_to_token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.vocab.token(id)
    }

    /// The special tokens and their ids, by increasing id.
    pub fn special_tokens(&self) -> Vec<(&str, u32)> {
        self.vocab
            .specials
            .iter()
            .map(|&id| (self.specials.text(id), id))
            .collect()
    }

    /// Whether `id` is a special token.
    pub fn is_special(&self, id: u32) -> bool {
        self.vocab.is_special(id)
    }

    /// The id of the special token `<|endoftext|>`, if the vocabulary has it.
    pub fn eot_id(&self) -> Option<u32> {
        self.token_to_id("<|endoftext|>")
            .filter(|&id| self.is_special(id))
    }
}
