//! Finding special-token strings in text.

use crate::vocab::Vocab;

/// The special tokens of a vocabulary, as text.
#[derive(Debug)]
pub(crate) struct SpecialMatcher {
    /// `(text, id)` by increasing id.
    tokens: Vec<(String, u32)>,
}

/// One occurrence of a special token in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpecialMatch {
    /// Byte range in the text.
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The token.
    pub(crate) id: u32,
}

impl SpecialMatcher {
    /// The special tokens of `vocab`.
    pub(crate) fn new(vocab: &Vocab) -> SpecialMatcher {
        let tokens = vocab
            .specials
            .iter()
            .map(|&id| {
                let bytes = vocab.token(id).expect("special ids are tokens");
                let text = std::str::from_utf8(bytes).expect("special tokens are UTF-8");
                (text.to_owned(), id)
            })
            .collect();
        SpecialMatcher { tokens }
    }

    /// A matcher for `texts`, numbered from 0 (for training, before there are ids).
    pub(crate) fn from_texts(texts: &[&str]) -> SpecialMatcher {
        SpecialMatcher {
            tokens: texts
                .iter()
                .zip(0..)
                .map(|(t, id)| (t.to_string(), id))
                .collect(),
        }
    }

    /// The text of special token `id`.
    pub(crate) fn text(&self, id: u32) -> &str {
        let i = self
            .tokens
            .binary_search_by_key(&id, |t| t.1)
            .expect("id is a special token");
        &self.tokens[i].0
    }

    /// The occurrences of special tokens in `text`, left to right, not overlapping; where
    /// several start at one byte, the longest wins.
    pub(crate) fn find_iter<'a>(&'a self, text: &'a str) -> Matches<'a> {
        let next = self
            .tokens
            .iter()
            .map(|(t, _)| text.find(t.as_str()))
            .collect();
        Matches {
            tokens: &self.tokens,
            text,
            pos: 0,
            next,
        }
    }
}

/// Iterator of [`SpecialMatcher::find_iter`]. It remembers each token's next occurrence,
/// so the text is scanned once per token in all: linear time however many matches.
pub(crate) struct Matches<'a> {
    tokens: &'a [(String, u32)],
    text: &'a str,
    /// Where the next match may start.
    pos: usize,
    /// For each token, its first occurrence at or after some earlier `pos` (`None`: none
    /// left); refreshed when it falls behind `pos`.
    next: Vec<Option<usize>>,
}

impl Iterator for Matches<'_> {
    type Item = SpecialMatch;

    fn next(&mut self) -> Option<SpecialMatch> {
        let mut best: Option<SpecialMatch> = None;
        for (k, (token, id)) in self.tokens.iter().enumerate() {
            if self.next[k].is_some_and(|p| p < self.pos) {
                self.next[k] = self.text[self.pos..]
                    .find(token.as_str())
                    .map(|i| self.pos + i);
            }
            let Some(start) = self.next[k] else { continue };
            let m = SpecialMatch {
                start,
                end: start + token.len(),
                id: *id,
            };
            if best.is_none_or(|b| (m.start, b.end) < (b.start, m.end)) {
                best = Some(m);
            }
        }
        let m = best?;
        self.pos = m.end;
        Some(m)
    }
}
