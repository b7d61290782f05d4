//! The one error type of gpt2-core.

use std::path::PathBuf;

use gpt2_kernels::KernelError;

/// Everything that can go wrong in gpt2-core. Messages say what was expected and what was
/// found, and name the file where there is one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel rejected its arguments (lengths, indices).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Shapes that do not fit together, or a view that cannot be made.
    #[error("shape error: {0}")]
    Shape(String),
    /// A tensor has the wrong element type for the operation.
    #[error("dtype error: {context}: expected {expected}, found {found}")]
    DType {
        /// What needed the type.
        context: String,
        /// The type it needs.
        expected: crate::DType,
        /// The type it got.
        found: crate::DType,
    },
    /// An operation that needs data on one device got a tensor on another.
    #[error("device error: {0}")]
    Device(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file exists but its content is not what it should be (truncated, corrupt, wrong
    /// format, missing or mis-shaped tensors).
    #[error("{}: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A model configuration that cannot work (e.g. `n_embd` not divisible by `n_head`).
    #[error("invalid config: {0}")]
    Config(String),
    /// The tokenizer failed (bad vocabulary files, unknown token ids, ...).
    #[error(transparent)]
    Tokenizer(#[from] gpt2_tokenizer::TokenizerError),
    /// Bad arguments to a model-level call (unknown token id, prompt too long, ...).
    #[error("{0}")]
    Input(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Error {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
