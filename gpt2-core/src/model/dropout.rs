//! Dropout in training: which counters of the counter-based random stream
//! ([`gpt2_kernels::rng`]) each dropout site of a forward pass uses.
//!
//! GPT-2 has three kinds of site (Hugging Face's names): `embd_pdrop` on the embeddings,
//! `attn_pdrop` on every layer's attention probabilities, `resid_pdrop` on every
//! residual branch (attention and MLP output). A forward pass numbered `pass` uses the
//! counters `pass·span .. (pass + 1)·span`, split into consecutive ranges, one per site:
//!
//! ```text
//! embd (N·C) | layer 0: attn (B·NH·T·T), attn branch (N·C), mlp branch (N·C) | layer 1 ...
//! ```
//!
//! So no two sites or passes share a mask, the backward regenerates each mask from
//! `(seed, offset)`, and a run resumed at pass `k` draws exactly the masks an
//! uninterrupted run would.

use gpt2_kernels::cpu::attention;

use super::config::Config;

/// The dropout of one training forward pass (or none: see [`Dropout::is_active`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Probability on the embeddings.
    pub embd: f32,
    /// Probability on the attention probabilities.
    pub attn: f32,
    /// Probability on each residual branch.
    pub resid: f32,
    /// The random stream.
    pub seed: u64,
    /// The number of this forward pass (e.g. the count of micro-batches so far); each
    /// pass has its own range of counters.
    pub pass: u64,
}

impl Dropout {
    /// No dropout (evaluation, or `p = 0` fine-tuning).
    pub const OFF: Dropout = Dropout {
        embd: 0.0,
        attn: 0.0,
        resid: 0.0,
        seed: 0,
        pass: 0,
    };

    /// One probability for all three kinds of site (the trainer's `--dropout`).
    pub fn uniform(p: f32, seed: u64, pass: u64) -> Dropout {
        Dropout {
            embd: p,
            attn: p,
            resid: p,
            seed,
            pass,
        }
    }

    /// The config's own probabilities (`embd_pdrop`, `attn_pdrop`, `resid_pdrop`).
    pub fn from_config(cfg: &Config, seed: u64, pass: u64) -> Dropout {
        Dropout {
            embd: cfg.embd_pdrop,
            attn: cfg.attn_pdrop,
            resid: cfg.resid_pdrop,
            seed,
            pass,
        }
    }

    /// Whether any site drops anything.
    pub fn is_active(&self) -> bool {
        self.embd > 0.0 || self.attn > 0.0 || self.resid > 0.0
    }

    /// The counter range of every site for a (B, T) batch of a model with `cfg`'s sizes.
    pub(crate) fn sites(&self, cfg: &Config, b: usize, t: usize) -> Sites {
        let (n, c) = ((b * t) as u64, cfg.n_embd as u64);
        let attn_len = (b * cfg.n_head * t * t) as u64;
        let span = n * c + cfg.n_layer as u64 * (attn_len + 2 * n * c);
        let mut next = self.pass.wrapping_mul(span);
        let mut site = |p: f32, len: u64| {
            let offset = next;
            next = next.wrapping_add(len);
            (p > 0.0).then_some(Site {
                p,
                seed: self.seed,
                offset,
            })
        };
        let embd = site(self.embd, n * c);
        let layers = (0..cfg.n_layer)
            .map(|_| LayerSites {
                attn: site(self.attn, attn_len).map(|s| attention::Dropout {
                    p: s.p,
                    seed: s.seed,
                    offset: s.offset,
                }),
                attn_branch: site(self.resid, n * c),
                mlp_branch: site(self.resid, n * c),
            })
            .collect();
        Sites { embd, layers }
    }
}

/// One elementwise dropout site: probability and the first counter of its range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Site {
    pub p: f32,
    pub seed: u64,
    pub offset: u64,
}

/// The sites of one block (`None` where the probability is 0).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerSites {
    pub attn: Option<attention::Dropout>,
    pub attn_branch: Option<Site>,
    pub mlp_branch: Option<Site>,
}

/// Every site of one forward pass.
#[derive(Debug, Clone)]
pub(crate) struct Sites {
    pub embd: Option<Site>,
    pub layers: Vec<LayerSites>,
}
