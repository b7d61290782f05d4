//! A generated adversarial corpus for the tokenizer (shared by the tests and the bench):
//! deterministic for a seed, no dependencies.
//!
//! It covers every contraction form in every letter case and context, numbers in several
//! scripts, mixed scripts (CJK, Arabic, Hebrew, Devanagari, Thai, Cyrillic, Greek), emoji
//! with ZWJ sequences and skin tones, combining marks, NFC vs NFD, odd whitespace (no-break,
//! thin and ideographic spaces, tabs, CRLF, runs of spaces before words and at the end),
//! code, URLs, special-token look-alikes and random code points from every plane.

/// SplitMix64: a tiny, good-enough deterministic generator.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "the",
    "The",
    "THE",
    "hello",
    "world",
    "don",
    "it",
    "we",
    "you",
    "they",
    "I",
    "she",
    "can",
    "naïve",
    "café",
    "Straße",
    "œuvre",
    "Ærø",
    "façade",
    "x",
    "a",
    "Zürich",
    "İstanbul",
];

const SCRIPTS: &[&str] = &[
    "机器学习是人工智能的一个分支",
    "日本語のテキストとカタカナ",
    "한국어 문장입니다",
    "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם, מה שלומך?",
    "हिन्दी भाषा में पाठ",
    "ภาษาไทยไม่มีช่องว่าง",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε, τι κάνεις;",
    "Ελληνικά ΚΕΦΑΛΑΙΑ",
    "ĀāĂăĄą ŁłŃń",
    "Tiếng Việt có dấu",
    "ქართული ენა",
    "Հայերեն",
    "ᚠᚢᚦᚨᚱᚲ",
    "𐌰𐌱𐌲 gothic",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙",
];

const NUMBERS: &[&str] = &[
    "0",
    "42",
    "3.14159",
    "1,000,000",
    "2024-06-01",
    "0x1F600",
    "1e-9",
    "٣٤٥",
    "१२३",
    "๑๒๓",
    "Ⅻ",
    "½",
    "x²",
    "³⁄₄",
    "１２３",
    "0000000000000000000000",
    "9999999999",
    "-17",
    "+1 (555) 010-9999",
];

const EMOJI: &[&str] = &[
    "😀",
    "👍🏽",
    "👩🏿‍💻",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🇺🇸🇫🇷",
    "1️⃣",
    "❤️",
    "🦀",
    "🧑🏻‍🤝‍🧑🏾",
    "☺︎",
    "🫠",
];

/// Combining marks, and the same text in NFC and NFD.
const MARKS: &[&str] = &[
    "e\u{301}",
    "\u{e9}",
    "A\u{30A}",
    "\u{c5}",
    "a\u{308}\u{323}",
    "\u{1e33}\u{307}",
    "\u{d55c}\u{ad6d}",
    "\u{1112}\u{1161}\u{11ab}\u{1100}\u{116e}\u{11a8}",
    "Z\u{335}\u{30d}a\u{337}\u{31a}l\u{334}g\u{336}o",
    "\u{301}leading mark",
    "n\u{303}",
    "\u{f1}",
];

const SPACES: &[&str] = &[
    " ",
    " ",
    " ",
    "  ",
    "   ",
    "    ",
    "\t",
    "\t\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r\n\r\n",
    "\u{a0}",
    "\u{2009}",
    "\u{3000}",
    "\u{2028}",
    "\u{85}",
    "\u{b}",
    "\u{c}",
    " \n ",
    "\u{a0} ",
    " \u{3000}",
    "\u{200b}",
    "\u{feff}",
];

const CODE: &[&str] = &[
    "fn main() {\n    println!(\"{}\", x);\n}",
    "    if x != 0 { return -> y; }",
    "def f(x):\n\treturn x**2",
    "let v: Vec<u32> = vec![1, 2, 3];",
    "#include <stdio.h>",
    "a::b::<T>()",
    "x += 1; y -= 2; z *= 3;",
    "<div class=\"x\">&amp;</div>",
    "SELECT * FROM t WHERE a='b';",
    "$ ls -la | grep '^d'",
    "    \n        \n",
    "}}}]]]))):::;;;",
    "/* comment */ // another",
    "'''docstring'''",
];

const URLS: &[&str] = &[
    "https://example.com/path/to/page?q=1&x=%20#frag",
    "http://localhost:8080/",
    "mailto:someone@example.org",
    "ftp://ftp.example.net/pub/file.tar.gz",
    "www.example.co.uk",
    "user@host:~/dir$",
];

const SPECIALS: &[&str] = &[
    "<|endoftext|>",
    "<|endoftext|",
    "<|endoftext|><|endoftext|>",
    "<|im_start|>",
    "|>",
];

/// A contraction in one of its letter cases: `'s`, `'S`, `'re`, `'rE`, `'Re`, `'RE`, ...
fn contraction(rng: &mut Rng) -> String {
    let base = rng.pick(&["s", "t", "re", "ve", "m", "ll", "d"]);
    let cased: String = base
        .chars()
        .map(|c| {
            if rng.below(2) == 0 {
                c
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    let quote = rng.pick(&["'", "'", "'", "’", "''"]);
    format!("{quote}{cased}")
}

/// A random code point from anywhere (any plane, unassigned and private use included; no
/// surrogates).
fn random_char(rng: &mut Rng) -> char {
    loop {
        let limit = rng.pick(&[0x80u32, 0x800, 0x3400, 0x10000, 0x110000]);
        if let Some(c) = char::from_u32(rng.below(limit as usize) as u32) {
            return c;
        }
    }
}

/// One fragment of some kind.
fn fragment(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 | 1 => format!("{}{}", rng.pick(WORDS), contraction(rng)),
        2 => format!(
            "{}{}{}",
            contraction(rng),
            rng.pick(WORDS),
            contraction(rng)
        ),
        3 => rng.pick(SCRIPTS).to_string(),
        4 => rng.pick(NUMBERS).to_string(),
        5 => rng.pick(EMOJI).repeat(1 + rng.below(3)),
        6 => rng.pick(MARKS).to_string(),
        7 => rng.pick(CODE).to_string(),
        8 => rng.pick(URLS).to_string(),
        9 => rng.pick(SPECIALS).to_string(),
        10 => (0..1 + rng.below(12)).map(|_| random_char(rng)).collect(),
        _ => rng.pick(WORDS).to_string(),
    }
}

/// Every contraction in every letter case, in every context that splits differently:
/// after a word, after a space, alone, after punctuation, doubled, before a letter.
pub fn all_contractions() -> String {
    let mut out = String::new();
    for base in ["s", "t", "re", "ve", "m", "ll", "d"] {
        for mask in 0..1u32 << base.len() {
            let c: String = base
                .chars()
                .enumerate()
                .map(|(i, ch)| {
                    if mask >> i & 1 == 1 {
                        ch.to_ascii_uppercase()
                    } else {
                        ch
                    }
                })
                .collect();
            for context in [
                "it'{c}", "it '{c}", "'{c}", " '{c}x", "?'{c}", "'{c}'{c}", "''{c}", "\n'{c}\n",
            ] {
                out += &context.replace("{c}", &c);
                out.push(' ');
            }
        }
    }
    out
}

/// `count` documents: [`all_contractions`], then documents of a few dozen fragments each,
/// joined by assorted whitespace (or none), some ending in whitespace.
pub fn documents(seed: u64, count: usize) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let generated = (1..count).map(|_| {
        let mut doc = String::new();
        for _ in 0..1 + rng.below(40) {
            if rng.below(4) != 0 {
                doc += rng.pick(SPACES);
            }
            doc += &fragment(&mut rng);
        }
        if rng.below(3) == 0 {
            doc += rng.pick(SPACES);
        }
        doc
    });
    std::iter::once(all_contractions())
        .chain(generated)
        .collect()
}
