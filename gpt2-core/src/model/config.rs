//! GPT-2's hyper-parameters. The defaults are GPT-2 124M (as nanoGPT's `GPTConfig`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The sizes of a GPT-2 model and its dropout probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// V: vocabulary size (number of real tokens; logits have this many columns).
    pub vocab_size: usize,
    /// maxT: the context length, i.e. rows of the position embedding `wpe`.
    pub n_ctx: usize,
    /// C: channels (embedding width).
    pub n_embd: usize,
    /// L: number of transformer blocks.
    pub n_layer: usize,
    /// NH: attention heads; head size HS = C / NH.
    pub n_head: usize,
    /// Width of the MLP's hidden layer, 4·C in every GPT-2.
    pub n_inner: usize,
    /// Dropout after the embeddings (`embd_pdrop`); only applied in training.
    pub embd_pdrop: f32,
    /// Dropout on the attention probabilities (`attn_pdrop`); only applied in training.
    pub attn_pdrop: f32,
    /// Dropout on each residual branch (`resid_pdrop`); only applied in training.
    pub resid_pdrop: f32,
}

impl Default for Config {
    /// GPT-2 124M ("gpt2"): 12 layers, 12 heads, 768 channels, 1024 positions, 50257 tokens,
    /// dropout 0.1 as in the Hugging Face config.
    fn default() -> Self {
        Config::gpt2_sized(12, 12, 768)
    }
}

/// The head size of every GPT-2 model, used to infer `n_head` when there is no config.json.
pub const GPT2_HEAD_SIZE: usize = 64;

impl Config {
    /// A GPT-2 config with the given depth and width, GPT-2's vocabulary and context.
    pub fn gpt2_sized(n_layer: usize, n_head: usize, n_embd: usize) -> Config {
        Config {
            vocab_size: 50257,
            n_ctx: 1024,
            n_embd,
            n_layer,
            n_head,
            n_inner: 4 * n_embd,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            resid_pdrop: 0.1,
        }
    }

    /// The four released sizes: `"gpt2"` (124M), `"gpt2-medium"` (350M), `"gpt2-large"`
    /// (774M), `"gpt2-xl"` (1558M).
    pub fn named(name: &str) -> Option<Config> {
        Some(match name {
            "gpt2" => Config::gpt2_sized(12, 12, 768),
            "gpt2-medium" => Config::gpt2_sized(24, 16, 1024),
            "gpt2-large" => Config::gpt2_sized(36, 20, 1280),
            "gpt2-xl" => Config::gpt2_sized(48, 25, 1600),
            _ => return None,
        })
    }

    /// HS: the size of one attention head.
    pub fn head_size(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Checks that the sizes can work together.
    pub fn validate(&self) -> Result<()> {
        let nonzero = [
            ("vocab_size", self.vocab_size),
            ("n_ctx", self.n_ctx),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_inner", self.n_inner),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("{name} must be positive")));
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(Error::Config(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            )));
        }
        if self.vocab_size > u32::MAX as usize {
            return Err(Error::Config(format!(
                "vocab_size {} does not fit token ids of 32 bits",
                self.vocab_size
            )));
        }
        for (name, p) in [
            ("embd_pdrop", self.embd_pdrop),
            ("attn_pdrop", self.attn_pdrop),
            ("resid_pdrop", self.resid_pdrop),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::Config(format!("{name} must be in [0, 1), got {p}")));
            }
        }
        Ok(())
    }

    /// The number of parameters (the tied `lm_head` counted once, as in the GPT-2 paper's
    /// 124M).
    pub fn num_params(&self) -> usize {
        let (c, f) = (self.n_embd, self.n_inner);
        let block = 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + 2 * c + (c * f + f) + (f * c + c);
        self.vocab_size * c + self.n_ctx * c + self.n_layer * block + 2 * c
    }

    /// Reads a Hugging Face `config.json` (`GPT2Config`). Settings that this implementation
    /// does not support (another activation, layer-norm epsilon, attention scaling variants,
    /// untied embeddings) are errors, not silently ignored.
    pub fn from_hf_json(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let hf: HfConfig = serde_json::from_str(&text)
            .map_err(|e| Error::format(path, format!("not a GPT-2 config.json: {e}")))?;
        let bad = |msg: String| Error::format(path, msg);
        if let Some(act) = &hf.activation_function
            && !matches!(act.as_str(), "gelu_new" | "gelu_pytorch_tanh")
        {
            return Err(bad(format!(
                "activation_function {act:?} is not supported (GPT-2 uses \"gelu_new\")"
            )));
        }
        if let Some(eps) = hf.layer_norm_epsilon
            && (eps - 1e-5).abs() > 1e-12
        {
            return Err(bad(format!(
                "layer_norm_epsilon {eps} is not supported (GPT-2 uses 1e-5)"
            )));
        }
        for (flag, name) in [
            (
                hf.scale_attn_by_inverse_layer_idx,
                "scale_attn_by_inverse_layer_idx",
            ),
            (hf.reorder_and_upcast_attn, "reorder_and_upcast_attn"),
            (hf.add_cross_attention, "add_cross_attention"),
        ] {
            if flag == Some(true) {
                return Err(bad(format!("{name} = true is not supported")));
            }
        }
        if hf.scale_attn_weights == Some(false) || hf.tie_word_embeddings == Some(false) {
            return Err(bad(
                "scale_attn_weights = false and tie_word_embeddings = false are not supported"
                    .into(),
            ));
        }
        let n_embd = hf.n_embd.unwrap_or(768);
        let cfg = Config {
            vocab_size: hf.vocab_size.unwrap_or(50257),
            n_ctx: hf.n_positions.or(hf.n_ctx).unwrap_or(1024),
            n_embd,
            n_layer: hf.n_layer.unwrap_or(12),
            n_head: hf.n_head.unwrap_or(12),
            n_inner: hf.n_inner.unwrap_or(4 * n_embd),
            embd_pdrop: hf.embd_pdrop.unwrap_or(0.1),
            attn_pdrop: hf.attn_pdrop.unwrap_or(0.1),
            resid_pdrop: hf.resid_pdrop.unwrap_or(0.1),
        };
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }

    /// The `config.json` that Hugging Face's `GPT2LMHeadModel.from_pretrained` reads.
    pub fn to_hf_json(&self) -> String {
        let v = serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "activation_function": "gelu_new",
            "vocab_size": self.vocab_size,
            "n_positions": self.n_ctx,
            "n_ctx": self.n_ctx,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": if self.n_inner == 4 * self.n_embd { serde_json::Value::Null } else { self.n_inner.into() },
            "embd_pdrop": self.embd_pdrop,
            "attn_pdrop": self.attn_pdrop,
            "resid_pdrop": self.resid_pdrop,
            "layer_norm_epsilon": 1e-5,
            "initializer_range": 0.02,
            "scale_attn_weights": true,
            "tie_word_embeddings": true,
            "use_cache": true,
            "bos_token_id": self.vocab_size - 1,
            "eos_token_id": self.vocab_size - 1,
            "torch_dtype": "float32"
        });
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }
}

/// The fields of Hugging Face's `GPT2Config` that matter here (all optional in the file).
#[derive(Deserialize)]
struct HfConfig {
    vocab_size: Option<usize>,
    n_positions: Option<usize>,
    n_ctx: Option<usize>,
    n_embd: Option<usize>,
    n_layer: Option<usize>,
    n_head: Option<usize>,
    n_inner: Option<usize>,
    activation_function: Option<String>,
    layer_norm_epsilon: Option<f64>,
    embd_pdrop: Option<f32>,
    attn_pdrop: Option<f32>,
    resid_pdrop: Option<f32>,
    scale_attn_weights: Option<bool>,
    scale_attn_by_inverse_layer_idx: Option<bool>,
    reorder_and_upcast_attn: Option<bool>,
    add_cross_attention: Option<bool>,
    tie_word_embeddings: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_gpt2_124m() {
        let c = Config::default();
        assert_eq!(
            (c.n_layer, c.n_head, c.n_embd, c.n_ctx, c.vocab_size),
            (12, 12, 768, 1024, 50257)
        );
        assert_eq!(c.num_params(), 124_439_808);
        assert_eq!(
            Config::named("gpt2-xl").unwrap().num_params(),
            1_557_611_200
        );
    }

    #[test]
    fn validate_rejects_indivisible_heads() {
        let c = Config {
            n_head: 7,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn hf_json_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        let mut c = Config::gpt2_sized(2, 3, 96);
        c.vocab_size = 211;
        c.n_ctx = 64;
        std::fs::write(&p, c.to_hf_json()).unwrap();
        assert_eq!(Config::from_hf_json(&p).unwrap(), c);
        std::fs::write(
            &p,
            r#"{"n_embd": 96, "n_head": 3, "activation_function": "relu"}"#,
        )
        .unwrap();
        let e = Config::from_hf_json(&p).unwrap_err().to_string();
        assert!(e.contains("relu") && e.contains("config.json"), "{e}");
        std::fs::write(&p, "{not json").unwrap();
        assert!(Config::from_hf_json(&p).is_err());
    }
}
