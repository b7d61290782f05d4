//! Training a byte-level BPE vocabulary: [`Tokenizer::train`].
//!
//! The classic algorithm (Sennrich et al.; minbpe; Hugging Face's `BpeTrainer`) on GPT-2's
//! pre-tokenisation: count the distinct pieces of the corpus, then repeatedly merge the most
//! frequent adjacent pair of tokens inside pieces into a new token. Pair counts are kept
//! up to date incrementally: a merge only changes the pieces that contain its pair (found
//! through an index), and their pair counts are recounted before and after.
//!
//! Deterministic: ties between equally frequent pairs go to the smaller `(left, right)`
//! id pair, and nothing depends on hash order. A pair whose concatenation is already a
//! token (reachable by another pair) is skipped, so every token has exactly one merge and
//! encoding a training piece reproduces the training segmentation.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::bytelevel::{self, BYTE_ORDER};
use crate::error::{Result, TokenizerError};
use crate::pretokenize::Pieces;
use crate::special::SpecialMatcher;
use crate::tokenizer::Tokenizer;
use crate::vocab::{Parts, Vocab};

type Pair = (u32, u32);

fn training_error(msg: impl Into<String>) -> TokenizerError {
    TokenizerError::Training(msg.into())
}

/// Checks the requested special tokens: non-empty, distinct, not a single byte, and written
/// in `vocab.json` unambiguously (their text must not read back as other bytes through the
/// byte-level alphabet, e.g. `"Ġ"` would).
fn check_specials(special_tokens: &[&str]) -> Result<()> {
    for (i, &s) in special_tokens.iter().enumerate() {
        if s.len() < 2 {
            return Err(training_error(format!(
                "special token {s:?} must be at least two bytes"
            )));
        }
        if special_tokens[..i].contains(&s) {
            return Err(training_error(format!("special token {s:?} given twice")));
        }
        if bytelevel::decode(s).is_some_and(|b| b != s.as_bytes()) {
            return Err(training_error(format!(
                "special token {s:?} uses characters of the byte-level alphabet (U+00A1..U+0143) \
                 and would read back differently from vocab.json"
            )));
        }
    }
    Ok(())
}

/// The distinct pre-tokenised pieces of `texts` and their counts, sorted by bytes.
/// Special-token strings separate pieces and are not counted.
fn count_pieces<I, S>(texts: I, specials: &SpecialMatcher) -> Vec<(Vec<u8>, u64)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut counts: FxHashMap<Box<[u8]>, u64> = FxHashMap::default();
    let mut count = |segment: &str| {
        for piece in Pieces::new(segment) {
            match counts.get_mut(piece.as_bytes()) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(piece.as_bytes().into(), 1);
                }
            }
        }
    };
    for text in texts {
        let text = text.as_ref();
        let mut pos = 0;
        for m in specials.find_iter(text) {
            count(&text[pos..m.start]);
            pos = m.end;
        }
        count(&text[pos..]);
    }
    let mut pieces: Vec<(Vec<u8>, u64)> =
        counts.into_iter().map(|(k, v)| (k.into_vec(), v)).collect();
    pieces.sort_unstable();
    pieces
}

/// Adds `sign × count` for every adjacent pair of `word` to `deltas`.
fn add_pairs(word: &[u32], count: i64, deltas: &mut FxHashMap<Pair, i64>) {
    for w in word.windows(2) {
        *deltas.entry((w[0], w[1])).or_default() += count;
    }
}

/// Replaces every occurrence of `pair` in `word`, left to right, by `id`.
fn apply_merge(word: &mut Vec<u32>, pair: Pair, id: u32) {
    let mut out = 0;
    let mut i = 0;
    while i < word.len() {
        if i + 1 < word.len() && (word[i], word[i + 1]) == pair {
            word[out] = id;
            i += 2;
        } else {
            word[out] = word[i];
            i += 1;
        }
        out += 1;
    }
    word.truncate(out);
}

impl Tokenizer {
    /// Learns a byte-level BPE vocabulary of `vocab_size` tokens from `texts`: the 256
    /// bytes (ids 0..256, in GPT-2's order), then merges of the most frequent pairs within
    /// GPT-2's pre-tokenised pieces, then `special_tokens` (the last ids). Occurrences of
    /// special tokens in the texts separate pieces and are not learnt from.
    ///
    /// Deterministic for the same inputs. [`Tokenizer::save`] writes the result for
    /// Hugging Face's `tokenizers` too.
    ///
    /// Errors if `vocab_size` cannot hold the bytes and special tokens, if a special token
    /// is invalid, or if the corpus runs out of pairs before `vocab_size` is reached.
    ///
    /// ```
    /// use gpt2_tokenizer::Tokenizer;
    /// let text = "low lower lowest low low newer newest";
    /// let tok = Tokenizer::train([text], 262, &["<|endoftext|>"]).unwrap();
    /// assert_eq!(tok.vocab_size(), 262);
    /// assert_eq!(tok.encode(" low").len(), 1);
    /// assert_eq!(tok.eot_id(), Some(261));
    /// ```
    pub fn train<I, S>(texts: I, vocab_size: usize, special_tokens: &[&str]) -> Result<Tokenizer>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        check_specials(special_tokens)?;
        let n_learnt = vocab_size
            .checked_sub(special_tokens.len())
            .filter(|&n| n >= 256)
            .ok_or_else(|| {
                training_error(format!(
                    "vocab_size {vocab_size} cannot hold the 256 byte tokens and {} special tokens",
                    special_tokens.len()
                ))
            })?;
        if vocab_size > u32::MAX as usize {
            return Err(training_error(format!(
                "vocab_size {vocab_size} does not fit token ids (u32)"
            )));
        }

        // Token bytes by id, starting with the 256 bytes in GPT-2's order.
        let mut tokens: Vec<Vec<u8>> = BYTE_ORDER.iter().map(|&b| vec![b]).collect();
        let mut id_of_byte = [0u32; 256];
        for (id, &b) in BYTE_ORDER.iter().enumerate() {
            id_of_byte[b as usize] = id as u32;
        }
        let mut known: FxHashSet<Vec<u8>> = tokens.iter().cloned().collect();

        // Distinct pieces as token sequences, with counts.
        let pieces = count_pieces(texts, &SpecialMatcher::from_texts(special_tokens));
        let mut words: Vec<Vec<u32>> = pieces
            .iter()
            .map(|(p, _)| p.iter().map(|&b| id_of_byte[b as usize]).collect())
            .collect();
        let counts: Vec<i64> = pieces.iter().map(|&(_, c)| c as i64).collect();

        // Pair counts, the words each pair occurs in, and a max-heap of (count, pair).
        let mut pair_counts: FxHashMap<Pair, i64> = FxHashMap::default();
        let mut where_: FxHashMap<Pair, Vec<usize>> = FxHashMap::default();
        for (w, word) in words.iter().enumerate() {
            add_pairs(word, counts[w], &mut pair_counts);
            for p in word.windows(2) {
                where_.entry((p[0], p[1])).or_default().push(w);
            }
        }
        let mut heap: BinaryHeap<(i64, Reverse<Pair>)> =
            pair_counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();

        let mut merges: Vec<Pair> = Vec::with_capacity(n_learnt - 256);
        let mut deltas: FxHashMap<Pair, i64> = FxHashMap::default();
        while tokens.len() < n_learnt {
            let Some((count, Reverse(pair))) = heap.pop() else {
                return Err(training_error(format!(
                    "the corpus yields only {} tokens before running out of pairs; vocab_size {vocab_size} \
                     needs {n_learnt} (plus {} special)",
                    tokens.len(),
                    special_tokens.len()
                )));
            };
            // Stale entry: the count has changed since it was pushed (a fresh entry exists
            // if the pair is still present).
            if pair_counts.get(&pair) != Some(&count) {
                continue;
            }
            pair_counts.remove(&pair);
            let bytes = [tokens[pair.0 as usize].as_slice(), &tokens[pair.1 as usize]].concat();
            if !known.insert(bytes.clone()) {
                continue; // already a token, made by another pair
            }
            let id = tokens.len() as u32;
            tokens.push(bytes);
            merges.push(pair);

            // Recount the pairs of every word containing `pair`, before and after.
            let mut affected = where_.remove(&pair).unwrap_or_default();
            affected.sort_unstable();
            affected.dedup();
            deltas.clear();
            for &w in &affected {
                add_pairs(&words[w], -counts[w], &mut deltas);
                apply_merge(&mut words[w], pair, id);
                add_pairs(&words[w], counts[w], &mut deltas);
                for p in words[w].windows(2) {
                    if p[0] == id || p[1] == id {
                        where_.entry((p[0], p[1])).or_default().push(w);
                    }
                }
            }
            let mut changed: Vec<(Pair, i64)> = deltas
                .iter()
                .filter(|&(_, &d)| d != 0)
                .map(|(&p, &d)| (p, d))
                .collect();
            changed.sort_unstable();
            for (p, d) in changed {
                let c = pair_counts.entry(p).or_default();
                *c += d;
                if *c > 0 {
                    heap.push((*c, Reverse(p)));
                } else {
                    pair_counts.remove(&p);
                }
            }
        }

        tokens.extend(special_tokens.iter().map(|s| s.as_bytes().to_vec()));
        // Consistent by construction: distinct bytes (learnt tokens come from text with the
        // special tokens cut out, so none equals one), every byte, one merge per token.
        let vocab = Vocab::new(Parts {
            tokens,
            merges,
            added: Vec::new(),
        })
        .unwrap_or_else(|issue| {
            unreachable!("training made an inconsistent vocabulary: {issue:?}")
        });
        Ok(Tokenizer::from_vocab(vocab))
    }
}
