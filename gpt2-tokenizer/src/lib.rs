//! # gpt2-tokenizer
//!
//! GPT-2's byte-level BPE tokenizer: token-for-token identical to OpenAI's (tiktoken's
//! `r50k_base`), faster than tiktoken, loadable from OpenAI and Hugging Face files, and
//! trainable.
//!
//! ```
//! use gpt2_tokenizer::{SpecialTokens, Tokenizer};
//! let tok = Tokenizer::gpt2();
//! assert_eq!(tok.encode("<|endoftext|>").len(), 7); // plain text by default
//! let ids = tok.encode_with_special("hi<|endoftext|>", SpecialTokens::Allow).unwrap();
//! assert_eq!(ids, [5303, 50256]);
//! assert!(tok.encode_with_special("<|endoftext|>", SpecialTokens::Error).is_err());
//! ```
//!
//! ## What it does
//! - **Encoding** ([`Tokenizer::encode`], [`Tokenizer::encode_with_special`],
//!   [`Tokenizer::encode_batch`]): token-for-token what tiktoken's `r50k_base` gives,
//!   checked on tiny Shakespeare, War and Peace and a generated adversarial corpus.
//!   Special-token strings are plain text unless [`SpecialTokens::Allow`] (or refused with
//!   [`SpecialTokens::Error`]).
//! - **Decoding** to exact bytes, lossy or strict text, or one id at a time with
//!   [`StreamDecoder`]. Unknown ids are errors.
//! - **Loading** OpenAI's `encoder.json` + `vocab.bpe`, Hugging Face's `vocab.json` +
//!   `merges.txt` or `tokenizer.json` ([`Tokenizer::from_dir`]); GPT-2's vocabulary is
//!   embedded ([`Tokenizer::gpt2`]).
//! - **Training** a vocabulary ([`Tokenizer::train`]) and **saving** it in Hugging Face's
//!   formats ([`Tokenizer::save`]).
//!
//! ## How encoding works
//! 1. The text is split into pieces by a hand-written equivalent of GPT-2's pattern
//!    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//!    (`src/pretokenize.rs`): one forward scan, no backtracking, with Unicode classes
//!    generated from the tables of the regex engine tiktoken uses (`src/unicode.rs`).
//! 2. A piece that is itself a token is looked up directly; otherwise its bytes are
//!    merged by rank (`src/bpe.rs`), in O(n²) for short pieces and rank by rank for long
//!    ones, so a megabyte without a space costs a few times what ordinary text does.
//!
//! All errors are [`TokenizerError`]s; nothing in the API panics on bad input.

#![warn(missing_docs)]

mod bpe;
mod bytelevel;
mod decode;
mod error;
mod load;
mod pretokenize;
mod save;
mod special;
mod tokenizer;
mod train;
mod unicode;
mod vocab;

pub use decode::StreamDecoder;
pub use error::{Result, TokenizerError};
pub use tokenizer::{SpecialTokens, Tokenizer};
