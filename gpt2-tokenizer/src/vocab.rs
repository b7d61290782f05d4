//! The vocabulary: token bytes by id, the merge rules, the special tokens, and the lookup
//! tables encoding needs. Built from [`Parts`] by the file loaders and by training.

use rustc_hash::FxHashMap;

use crate::bpe::{self, Merge, MergeTable};

/// What a vocabulary is made of, before validation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parts {
    /// The bytes of token `id` at index `id`.
    pub(crate) tokens: Vec<Vec<u8>>,
    /// The merge rules `(left, right)` in priority order; each merges into the token whose
    /// bytes are the concatenation.
    pub(crate) merges: Vec<(u32, u32)>,
    /// Tokens declared special by the file (tokenizer.json's `added_tokens`), on top of
    /// those recognised as special by [`Vocab::new`].
    pub(crate) added: Vec<u32>,
}

/// Why [`Parts`] do not make a vocabulary; the loaders turn these into errors that name
/// the file and entry or line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Issue {
    /// Token `id` has the same bytes as the earlier token `first`.
    DuplicateBytes { id: u32, first: u32 },
    /// No token is this single byte.
    MissingByte(u8),
    /// Merge number `rank` repeats the pair of merge number `first`.
    DuplicateMerge { rank: usize, first: usize },
    /// Merge number `rank` has a side that is not a token id.
    MergeSide { rank: usize },
    /// The concatenation of merge number `rank`'s two tokens is not a token.
    MergeResult { rank: usize },
}

/// A validated vocabulary.
#[derive(Debug)]
pub(crate) struct Vocab {
    /// All token bytes, concatenated; token `id` is `bytes[offsets[id]..offsets[id + 1]]`.
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    /// Every token (special ones included) by its bytes.
    by_bytes: FxHashMap<Box<[u8]>, u32>,
    /// Ordinary tokens that BPE produces from their own bytes: a piece equal to one of
    /// these encodes to it without merging (tiktoken's shortcut, made safe by checking).
    /// Split by length: up to 15 bytes (nearly every piece) keyed by [`short_key`], which
    /// hashes and compares as one integer.
    whole_short: FxHashMap<u128, u32>,
    whole_long: FxHashMap<Box<[u8]>, u32>,
    /// The token of each single byte.
    pub(crate) byte_ids: [u32; 256],
    pub(crate) merges: MergeTable,
    /// The merge rules `(left, right)` in rank order, as given.
    pub(crate) merge_list: Vec<(u32, u32)>,
    /// Special tokens, by increasing id; their bytes are valid UTF-8.
    pub(crate) specials: Vec<u32>,
}

impl Vocab {
    /// Validates `parts` and builds the lookup tables.
    ///
    /// Special tokens are the tokens that are neither a single byte nor produced by a merge
    /// (GPT-2's `<|endoftext|>`, the tokens training appends), plus `parts.added`, if their
    /// bytes are non-empty UTF-8 text.
    pub(crate) fn new(parts: Parts) -> Result<Vocab, Issue> {
        let Parts {
            tokens,
            merges: merge_list,
            added,
        } = parts;
        let mut bytes = Vec::with_capacity(tokens.iter().map(Vec::len).sum());
        let mut offsets = Vec::with_capacity(tokens.len() + 1);
        offsets.push(0);
        let mut by_bytes = FxHashMap::default();
        by_bytes.reserve(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            let id = id as u32;
            if let Some(&first) = by_bytes.get(token.as_slice()) {
                return Err(Issue::DuplicateBytes { id, first });
            }
            by_bytes.insert(token.clone().into_boxed_slice(), id);
            bytes.extend_from_slice(token);
            offsets.push(bytes.len());
        }
        let mut byte_ids = [0u32; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = *by_bytes
                .get([b as u8].as_slice())
                .ok_or(Issue::MissingByte(b as u8))?;
        }

        let mut merges = MergeTable::default();
        let mut produced = vec![false; tokens.len()];
        let mut joined = Vec::new();
        for (rank, &(left, right)) in merge_list.iter().enumerate() {
            let (Some(l), Some(r)) = (tokens.get(left as usize), tokens.get(right as usize)) else {
                return Err(Issue::MergeSide { rank });
            };
            joined.clear();
            joined.extend_from_slice(l);
            joined.extend_from_slice(r);
            let id = *by_bytes
                .get(joined.as_slice())
                .ok_or(Issue::MergeResult { rank })?;
            merges
                .push(left, right, id)
                .map_err(|first| Issue::DuplicateMerge {
                    rank,
                    first: first as usize,
                })?;
            produced[id as usize] = true;
        }
        for &b in &byte_ids {
            produced[b as usize] = true;
        }

        // Special tokens must be non-empty text to be found in text.
        let mut specials: Vec<u32> = (0..tokens.len() as u32)
            .filter(|&id| !produced[id as usize])
            .chain(added.into_iter().filter(|&id| (id as usize) < tokens.len()))
            .filter(|&id| std::str::from_utf8(&tokens[id as usize]).is_ok_and(|s| !s.is_empty()))
            .collect();
        specials.sort_unstable();
        specials.dedup();

        let mut vocab = Vocab {
            bytes,
            offsets,
            by_bytes,
            whole_short: FxHashMap::default(),
            whole_long: FxHashMap::default(),
            byte_ids,
            merges,
            merge_list,
            specials,
        };
        let mut scratch = Scratch::default();
        for (id, token) in tokens.into_iter().enumerate() {
            let id = id as u32;
            if produced[id as usize] && vocab.merge_bytes(&token, &mut scratch) == [id] {
                match short_key(&token) {
                    Some(key) => vocab.whole_short.insert(key, id),
                    None => vocab.whole_long.insert(token.into_boxed_slice(), id),
                };
            }
        }
        Ok(vocab)
    }

    /// Number of tokens; ids are `0..len()`.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The bytes of token `id`, if it exists.
    #[inline]
    pub(crate) fn token(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        let (&start, &end) = (self.offsets.get(i)?, self.offsets.get(i + 1)?);
        Some(&self.bytes[start..end])
    }

    /// The token whose bytes are `bytes`, special or not.
    pub(crate) fn id_of(&self, bytes: &[u8]) -> Option<u32> {
        self.by_bytes.get(bytes).copied()
    }

    /// Whether `id` is a special token.
    pub(crate) fn is_special(&self, id: u32) -> bool {
        self.specials.binary_search(&id).is_ok()
    }

    /// BPE-encodes one pre-tokenised piece, appending its tokens to `out`.
    #[inline]
    pub(crate) fn encode_piece(&self, piece: &[u8], scratch: &mut Scratch, out: &mut Vec<u32>) {
        let key = short_key(piece);
        let whole = match key {
            Some(key) => self.whole_short.get(&key),
            None => self.whole_long.get(piece),
        };
        if let Some(&id) = whole {
            out.push(id);
            return;
        }
        if let Some(&(start, len)) = key.and_then(|k| scratch.cache.get(&k)) {
            out.extend_from_slice(&scratch.cached[start as usize..(start + len) as usize]);
            return;
        }
        let ids = self.merge_bytes(piece, scratch);
        out.extend_from_slice(ids);
        if let Some(key) = key {
            scratch.remember(key);
        }
    }

    /// Runs the merges on `piece` from its single bytes, in `scratch.ids`.
    fn merge_bytes<'s>(&self, piece: &[u8], scratch: &'s mut Scratch) -> &'s [u32] {
        scratch.ids.clear();
        scratch
            .ids
            .extend(piece.iter().map(|&b| self.byte_ids[b as usize]));
        bpe::merge(&self.merges, &mut scratch.ids, &mut scratch.rules);
        &scratch.ids
    }
}

/// A piece of at most 15 bytes as one integer: its bytes, little-endian, then its length in
/// the top byte (so `"a"` and `"a\0"` differ). `None` for longer pieces.
#[inline]
fn short_key(piece: &[u8]) -> Option<u128> {
    if piece.len() > 15 {
        return None;
    }
    let mut buf = [0u8; 16];
    buf[..piece.len()].copy_from_slice(piece);
    buf[15] = piece.len() as u8;
    Some(u128::from_le_bytes(buf))
}

/// Buffers reused across the pieces of one text, and a cache of the short pieces that
/// needed merging (in English a few thousand distinct words account for most of them).
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    ids: Vec<u32>,
    rules: Vec<Merge>,
    /// Short-piece key → `(start, len)` of its tokens in `cached`.
    cache: FxHashMap<u128, (u32, u32)>,
    cached: Vec<u32>,
}

impl Scratch {
    /// Cache entries before the cache is emptied, bounding its memory.
    const CACHE_CAPACITY: usize = 1 << 16;

    /// Caches `self.ids` as the encoding of the piece with `key`.
    fn remember(&mut self, key: u128) {
        if self.cache.len() >= Self::CACHE_CAPACITY {
            self.cache.clear();
            self.cached.clear();
        }
        let start = self.cached.len() as u32;
        self.cached.extend_from_slice(&self.ids);
        self.cache.insert(key, (start, self.ids.len() as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tokenizer;

    /// Every ordinary GPT-2 token is BPE's own encoding of its bytes, so the whole-piece
    /// shortcut covers them all (and tiktoken, which assumes this, is right to).
    #[test]
    fn every_gpt2_token_encodes_to_itself() {
        let tok = Tokenizer::gpt2();
        let v = &tok.vocab;
        assert_eq!(v.whole_short.len() + v.whole_long.len(), 50256);
        assert_eq!(v.specials, [50256]);
        assert_eq!(v.merge_list.len(), 50000);
    }

    #[test]
    fn short_keys_are_injective() {
        let pieces: [&[u8]; 6] = [b"", b"\0", b"\0\0", b"a", b"a\0", b"0123456789abcde"];
        let keys: rustc_hash::FxHashSet<u128> =
            pieces.iter().map(|p| short_key(p).unwrap()).collect();
        assert_eq!(keys.len(), pieces.len());
        assert_eq!(short_key(b"0123456789abcdef"), None);
    }

    fn parts(tokens: &[&[u8]], merges: &[(u32, u32)]) -> Parts {
        let mut all: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        all.extend(tokens.iter().map(|t| t.to_vec()));
        Parts {
            tokens: all,
            merges: merges.to_vec(),
            added: Vec::new(),
        }
    }

    #[test]
    fn issues_are_reported() {
        let (a, b) = (u32::from(b'a'), u32::from(b'b'));
        assert_eq!(
            Vocab::new(parts(&[b"a"], &[])).unwrap_err(),
            Issue::DuplicateBytes { id: 256, first: a }
        );
        let mut p = parts(&[], &[]);
        p.tokens[7] = b"xy".to_vec();
        assert_eq!(Vocab::new(p).unwrap_err(), Issue::MissingByte(7));
        assert_eq!(
            Vocab::new(parts(&[b"ab"], &[(a, b), (a, b)])).unwrap_err(),
            Issue::DuplicateMerge { rank: 1, first: 0 }
        );
        assert_eq!(
            Vocab::new(parts(&[], &[(a, b)])).unwrap_err(),
            Issue::MergeResult { rank: 0 }
        );
        assert_eq!(
            Vocab::new(parts(&[], &[(a, 999)])).unwrap_err(),
            Issue::MergeSide { rank: 0 }
        );
    }

    /// A token not produced by merges is special if it is text; one BPE cannot reach
    /// from its bytes (here "abc" via a merge of "ab" with "c" that can't fire because
    /// "bc" merges first) is kept out of the whole-piece shortcut.
    #[test]
    fn specials_and_unreachable_tokens() {
        let (a, b, c) = (u32::from(b'a'), u32::from(b'b'), u32::from(b'c'));
        // 256 "bc", 257 "ab", 258 "abc" (= ab + c), 259 "<s>" (special), 260 invalid UTF-8.
        let v = Vocab::new(parts(
            &[b"bc", b"ab", b"abc", b"<s>", b"\xff\xfe"],
            &[(b, c), (a, b), (257, c)],
        ))
        .unwrap();
        assert_eq!(v.specials, [259]);
        let mut out = Vec::new();
        v.encode_piece(b"abc", &mut Scratch::default(), &mut out);
        assert_eq!(out, [a, 256], "BPE gives a + bc, not the token abc");
        out.clear();
        v.encode_piece(b"ab", &mut Scratch::default(), &mut out);
        assert_eq!(out, [257]);
    }
}
