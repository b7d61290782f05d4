//! The one error type of gpt2-tokenizer.

use std::path::PathBuf;

/// Everything that can go wrong when loading, saving, training or running a tokenizer.
/// Errors about a file name it, and the line (text files) or entry (JSON files) at fault.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file is not valid JSON or not of the expected shape; serde_json's message
    /// gives the line and column.
    #[error("{file}: {source}")]
    Json {
        /// The file (its path, or its usual name when parsed from a string).
        file: String,
        /// The underlying error, with line and column.
        source: serde_json::Error,
    },
    /// A file parses but its content is wrong: a bad merge line, a duplicate id, a missing
    /// byte token, an unsupported tokenizer type…
    #[error("{file}: {at}: {msg}")]
    Malformed {
        /// The file (its path, or its usual name when parsed from a string).
        file: String,
        /// Where: `line 12`, `entry "Ġthe"`, `model.merges[7]`, …
        at: String,
        /// What is wrong.
        msg: String,
    },
    /// A file is not valid UTF-8.
    #[error("{file}: not valid UTF-8 (first bad byte at offset {offset})")]
    FileNotUtf8 {
        /// The file.
        file: String,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// [`Tokenizer::from_dir`](crate::Tokenizer::from_dir) found no vocabulary files.
    #[error(
        "{dir}: no vocabulary found (looked for tokenizer.json, vocab.json + merges.txt, \
         encoder.json + vocab.bpe)"
    )]
    NoVocabulary {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A token id is not in the vocabulary.
    #[error("token id {id} at position {position} is not in the vocabulary (size {vocab_size})")]
    UnknownId {
        /// The id.
        id: u32,
        /// Its index in the input.
        position: usize,
        /// The vocabulary size: valid ids are `0..vocab_size`.
        vocab_size: usize,
    },
    /// Decoded bytes are not valid UTF-8 (strict decoding only).
    #[error("decoded bytes are not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte in the decoded output.
        offset: usize,
    },
    /// A special token appears in text encoded with
    /// [`SpecialTokens::Error`](crate::SpecialTokens::Error).
    #[error("special token {token:?} at byte {offset} of the text")]
    SpecialTokenInText {
        /// The special token.
        token: String,
        /// Its byte offset in the text.
        offset: usize,
    },
    /// Training was asked for something impossible (vocabulary too small for the bytes and
    /// special tokens, a corpus without enough pairs, a bad special token).
    #[error("training: {0}")]
    Training(String),
}

/// `Result` with [`TokenizerError`].
pub type Result<T> = std::result::Result<T, TokenizerError>;
