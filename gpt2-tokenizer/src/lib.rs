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
//! ## How encoding works
//! 1. [`pretokenize`] splits the text into pieces with GPT-2's pattern (hand-written, one
//!    forward scan, Unicode classes in [`unicode`] as tiktoken's regex engine sees them).
//! 2. Each piece's bytes are merged by rank ([`bpe`]); a piece that is itself a token
//!    is looked up directly.
//!
//! Decoding concatenates token bytes ([`Tokenizer::decode`]); [`StreamDecoder`] does it
//! one id at a time for generation. [`Tokenizer::train`] learns a new vocabulary and
//! [`Tokenizer::save`] writes it in Hugging Face's formats.

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
