//! Byte-pair merging of one pre-tokenised piece.
//!
//! A piece starts as its single-byte tokens; then, repeatedly, the adjacent pair with the
//! lowest merge rank is replaced by the token it merges into, the leftmost one on ties,
//! until no adjacent pair has a merge. This is tiktoken's and Hugging Face's rule, and
//! OpenAI's `encoder.py`, which merges every occurrence of the best pair left to right, is
//! the same thing for vocabularies learnt by BPE, where a merge only creates pairs of
//! higher rank than its own.
//!
//! Two implementations of that one rule: [`merge_small`], the readable reference, rescans
//! the pair ranks after each merge (O(n²) for n bytes, fastest for the short pieces of
//! ordinary text), and [`merge_large`] processes pairs rank by rank from an index (about
//! O(n log n), for long pieces: a megabyte of one letter is one piece). The tests check
//! that they agree.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

/// Pieces longer than this (in bytes) use [`merge_large`].
pub(crate) const SMALL_PIECE: usize = 128;

/// One merge rule: what a pair merges into, and its priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Merge {
    /// Lower merges first: the line of the rule in the merges file.
    pub(crate) rank: u32,
    /// The token the pair becomes.
    pub(crate) id: u32,
}

/// The merge rules, looked up by pair of token ids and by rank.
#[derive(Debug, Clone, Default)]
pub(crate) struct MergeTable {
    rules: FxHashMap<u64, Merge>,
    /// `(left, right, merged id)` of the rule of each rank.
    by_rank: Vec<(u32, u32, u32)>,
}

/// Key of the pair `(left, right)`.
#[inline]
fn key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

impl MergeTable {
    /// Adds the rule `left right -> id` with the next rank (0, 1, ...). A pair that already
    /// has a rule is refused with that rule's rank.
    pub(crate) fn push(&mut self, left: u32, right: u32, id: u32) -> Result<(), u32> {
        let rank = self.by_rank.len() as u32;
        match self.rules.entry(key(left, right)) {
            Entry::Occupied(e) => Err(e.get().rank),
            Entry::Vacant(e) => {
                e.insert(Merge { rank, id });
                self.by_rank.push((left, right, id));
                Ok(())
            }
        }
    }

    /// The rule for the pair `(left, right)`, if any.
    #[inline]
    pub(crate) fn get(&self, left: u32, right: u32) -> Option<Merge> {
        self.rules.get(&key(left, right)).copied()
    }

    /// Number of rules; ranks are `0..len()`.
    fn len(&self) -> usize {
        self.by_rank.len()
    }

    /// `(left, right, merged id)` of the rule of `rank`.
    #[inline]
    fn rule(&self, rank: u32) -> (u32, u32, u32) {
        self.by_rank[rank as usize]
    }
}

/// Pieces up to this many bytes go to [`merge_large`], which numbers positions with u32;
/// a longer piece (4 GiB of one character class) takes the slow path rather than a wrong
/// one.
const MAX_LARGE: usize = (u32::MAX - 1) as usize;

/// Merges `ids` (the single-byte tokens of a piece) in place until no rule applies;
/// `rules` is scratch space.
pub(crate) fn merge(table: &MergeTable, ids: &mut Vec<u32>, rules: &mut Vec<Merge>) {
    if ids.len() > SMALL_PIECE && ids.len() <= MAX_LARGE {
        merge_large(table, ids);
    } else {
        merge_small(table, ids, rules);
    }
}

/// "No merge": ranks after every real rule.
const NO_MERGE: Merge = Merge {
    rank: u32::MAX,
    id: 0,
};

/// The reference. `rules[i]` is the rule for the pair `(ids[i], ids[i + 1])`; each step
/// finds the lowest rank by a scan, merges that pair, and looks up the two pairs that
/// changed.
pub(crate) fn merge_small(table: &MergeTable, ids: &mut Vec<u32>, rules: &mut Vec<Merge>) {
    let rule = |left: u32, right: u32| table.get(left, right).unwrap_or(NO_MERGE);
    rules.clear();
    rules.extend(ids.windows(2).map(|w| rule(w[0], w[1])));
    // `min_by_key` returns the first of equal minima: the leftmost.
    while let Some((i, &best)) = rules.iter().enumerate().min_by_key(|(_, m)| m.rank) {
        if best == NO_MERGE {
            break;
        }
        ids[i] = best.id;
        ids.remove(i + 1);
        rules.remove(i);
        if i < rules.len() {
            rules[i] = rule(ids[i], ids[i + 1]);
        }
        if i > 0 {
            rules[i - 1] = rule(ids[i - 1], ids[i]);
        }
    }
}

/// "No neighbour" in the linked list of [`merge_large`].
const NIL: u32 = u32::MAX;

/// Scratch space of [`merge_large`], kept per thread: its queue has a slot per rank (50 000
/// for GPT-2), too many to allocate for every long piece of a short text.
#[derive(Debug, Default)]
struct LargeBuffers {
    syms: Vec<Sym>,
    queue: Queue,
    batch: Vec<u32>,
}

thread_local! {
    static LARGE_BUFFERS: RefCell<LargeBuffers> = RefCell::new(LargeBuffers::default());
}

/// After a piece longer than this, [`merge_large`] frees its buffers rather than keep
/// megabytes per thread.
const KEEP_BUFFERS_UP_TO: usize = 1 << 16;

/// A symbol of [`merge_large`]'s doubly linked list, at the byte position where it starts.
#[derive(Debug, Clone, Copy)]
struct Sym {
    id: u32,
    prev: u32,
    /// Start of the next symbol; `NIL` for the last one and for symbols merged away.
    next: u32,
}

/// Pending pairs by rank: `buckets[rank]` holds the positions of pairs that had that
/// rank when queued, and `ranks` the ranks whose bucket is not empty. Every queued rank is
/// popped before [`merge_large`] returns, so the buckets are empty between pieces, and
/// their capacity is recycled (no hashing; allocation only while buckets grow).
#[derive(Debug, Default)]
struct Queue {
    buckets: Vec<Vec<u32>>,
    ranks: BinaryHeap<Reverse<u32>>,
}

impl Queue {
    /// Makes room for ranks `0..n_ranks`.
    fn reset(&mut self, n_ranks: usize) {
        if self.buckets.len() != n_ranks {
            self.buckets.clear();
            self.buckets.resize_with(n_ranks, Vec::new);
        }
        debug_assert!(self.ranks.is_empty() && self.buckets.iter().all(Vec::is_empty));
    }

    fn push(&mut self, rank: u32, pos: u32) {
        let bucket = &mut self.buckets[rank as usize];
        if bucket.is_empty() {
            self.ranks.push(Reverse(rank));
        }
        bucket.push(pos);
    }

    /// Takes the lowest pending rank, its positions sorted into `batch` (whose old buffer
    /// becomes the rank's empty bucket).
    fn pop(&mut self, batch: &mut Vec<u32>) -> Option<u32> {
        let Reverse(rank) = self.ranks.pop()?;
        batch.clear();
        std::mem::swap(&mut self.buckets[rank as usize], batch);
        batch.sort_unstable();
        Some(rank)
    }
}

/// For long pieces: GPT-2's own loop — merge every occurrence of the lowest-ranked pair,
/// left to right, then the next rank — with pairs indexed by rank so no step rescans the
/// piece. Symbols form a linked list over byte positions; a position in a batch is skipped
/// if its pair has changed since it was queued. The queue hashes nothing: only the lookups
/// of the pairs a merge creates do.
///
/// In a vocabulary trained by BPE a merge only creates pairs of higher rank than its own
/// (their rules use the token it made, so they were learnt later), and a batch runs to
/// its end. Should a merge create a pair of the same or lower rank (possible in a
/// hand-made vocabulary), the rest of the batch goes back in the queue, so the order is
/// always "lowest rank, then leftmost", as in [`merge_small`].
pub(crate) fn merge_large(table: &MergeTable, ids: &mut Vec<u32>) {
    let n = ids.len();
    LARGE_BUFFERS.with_borrow_mut(|buffers| {
        merge_large_in(table, ids, buffers);
        if n > KEEP_BUFFERS_UP_TO {
            *buffers = LargeBuffers::default();
        }
    });
}

/// [`merge_large`] with the given buffers.
fn merge_large_in(table: &MergeTable, ids: &mut Vec<u32>, buffers: &mut LargeBuffers) {
    let LargeBuffers { syms, queue, batch } = buffers;
    let n = ids.len();
    syms.clear();
    syms.extend((0..n).map(|i| Sym {
        id: ids[i],
        prev: if i == 0 { NIL } else { i as u32 - 1 },
        next: if i + 1 < n { i as u32 + 1 } else { NIL },
    }));
    queue.reset(table.len());
    for i in 0..n.saturating_sub(1) {
        if let Some(m) = table.get(ids[i], ids[i + 1]) {
            queue.push(m.rank, i as u32);
        }
    }
    while let Some(rank) = queue.pop(batch) {
        let (left_id, right_id, merged) = table.rule(rank);
        for (k, &i) in batch.iter().enumerate() {
            // Still the pair that was queued? (Comparing ids: the rank names the pair.)
            let right = syms[i as usize].next;
            if right == NIL || syms[i as usize].id != left_id || syms[right as usize].id != right_id
            {
                continue;
            }
            // Merge `right` into `i`; queue the pairs this creates on either side.
            let after = syms[right as usize].next;
            syms[i as usize].id = merged;
            syms[i as usize].next = after;
            syms[right as usize].next = NIL;
            let mut preempted = false;
            if after != NIL {
                syms[after as usize].prev = i;
                if let Some(m2) = table.get(merged, syms[after as usize].id) {
                    queue.push(m2.rank, i);
                    preempted |= m2.rank <= rank;
                }
            }
            let before = syms[i as usize].prev;
            if before != NIL
                && let Some(m2) = table.get(syms[before as usize].id, merged)
            {
                queue.push(m2.rank, before);
                preempted |= m2.rank <= rank;
            }
            if preempted {
                for &j in &batch[k + 1..] {
                    queue.push(rank, j);
                }
                break;
            }
        }
    }
    ids.clear();
    let mut i = if n == 0 { NIL } else { 0 };
    while i != NIL {
        ids.push(syms[i as usize].id);
        i = syms[i as usize].next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tokenizer;

    /// xorshift64: deterministic, dependency-free.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn both(table: &MergeTable, ids: &[u32]) -> (Vec<u32>, Vec<u32>) {
        let (mut small, mut large) = (ids.to_vec(), ids.to_vec());
        merge_small(table, &mut small, &mut Vec::new());
        merge_large(table, &mut large);
        (small, large)
    }

    /// On GPT-2's vocabulary, with pieces glued from random tokens (so that many merges
    /// compete) and runs of one token.
    #[test]
    fn large_equals_small_on_gpt2() {
        let tok = Tokenizer::gpt2();
        let vocab = &tok.vocab;
        let mut state = 0x2545_F491_4F6C_DD1D;
        for case in 0..1000 {
            // Every tenth piece repeats each token up to 8 times (runs like "aaaa").
            let (parts, max_times) = if case % 10 == 0 { (12, 8) } else { (40, 1) };
            let mut bytes = Vec::new();
            for _ in 0..1 + next(&mut state) % parts {
                let token = vocab.token((next(&mut state) % 50256) as u32).unwrap();
                for _ in 0..1 + next(&mut state) % max_times {
                    bytes.extend_from_slice(token);
                }
            }
            let ids: Vec<u32> = bytes.iter().map(|&b| vocab.byte_ids[b as usize]).collect();
            let (small, large) = both(&vocab.merges, &ids);
            assert_eq!(small, large, "{:?}", String::from_utf8_lossy(&bytes));
        }
    }

    /// A hand-made vocabulary whose first rule uses a token made only by a later one, so
    /// merges create pairs of lower rank than their own: merge_large must interrupt its
    /// batch to keep the lowest-rank-then-leftmost order.
    #[test]
    fn large_equals_small_when_ranks_are_not_monotone() {
        // a=0 b=1 c=2 ab=3 bc=4 abc=5 ca=6
        let mut table = MergeTable::default();
        for (l, r, id) in [
            (3, 2, 5),
            (0, 1, 3),
            (2, 0, 6),
            (1, 2, 4),
            (0, 4, 5),
            (6, 3, 5),
        ] {
            table.push(l, r, id).unwrap();
        }
        let mut state = 0x9E37_79B9_7F4A_7C15;
        for len in 0..2000 {
            let ids: Vec<u32> = (0..len % 300)
                .map(|_| (next(&mut state) % 3) as u32)
                .collect();
            let (small, large) = both(&table, &ids);
            assert_eq!(small, large, "{ids:?}");
        }
        // A case worked by hand: "abc" merges (a,b) at rank 1 first, then (ab,c) at rank 0.
        assert_eq!(both(&table, &[0, 1, 2]).0, [5]);
    }

    #[test]
    fn duplicate_rules_are_refused() {
        let mut table = MergeTable::default();
        table.push(1, 2, 3).unwrap();
        table.push(3, 1, 4).unwrap();
        assert_eq!(table.push(1, 2, 5), Err(0));
        assert_eq!(table.get(1, 2), Some(Merge { rank: 0, id: 3 }));
        assert_eq!(table.get(3, 1), Some(Merge { rank: 1, id: 4 }));
        assert_eq!(table.len(), 2);
    }
}
