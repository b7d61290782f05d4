//! GPT-2's pre-tokeniser, hand-written.
//!
//! GPT-2 splits text with the regular expression
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! (tiktoken writes it `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|
//! \s++$|\s+(?!\S)|\s`, which matches the same pieces) and BPE-encodes each piece
//! separately. [`Pieces`] yields exactly the regex's matches, scanning forward once with no
//! backtracking: at each position the first alternative that matches is found from the
//! first one or two characters, and every alternative but the whitespace rule is a greedy
//! run of one class. The whitespace rule `\s+(?!\S)` matches a whole run of whitespace when
//! it ends the text and otherwise all of it but the last character, which goes to the next
//! piece (` word`) or, if not a space, stands alone.
//!
//! The tests compare this with fancy-regex running tiktoken's pattern.

use crate::unicode::{CharClass, classify};

/// Iterator over the pre-tokenisation pieces of a text; the pieces concatenate to it.
pub(crate) struct Pieces<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Pieces<'a> {
    /// The pieces of `text`.
    pub(crate) fn new(text: &'a str) -> Self {
        Pieces { text, pos: 0 }
    }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let start = self.pos;
        if start == self.text.len() {
            return None;
        }
        let end = piece_end(self.text, start);
        self.pos = end;
        Some(&self.text[start..end])
    }
}

/// The character starting at byte `i` of `text` (which must be a char boundary), and its
/// class; `None` at the end.
#[inline(always)]
fn char_at(text: &str, i: usize) -> Option<(char, CharClass)> {
    let b = *text.as_bytes().get(i)?;
    if b < 0x80 {
        Some((b as char, classify(b as char)))
    } else {
        non_ascii_at(text, i)
    }
}

/// [`char_at`] for a multi-byte character, out of line to keep the ASCII path small.
#[inline(never)]
fn non_ascii_at(text: &str, i: usize) -> Option<(char, CharClass)> {
    let c = text[i..].chars().next()?;
    Some((c, classify(c)))
}

/// End of the maximal run of characters of class `class` starting at byte `i`.
#[inline]
fn run_end(text: &str, mut i: usize, class: CharClass) -> usize {
    let bytes = text.as_bytes();
    loop {
        // ASCII bytes one at a time; anything else through `char_at`.
        while let Some(&b) = bytes.get(i) {
            if b >= 0x80 || classify(b as char) != class {
                break;
            }
            i += 1;
        }
        match char_at(text, i) {
            Some((c, k)) if k == class => i += c.len_utf8(),
            _ => return i,
        }
    }
}

/// Length of the contraction (`s`, `t`, `m`, `d`, `re`, `ve`, `ll`; lowercase only) that
/// follows an apostrophe, if one does. Like the regex, this ignores what comes after it:
/// `'sam` is `'s` + `am`.
#[inline]
fn contraction_len(rest: &[u8]) -> Option<usize> {
    match rest {
        [b's' | b't' | b'm' | b'd', ..] => Some(1),
        [b'r', b'e', ..] | [b'v', b'e', ..] | [b'l', b'l', ..] => Some(2),
        _ => None,
    }
}

/// End (byte offset) of the piece that starts at byte `start < text.len()`.
fn piece_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let (first, first_class) = char_at(text, start).expect("start is inside the text");
    // 's|'t|'re|'ve|'m|'ll|'d
    if first == '\''
        && let Some(n) = contraction_len(&bytes[start + 1..])
    {
        return start + 1 + n;
    }
    // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`: a run of one class, after an optional space.
    // A space followed by whitespace or by nothing falls through to the whitespace rule.
    let (run_start, class) = if first == ' ' {
        match char_at(text, start + 1) {
            Some((_, class)) if class != CharClass::Space => (start + 1, class),
            _ => (start, CharClass::Space),
        }
    } else {
        (start, first_class)
    };
    if class != CharClass::Space {
        return run_end(text, run_start, class);
    }
    // `\s+(?!\S)|\s+`: the run of whitespace, less its last character unless the run ends
    // the text or is a single character.
    let mut i = start;
    let mut last = start;
    while let Some((c, CharClass::Space)) = char_at(text, i) {
        last = i;
        i += c.len_utf8();
    }
    if i == text.len() || last == start {
        i
    } else {
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::LazyLock;

    /// tiktoken-rs's `r50k_base` pattern, run by fancy-regex: the oracle.
    const TIKTOKEN_PATTERN: &str =
        r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";

    fn oracle(text: &str) -> Vec<&str> {
        static RE: LazyLock<fancy_regex::Regex> =
            LazyLock::new(|| fancy_regex::Regex::new(TIKTOKEN_PATTERN).unwrap());
        RE.find_iter(text).map(|m| m.unwrap().as_str()).collect()
    }

    fn ours(text: &str) -> Vec<&str> {
        Pieces::new(text).collect()
    }

    #[test]
    fn examples() {
        assert_eq!(ours("Hello world"), ["Hello", " world"]);
        assert_eq!(
            ours("it's we'LL 'sam"),
            ["it", "'s", " we", "'", "LL", " '", "sam"]
        );
        assert_eq!(ours("a   b"), ["a", "  ", " b"]);
        assert_eq!(ours("a \n\nb  "), ["a", " \n", "\n", "b", "  "]);
        assert_eq!(
            ours("x\u{3000}\u{3000}y"),
            ["x", "\u{3000}", "\u{3000}", "y"]
        );
        assert_eq!(ours("3.14 ?!'s"), ["3", ".", "14", " ?!'", "s"]);
        assert_eq!(ours(""), Vec::<&str>::new());
    }

    /// Characters that exercise every branch: each class, the space, the apostrophe and
    /// the letters of contractions, multi-byte whitespace.
    const ALPHABET: &[char] = &[
        ' ',
        ' ',
        ' ',
        '\'',
        '\'',
        's',
        't',
        'r',
        'e',
        'v',
        'l',
        'm',
        'd',
        'S',
        'L',
        'E',
        'x',
        '7',
        '\n',
        '\r',
        '\t',
        '\u{a0}',
        '\u{3000}',
        '\u{2009}',
        '\u{85}',
        '.',
        '!',
        '-',
        'é',
        '\u{301}',
        '中',
        '٣',
        'Ⅻ',
        '😀',
        '\u{200d}',
        '\u{1F3FD}',
        '\0',
    ];

    #[test]
    fn equals_fancy_regex_on_random_strings() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..4000 {
            let text: String = (0..len % 40)
                .map(|_| {
                    // xorshift64: deterministic, dependency-free.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ALPHABET[(state % ALPHABET.len() as u64) as usize]
                })
                .collect();
            assert_eq!(ours(&text), oracle(&text), "{text:?}");
        }
    }

    #[test]
    fn long_runs_are_single_pieces() {
        let letters = "a".repeat(100_000);
        assert_eq!(ours(&letters), [letters.as_str()]);
        let spaces = format!("{}x", " ".repeat(100_000));
        assert_eq!(ours(&spaces), [&spaces[..99_999], " x"]);
    }
}
