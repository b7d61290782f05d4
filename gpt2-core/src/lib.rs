//! # gpt2-core
//!
//! Our own [`Tensor`] and the GPT-2 model on it: loading Hugging Face and llm.c weights
//! ([`model::Gpt2::load`]), the forward pass with a KV cache ([`model::ModelView`]),
//! sampling ([`sample`]) and streaming generation ([`generate`]); and training: the
//! backward pass ([`model::ModelView::backward`]), AdamW, data, checkpoints and the loop
//! ([`train`]).
//!
//! The path of one token: `gpt2_tokenizer` ids → [`model::ModelView::forward_cached`]
//! (embedding → blocks → ln_f → lm_head) → logits → [`sample::Sampler`] → id →
//! `gpt2_tokenizer::StreamDecoder` → text.

#![warn(missing_docs)]

mod error;
pub mod generate;
pub mod model;
pub mod profile;
pub mod sample;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
pub use tensor::{DType, Device, Element, Layout, Tensor};
