//! Writing a vocabulary as Hugging Face files: `vocab.json` + `merges.txt`, and the
//! single-file `tokenizer.json`. Both read back, here and in Hugging Face's `tokenizers`,
//! to the same encoding.

use std::fmt::Write as _;
use std::path::Path;

use crate::bytelevel;
use crate::error::{Result, TokenizerError};
use crate::tokenizer::Tokenizer;

/// A JSON string literal.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

impl Tokenizer {
    /// How token `id` is written in vocabulary files: special tokens as their text,
    /// others in GPT-2's byte-level alphabet (`" the"` → `"Ġthe"`).
    fn file_token(&self, id: u32) -> String {
        let bytes = self
            .vocab
            .token(id)
            .expect("ids below vocab_size are tokens");
        if self.is_special(id) {
            String::from_utf8(bytes.to_vec()).expect("special tokens are UTF-8")
        } else {
            bytelevel::encode(bytes)
        }
    }

    /// `vocab.json`: `{"token": id, ...}` in id order, one entry per line.
    fn vocab_json(&self) -> String {
        let mut out = String::from("{\n");
        for id in 0..self.vocab_size() as u32 {
            let sep = if id as usize + 1 < self.vocab_size() {
                ","
            } else {
                ""
            };
            writeln!(out, "  {}: {id}{sep}", quoted(&self.file_token(id)))
                .expect("writing to a String");
        }
        out + "}\n"
    }

    /// The merges as `(left, right)` in the file spelling, by priority.
    fn file_merges(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.vocab
            .merge_list
            .iter()
            .map(|&(l, r)| (self.file_token(l), self.file_token(r)))
    }

    /// `merges.txt`: a `#version: 0.2` line, then `left right` per line.
    fn merges_txt(&self) -> String {
        let mut out = String::from("#version: 0.2\n");
        for (l, r) in self.file_merges() {
            writeln!(out, "{l} {r}").expect("writing to a String");
        }
        out
    }

    /// `tokenizer.json` for Hugging Face's `tokenizers`: BPE model, GPT-2's ByteLevel
    /// pre-tokenizer and decoder, special tokens as added tokens.
    fn tokenizer_json(&self) -> String {
        let added: Vec<String> = self
            .special_tokens()
            .iter()
            .map(|&(text, id)| {
                format!(
                    "    {{\"id\": {id}, \"content\": {}, \"single_word\": false, \"lstrip\": false, \
                     \"rstrip\": false, \"normalized\": false, \"special\": true}}",
                    quoted(text)
                )
            })
            .collect();
        let merges: Vec<String> = self
            .file_merges()
            .map(|(l, r)| format!("      {}", quoted(&format!("{l} {r}"))))
            .collect();
        let vocab = self.vocab_json().replace('\n', "\n    ");
        let byte_level = r#"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}"#;
        format!(
            "{{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \
             \"added_tokens\": [\n{}\n  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": {byte_level},\n  \
             \"post_processor\": null,\n  \"decoder\": {byte_level},\n  \"model\": {{\n    \"type\": \"BPE\",\n    \
             \"dropout\": null,\n    \"unk_token\": null,\n    \"continuing_subword_prefix\": null,\n    \
             \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \
             \"ignore_merges\": false,\n    \"vocab\": {},\n    \"merges\": [\n{}\n    ]\n  }}\n}}\n",
            added.join(",\n"),
            vocab.trim_end(),
            merges.join(",\n"),
        )
    }

    /// Writes `vocab.json`, `merges.txt` and `tokenizer.json` into `dir` (created if
    /// needed). [`Tokenizer::from_dir`] reads them back to the same tokenizer.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| TokenizerError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for (name, content) in [
            ("vocab.json", self.vocab_json()),
            ("merges.txt", self.merges_txt()),
            ("tokenizer.json", self.tokenizer_json()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, content).map_err(io(&path))?;
        }
        Ok(())
    }
}
