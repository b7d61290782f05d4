//! # gpt2-core
//!
//! Our own [`Tensor`] and the GPT-2 model on it.

#![warn(missing_docs)]

mod error;
pub mod tensor;

pub use error::{Error, Result};
pub use tensor::{DType, Device, Element, Layout, Tensor};
