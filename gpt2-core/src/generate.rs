//! Text generation: prompt ids in, tokens out one at a time (an iterator), each with the
//! text it completes, decoded UTF-8-safely by the tokenizer's streaming decoder (or ids
//! only, when no tokenizer is given).
//!
//! The model behind it is a [`Decoder`]: the CPU one ([`CpuDecoder`], what [`generate`]
//! uses) or, with the `cuda` feature, `model::cuda::CudaDecoder`.
//!
//! What this does not do: tokenize the prompt (the caller chooses how special tokens are
//! treated) or print anything.

use gpt2_tokenizer::{StreamDecoder, Tokenizer};

use crate::error::{Error, Result};
use crate::model::{Config, KvCache, ModelView, Segment};
use crate::profile::{self, Work};
use crate::sample::{Sampler, SamplingParams};

/// What to do when the prompt plus the new tokens do not fit the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Truncate {
    /// Refuse with [`Error::Input`].
    #[default]
    Error,
    /// Drop the oldest prompt tokens until everything fits.
    Left,
}

/// Settings of one generation.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// How many new tokens at most.
    pub max_new_tokens: usize,
    /// How tokens are chosen.
    pub sampling: SamplingParams,
    /// Seed of the sampler's random stream.
    pub seed: u64,
    /// Stop after the token id that ends a text (`<|endoftext|>`), if any; that token is
    /// yielded, then generation stops.
    pub stop_token: Option<u32>,
    /// Stop once the generated text contains one of these (the token that completes it is
    /// yielded, as Hugging Face's `stop_strings`).
    pub stop_strings: Vec<String>,
    /// Over-long prompts: error or drop from the left.
    pub truncate: Truncate,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 64,
            sampling: SamplingParams::default(),
            seed: 0,
            stop_token: None,
            stop_strings: Vec::new(),
            truncate: Truncate::Error,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The stop token was generated.
    StopToken,
    /// A stop string appeared.
    StopString,
    /// `max_new_tokens` were generated.
    MaxTokens,
}

/// One generated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Its id.
    pub id: u32,
    /// The text that became complete with it (possibly empty while a multi-byte character
    /// is still partial).
    pub text: String,
}

/// What generation needs from a model: one sequence that grows a few tokens at a time,
/// and a choice of the next token from the logits of its last one.
pub trait Decoder {
    /// The model's sizes.
    fn config(&self) -> &Config;
    /// Appends `tokens` (at least one) to the sequence; the logits (V) of the last of them
    /// stay with the decoder for [`Decoder::sample`].
    fn append(&mut self, tokens: &[u32]) -> Result<()>;
    /// Chooses the next token from the logits of the last appended token among the first
    /// `vocab` ids, with `sampler`'s parameters and random stream; `history` (prompt and
    /// output so far) feeds the repetition penalty.
    fn sample(&mut self, sampler: &mut Sampler, history: &[u32], vocab: usize) -> Result<u32>;
}

/// The CPU [`Decoder`]: a model and its [`KvCache`] for one sequence.
pub struct CpuDecoder<'a> {
    model: ModelView<'a>,
    cache: KvCache,
    /// The logits (V) of the last appended token.
    logits: Vec<f32>,
}

impl<'a> CpuDecoder<'a> {
    /// A decoder with an empty cache (allocated up to `n_ctx` now).
    pub fn new(model: ModelView<'a>) -> CpuDecoder<'a> {
        let cache = KvCache::new(model.config, 1);
        CpuDecoder {
            model,
            cache,
            logits: Vec::new(),
        }
    }
}

impl Decoder for CpuDecoder<'_> {
    fn config(&self) -> &Config {
        self.model.config
    }

    fn append(&mut self, tokens: &[u32]) -> Result<()> {
        let seg = Segment { seq: 0, tokens };
        self.logits = self.model.forward_cached(&mut self.cache, &[seg])?;
        Ok(())
    }

    fn sample(&mut self, sampler: &mut Sampler, history: &[u32], vocab: usize) -> Result<u32> {
        // Ids past `vocab` (padding rows of a larger embedding) are never sampled.
        let logits = &mut self.logits;
        let cut = vocab.min(logits.len());
        logits[cut..]
            .iter_mut()
            .for_each(|l| *l = f32::NEG_INFINITY);
        let work = Work::bytes(4 * logits.len());
        profile::op("sample", work, || sampler.sample(logits, history))
    }
}

/// A running generation: an iterator of [`Generated`] tokens.
pub struct Generation<'a> {
    decoder: Box<dyn Decoder + 'a>,
    tokenizer: Option<&'a Tokenizer>,
    text_decoder: Option<StreamDecoder>,
    opts: GenerateOptions,
    sampler: Sampler,
    history: Vec<u32>,
    produced: usize,
    text: String,
    stop: Option<StopReason>,
    prompt_len: usize,
}

/// Starts generating after `prompt` (ids). The prompt is run through the model at once
/// (prefill) before this returns; tokens then come one per `next()`. An empty prompt starts
/// from `stop_token` (`<|endoftext|>`), as GPT-2's unconditional samples do. Without a
/// tokenizer, tokens come with empty text.
pub fn generate<'a>(
    model: ModelView<'a>,
    tokenizer: Option<&'a Tokenizer>,
    prompt: &[u32],
    opts: GenerateOptions,
) -> Result<Generation<'a>> {
    generate_with(Box::new(CpuDecoder::new(model)), tokenizer, prompt, opts)
}

/// [`generate`] on any [`Decoder`] (e.g. the GPU's), which must start empty.
pub fn generate_with<'a>(
    mut decoder: Box<dyn Decoder + 'a>,
    tokenizer: Option<&'a Tokenizer>,
    prompt: &[u32],
    opts: GenerateOptions,
) -> Result<Generation<'a>> {
    let cfg = decoder.config().clone();
    let cfg = &cfg;
    if let Some(tokenizer) = tokenizer.filter(|t| t.vocab_size() > cfg.vocab_size) {
        return Err(Error::Input(format!(
            "the tokenizer has {} tokens but the model only {}: they do not belong together",
            tokenizer.vocab_size(),
            cfg.vocab_size
        )));
    }
    let mut prompt = prompt.to_vec();
    if prompt.is_empty() {
        prompt.push(opts.stop_token.ok_or_else(|| {
            Error::Input("empty prompt and no <|endoftext|> token to start from".into())
        })?);
    }
    let total = prompt.len() + opts.max_new_tokens;
    if total > cfg.n_ctx {
        match opts.truncate {
            Truncate::Error => {
                return Err(Error::Input(format!(
                    "prompt of {} tokens plus {} new tokens exceeds the context of {} (use truncation or fewer tokens)",
                    prompt.len(),
                    opts.max_new_tokens,
                    cfg.n_ctx
                )));
            }
            Truncate::Left => {
                if opts.max_new_tokens >= cfg.n_ctx {
                    return Err(Error::Input(format!(
                        "{} new tokens leave no room for the prompt in a context of {}",
                        opts.max_new_tokens, cfg.n_ctx
                    )));
                }
                prompt.drain(..total - cfg.n_ctx);
            }
        }
    }
    decoder.append(&prompt)?;
    let sampler = Sampler::new(opts.sampling.clone(), opts.seed)?;
    Ok(Generation {
        decoder,
        tokenizer,
        text_decoder: tokenizer.map(Tokenizer::stream_decoder),
        sampler,
        prompt_len: prompt.len(),
        history: prompt,
        produced: 0,
        text: String::new(),
        stop: None,
        opts,
    })
}

impl Generation<'_> {
    /// Why generation ended, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// The prompt ids actually used (after truncation).
    pub fn prompt(&self) -> &[u32] {
        &self.history[..self.prompt_len]
    }

    /// The ids generated so far.
    pub fn generated(&self) -> &[u32] {
        &self.history[self.prompt_len..]
    }

    /// Any bytes still held by the streaming decoder (an incomplete character at the end),
    /// decoded lossily. Call after the iterator is exhausted.
    pub fn finish_text(&mut self) -> String {
        self.text_decoder
            .as_mut()
            .map(StreamDecoder::finish)
            .unwrap_or_default()
    }

    fn step(&mut self) -> Result<Generated> {
        // Ids the tokenizer cannot decode (padding rows of a larger embedding) are never sampled.
        let vocab = self
            .tokenizer
            .map_or(self.decoder.config().vocab_size, |t| t.vocab_size());
        let id = self
            .decoder
            .sample(&mut self.sampler, &self.history, vocab)?;
        self.history.push(id);
        self.produced += 1;
        let text = match self.text_decoder.as_mut() {
            Some(d) => d.push(id)?,
            None => String::new(),
        };
        self.text.push_str(&text);
        if Some(id) == self.opts.stop_token {
            self.stop = Some(StopReason::StopToken);
        } else if self
            .opts
            .stop_strings
            .iter()
            .any(|s| !s.is_empty() && self.text.contains(s.as_str()))
        {
            self.stop = Some(StopReason::StopString);
        } else if self.produced >= self.opts.max_new_tokens {
            self.stop = Some(StopReason::MaxTokens);
        } else {
            self.decoder.append(&[id])?;
        }
        Ok(Generated { id, text })
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<Generated>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stop.is_some() || self.opts.max_new_tokens == 0 {
            return None;
        }
        let r = self.step();
        if r.is_err() {
            self.stop = Some(StopReason::MaxTokens);
        }
        Some(r)
    }
}
