//! Character classes of GPT-2's pre-tokenisation pattern: `\p{L}` (letters), `\p{N}`
//! (numbers) and `\s` (Unicode `White_Space`), exactly as tiktoken's regex engine
//! (fancy-regex over regex-syntax 0.8, Unicode 16.0) sees them.
//!
//! The ranges live in the generated file `unicode_tables.rs`; the tests below check them
//! against regex-syntax's own tables, code point by code point, and regenerate them.

mod tables;

/// The class of one character, as far as the pre-tokeniser cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CharClass {
    /// `\p{L}`: any letter category (Lu, Ll, Lt, Lm, Lo).
    Letter,
    /// `\p{N}`: any number category (Nd, Nl, No).
    Number,
    /// `\s`: the Unicode `White_Space` property (25 characters).
    Space,
    /// Everything else, i.e. `[^\s\p{L}\p{N}]`: punctuation, symbols, marks, controls,
    /// unassigned code points.
    Other,
}

/// Classes of the 128 ASCII characters, precomputed from the same tables: the hot path
/// for English text and code never searches.
static ASCII: [CharClass; 128] = {
    let mut t = [CharClass::Other; 128];
    let mut c = 0;
    while c < 128 {
        t[c] = search(c as u32);
        c += 1;
    }
    t
};

/// The class of `c`.
#[inline]
pub(crate) fn classify(c: char) -> CharClass {
    let cp = c as u32;
    if cp < 128 {
        ASCII[cp as usize]
    } else {
        search(cp)
    }
}

/// Binary search of the sorted, disjoint ranges of [`tables::RANGES`].
const fn search(cp: u32) -> CharClass {
    // `lo..hi` holds the ranges that may contain `cp`: all before `lo` end below it,
    // all from `hi` on start above it.
    let ranges = &tables::RANGES;
    let (mut lo, mut hi) = (0, ranges.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        let (start, end, class) = ranges[mid];
        if cp < start {
            hi = mid;
        } else if cp > end {
            lo = mid + 1;
        } else {
            return class;
        }
    }
    CharClass::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_syntax::hir::{Class, HirKind};

    /// The ranges regex-syntax uses for `pattern` (a single Unicode class).
    fn regex_syntax_ranges(pattern: &str) -> Vec<(u32, u32)> {
        let hir = regex_syntax::Parser::new().parse(pattern).unwrap();
        match hir.kind() {
            HirKind::Class(Class::Unicode(cls)) => cls
                .ranges()
                .iter()
                .map(|r| (r.start() as u32, r.end() as u32))
                .collect(),
            other => panic!("{pattern} parsed to {other:?}"),
        }
    }

    /// All ranges of the three classes, sorted, adjacent ranges of one class merged.
    fn derived_ranges() -> Vec<(u32, u32, CharClass)> {
        let mut all = Vec::new();
        for (pattern, class) in [
            (r"\p{L}", CharClass::Letter),
            (r"\p{N}", CharClass::Number),
            (r"\s", CharClass::Space),
        ] {
            all.extend(
                regex_syntax_ranges(pattern)
                    .into_iter()
                    .map(|(s, e)| (s, e, class)),
            );
        }
        all.sort_by_key(|r| r.0);
        let mut merged: Vec<(u32, u32, CharClass)> = Vec::new();
        for r in all {
            match merged.last_mut() {
                Some(last) if last.2 == r.2 && last.1 + 1 == r.0 => last.1 = r.1,
                _ => merged.push(r),
            }
        }
        merged
    }

    #[test]
    fn tables_equal_regex_syntax() {
        let derived = derived_ranges();
        assert_eq!(tables::RANGES.as_slice(), derived.as_slice());
        // The classes are disjoint: sorted ranges never overlap.
        for w in derived.windows(2) {
            assert!(w[0].1 < w[1].0, "{:x?} overlaps {:x?}", w[0], w[1]);
        }
    }

    /// Every code point, classified through fancy-regex itself (the engine tiktoken-rs
    /// runs), equals [`classify`]: an exhaustive check of the lookup, not just the table.
    #[test]
    fn classify_equals_fancy_regex_on_every_code_point() {
        let all: String = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
        let mut expected = vec![CharClass::Other; 0x110000];
        for (pattern, class) in [
            (r"\p{L}+", CharClass::Letter),
            (r"\p{N}+", CharClass::Number),
            (r"\s+", CharClass::Space),
        ] {
            let re = fancy_regex::Regex::new(pattern).unwrap();
            for m in re.find_iter(&all) {
                for c in m.unwrap().as_str().chars() {
                    assert_eq!(
                        expected[c as usize],
                        CharClass::Other,
                        "{c:?} in two classes"
                    );
                    expected[c as usize] = class;
                }
            }
        }
        for c in all.chars() {
            assert_eq!(classify(c), expected[c as usize], "U+{:04X}", c as u32);
        }
    }

    /// Rewrites `src/unicode/tables.rs` from regex-syntax. Run after bumping regex-syntax:
    /// `cargo test -p gpt2-tokenizer --lib -- --ignored regenerate_unicode_tables`.
    #[test]
    #[ignore = "writes a source file; run by hand"]
    fn regenerate_unicode_tables() {
        let ranges = derived_ranges();
        let mut out = String::from(
            "// Generated by `cargo test -p gpt2-tokenizer --lib -- --ignored \
             regenerate_unicode_tables`\n\
             // from regex-syntax 0.8 (Unicode 16.0.0): `\\p{L}`, `\\p{N}` and `\\s` as \
             fancy-regex sees them. Do not edit.\n\n\
             use super::CharClass::{self, Letter as L, Number as N, Space as S};\n\n\
             /// Sorted, disjoint, inclusive code point ranges `(first, last, class)`; code \
             points\n/// in no range are [`CharClass::Other`].\n#[rustfmt::skip]\n",
        );
        out += &format!(
            "pub(super) const RANGES: [(u32, u32, CharClass); {}] = [\n",
            ranges.len()
        );
        for chunk in ranges.chunks(4) {
            out += "   ";
            for (s, e, c) in chunk {
                let tag = match c {
                    CharClass::Letter => "L",
                    CharClass::Number => "N",
                    CharClass::Space => "S",
                    CharClass::Other => unreachable!(),
                };
                out += &format!(" (0x{s:05X}, 0x{e:05X}, {tag}),");
            }
            out += "\n";
        }
        out += "];\n";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/unicode/tables.rs");
        std::fs::write(path, out).unwrap();
    }
}
