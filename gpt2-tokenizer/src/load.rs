//! Reading vocabulary files: the JSON vocabulary + merges text of OpenAI (`encoder.json` +
//! `vocab.bpe`) and Hugging Face (`vocab.json` + `merges.txt`), which share one format, and
//! Hugging Face's single-file `tokenizer.json` for byte-level BPE models.
//!
//! Token strings in these files are written with GPT-2's byte-level alphabet
//! ([`crate::bytelevel`]); an entry that is not (an added token such as `<|im_start|>` with
//! a raw space, say) is taken as its UTF-8 text. Every error names the file and the line
//! or entry at fault.

use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::bytelevel;
use crate::error::{Result, TokenizerError};
use crate::vocab::{Issue, Parts, Vocab};

/// A JSON object `token -> id`, entries in file order (duplicates kept, to be reported).
struct Entries(Vec<(String, u32)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object mapping token strings to ids")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, u32>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}

fn json<'a, T: Deserialize<'a>>(text: &'a str, file: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|source| TokenizerError::Json {
        file: file.to_owned(),
        source,
    })
}

fn malformed(file: &str, at: impl Into<String>, msg: impl Into<String>) -> TokenizerError {
    TokenizerError::Malformed {
        file: file.to_owned(),
        at: at.into(),
        msg: msg.into(),
    }
}

/// Where merge number `rank` is in its file, for error messages.
enum MergeLocation {
    /// merges.txt / vocab.bpe: line numbers, the first merge being on line `first_line`.
    Lines { first_line: Vec<usize> },
    /// tokenizer.json: `model.merges[rank]`.
    Array,
}

impl MergeLocation {
    fn at(&self, rank: usize) -> String {
        match self {
            MergeLocation::Lines { first_line } => format!("line {}", first_line[rank]),
            MergeLocation::Array => format!("model.merges[{rank}]"),
        }
    }
}

/// A vocabulary as read from its files, before validation.
struct Raw<'a> {
    vocab_file: &'a str,
    entries: Vec<(String, u32)>,
    /// Added tokens `(content, id)` (tokenizer.json only).
    added: Vec<(String, u32)>,
    merges_file: &'a str,
    merges: Vec<(&'a str, &'a str)>,
    locations: MergeLocation,
}

/// Parses a vocabulary JSON (`encoder.json`, `vocab.json`) and a merges text (`vocab.bpe`,
/// `merges.txt`); the file names are used in error messages.
pub(crate) fn vocab_merges(
    vocab_json: &str,
    vocab_file: &str,
    merges_txt: &str,
    merges_file: &str,
) -> Result<Vocab> {
    let Entries(entries) = json(vocab_json, vocab_file)?;
    let mut merges = Vec::new();
    let mut lines = Vec::new();
    for (i, line) in merges_txt.lines().enumerate() {
        if i == 0 && line.starts_with("#version") {
            continue;
        }
        let (left, right) = split_merge(line).ok_or_else(|| {
            malformed(
                merges_file,
                format!("line {}", i + 1),
                format!("expected two tokens separated by one space, found {line:?}"),
            )
        })?;
        merges.push((left, right));
        lines.push(i + 1);
    }
    resolve(Raw {
        vocab_file,
        entries,
        added: Vec::new(),
        merges_file,
        merges,
        locations: MergeLocation::Lines { first_line: lines },
    })
}

/// `"left right"`: two non-empty tokens separated by one space.
fn split_merge(line: &str) -> Option<(&str, &str)> {
    line.split_once(' ')
        .filter(|(l, r)| !l.is_empty() && !r.is_empty() && !r.contains(' '))
}

/// tokenizer.json, reduced to what a byte-level BPE model may contain.
#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    #[serde(default)]
    normalizer: Option<serde_json::Value>,
    #[serde(default)]
    pre_tokenizer: Option<serde_json::Value>,
    model: ModelJson,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    vocab: Entries,
    merges: Vec<MergeJson>,
    #[serde(default)]
    dropout: Option<f64>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
    #[serde(default)]
    end_of_word_suffix: Option<String>,
    #[serde(default)]
    byte_fallback: bool,
    #[serde(default)]
    ignore_merges: bool,
}

/// A merge in tokenizer.json: `"a b"` (older files) or `["a", "b"]` (tokenizers ≥ 0.20).
#[derive(Deserialize)]
#[serde(untagged)]
enum MergeJson {
    Joined(String),
    Pair([String; 2]),
}

/// Parses a Hugging Face tokenizer.json; it must describe GPT-2-style byte-level BPE (any
/// other normaliser, pre-tokeniser or BPE option would change the encoding, so it is an
/// error rather than silently ignored).
pub(crate) fn tokenizer_json(text: &str, file: &str) -> Result<Vocab> {
    let tj: TokenizerJson = json(text, file)?;
    let unsupported = |at: &str, what: String| {
        malformed(
            file,
            at,
            format!("{what}: only GPT-2-style byte-level BPE is supported"),
        )
    };
    let m = &tj.model;
    if let Some(kind) = m.kind.as_deref().filter(|&k| k != "BPE") {
        return Err(unsupported("model.type", format!("model type {kind:?}")));
    }
    for (set, name) in [
        (m.dropout.is_some(), "model.dropout"),
        // transformers writes "" for these two when unset.
        (
            m.continuing_subword_prefix
                .as_deref()
                .is_some_and(|p| !p.is_empty()),
            "model.continuing_subword_prefix",
        ),
        (
            m.end_of_word_suffix
                .as_deref()
                .is_some_and(|s| !s.is_empty()),
            "model.end_of_word_suffix",
        ),
        (m.byte_fallback, "model.byte_fallback"),
        (m.ignore_merges, "model.ignore_merges"),
    ] {
        if set {
            return Err(unsupported(name, "option set".into()));
        }
    }
    if tj.normalizer.as_ref().is_some_and(|n| !n.is_null()) {
        return Err(unsupported("normalizer", "a normalizer is set".into()));
    }
    check_byte_level(tj.pre_tokenizer.as_ref())
        .map_err(|what| unsupported("pre_tokenizer", what))?;

    let mut joined = Vec::with_capacity(tj.model.merges.len());
    for (i, merge) in tj.model.merges.iter().enumerate() {
        joined.push(match merge {
            MergeJson::Pair([l, r]) => (l.as_str(), r.as_str()),
            MergeJson::Joined(s) => split_merge(s).ok_or_else(|| {
                malformed(
                    file,
                    format!("model.merges[{i}]"),
                    format!("expected two tokens separated by one space, found {s:?}"),
                )
            })?,
        });
    }
    let added = tj
        .added_tokens
        .into_iter()
        .map(|a| (a.content, a.id))
        .collect();
    resolve(Raw {
        vocab_file: file,
        entries: tj.model.vocab.0,
        added,
        merges_file: file,
        merges: joined,
        locations: MergeLocation::Array,
    })
}

/// Accepts only GPT-2's pre-tokeniser: `ByteLevel` with `add_prefix_space: false` and the
/// regex on.
fn check_byte_level(pre: Option<&serde_json::Value>) -> std::result::Result<(), String> {
    let pre = pre.filter(|v| !v.is_null()).ok_or("no pre-tokenizer")?;
    let field = |name: &str| pre.get(name).and_then(serde_json::Value::as_bool);
    match pre.get("type").and_then(serde_json::Value::as_str) {
        Some("ByteLevel") => {}
        other => return Err(format!("pre-tokenizer type {other:?}")),
    }
    if field("add_prefix_space") != Some(false) {
        return Err("ByteLevel without add_prefix_space: false".into());
    }
    if field("use_regex") == Some(false) {
        return Err("ByteLevel with use_regex: false".into());
    }
    Ok(())
}

/// A token as read: its id, its name in the file, its bytes, and for an added token its
/// index in `added_tokens`.
struct Token<'a> {
    id: u32,
    name: &'a str,
    bytes: Vec<u8>,
    added: Option<usize>,
}

impl Token<'_> {
    /// Where the token is in its file, for error messages.
    fn at(&self) -> String {
        match self.added {
            Some(i) => format!("added_tokens[{i}]"),
            None => format!("entry {:?}", self.name),
        }
    }
}

/// Checks ids and merges and builds the vocabulary.
fn resolve(raw: Raw<'_>) -> Result<Vocab> {
    let Raw {
        vocab_file,
        entries,
        added,
        merges_file,
        merges,
        locations,
    } = raw;
    let entry_tokens = entries.iter().map(|(name, id)| Token {
        id: *id,
        name,
        bytes: bytelevel::decode(name).unwrap_or_else(|| name.as_bytes().to_vec()),
        added: None,
    });
    let added_tokens = added.iter().enumerate().map(|(i, (content, id))| Token {
        id: *id,
        name: content,
        bytes: content.as_bytes().to_vec(),
        added: Some(i),
    });

    // Ids must be exactly 0..n. An added token may repeat a vocabulary entry (same id,
    // same bytes); any other repeated id is an error.
    let mut by_id: FxHashMap<u32, Token> = FxHashMap::default();
    for t in entry_tokens.chain(added_tokens) {
        if let Some(first) = by_id.get(&t.id) {
            if t.added.is_some() && first.bytes == t.bytes {
                continue;
            }
            let msg = format!("id {} already belongs to {:?}", t.id, first.name);
            return Err(malformed(vocab_file, t.at(), msg));
        }
        by_id.insert(t.id, t);
    }
    let n = by_id.len();
    let mut tokens: Vec<Option<Token>> = (0..n).map(|_| None).collect();
    for (id, t) in by_id {
        let Some(slot) = tokens.get_mut(id as usize) else {
            let msg = format!("id {id} out of range: the {n} tokens must have ids 0..{n}");
            return Err(malformed(vocab_file, t.at(), msg));
        };
        *slot = Some(t);
    }
    let tokens: Vec<Token> = tokens
        .into_iter()
        .map(|t| t.expect("n distinct ids below n"))
        .collect();

    let id_of_name: FxHashMap<&str, u32> = tokens.iter().map(|t| (t.name, t.id)).collect();
    let mut pairs = Vec::with_capacity(merges.len());
    for (rank, &(left, right)) in merges.iter().enumerate() {
        let side = |s: &str| {
            id_of_name.get(s).copied().ok_or_else(|| {
                let msg = format!("token {s:?} is not in {vocab_file}");
                malformed(merges_file, locations.at(rank), msg)
            })
        };
        pairs.push((side(left)?, side(right)?));
    }

    let parts = Parts {
        tokens: tokens.iter().map(|t| t.bytes.clone()).collect(),
        merges: pairs,
        added: added.iter().map(|a| a.1).collect(),
    };
    Vocab::new(parts).map_err(|issue| match issue {
        Issue::DuplicateBytes { id, first } => {
            let msg = format!("same bytes as {:?}", tokens[first as usize].name);
            malformed(vocab_file, tokens[id as usize].at(), msg)
        }
        Issue::MissingByte(b) => {
            let msg = format!(
                "no token for this byte (written {:?})",
                bytelevel::BYTE_TO_CHAR[b as usize]
            );
            malformed(vocab_file, format!("byte 0x{b:02X}"), msg)
        }
        Issue::DuplicateMerge { rank, first } => {
            let msg = format!("repeats the merge at {}", locations.at(first));
            malformed(merges_file, locations.at(rank), msg)
        }
        Issue::MergeSide { rank } => {
            malformed(merges_file, locations.at(rank), "merge of an unknown token")
        }
        Issue::MergeResult { rank } => {
            let (l, r) = merges[rank];
            let msg = format!("merged token \"{l}{r}\" is not in {vocab_file}");
            malformed(merges_file, locations.at(rank), msg)
        }
    })
}
