//! GPT-2's byte ↔ character mapping (`bytes_to_unicode` in OpenAI's `encoder.py`).
//!
//! Vocabulary files store each token as a string in which every byte is replaced by a
//! printable character: the 188 printable Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`)
//! stand for themselves, the other 68 bytes map to U+0100, U+0101, … in increasing byte
//! order. So a space (0x20) is written `Ġ` (U+0120) and a newline `Ċ` (U+010A).

/// The character that stands for each byte in vocabulary files.
pub(crate) const BYTE_TO_CHAR: [char; 256] = {
    let mut table = ['\0'; 256];
    let mut next_unprintable = 0u32;
    let mut b = 0;
    while b < 256 {
        let printable = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let cp = if printable {
            b as u32
        } else {
            next_unprintable += 1;
            255 + next_unprintable
        };
        table[b] = char::from_u32(cp).unwrap();
        b += 1;
    }
    table
};

/// The highest character of the mapping (U+0143), bounding [`CHAR_TO_BYTE`].
const MAX_CHAR: usize = 0x143;

/// Inverse of [`BYTE_TO_CHAR`]: `CHAR_TO_BYTE[c]` is the byte `c` stands for, or `None`
/// if `c` is not one of the 256 characters.
const CHAR_TO_BYTE: [Option<u8>; MAX_CHAR + 1] = {
    let mut table = [None; MAX_CHAR + 1];
    let mut b = 0;
    while b < 256 {
        table[BYTE_TO_CHAR[b] as usize] = Some(b as u8);
        b += 1;
    }
    table
};

/// GPT-2's id order of the 256 single-byte tokens: bytes sorted by the character that
/// stands for them (id 0 = `!`, id 220 = space). Trained vocabularies use it too.
pub(crate) const BYTE_ORDER: [u8; 256] = {
    let mut order = [0u8; 256];
    let mut id = 0;
    let mut c = 0;
    while c <= MAX_CHAR {
        if let Some(b) = CHAR_TO_BYTE[c] {
            order[id] = b;
            id += 1;
        }
        c += 1;
    }
    order
};

/// Writes `bytes` the way vocabulary files do (`" the"` → `"Ġthe"`).
pub(crate) fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| BYTE_TO_CHAR[b as usize]).collect()
}

/// Reads a vocabulary-file string back to bytes; `None` if a character is not one of the
/// 256 that stand for bytes.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    s.chars()
        .map(|c| CHAR_TO_BYTE.get(c as usize).copied().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_matches_openai_examples() {
        assert_eq!(BYTE_TO_CHAR[b' ' as usize], 'Ġ');
        assert_eq!(BYTE_TO_CHAR[b'\n' as usize], 'Ċ');
        assert_eq!(BYTE_TO_CHAR[0], 'Ā');
        assert_eq!(BYTE_TO_CHAR[0xAD], 'Ń');
        assert_eq!(BYTE_TO_CHAR[b'a' as usize], 'a');
        assert_eq!(BYTE_ORDER[0], b'!');
        assert_eq!(BYTE_ORDER[220], b' ');
        assert_eq!(encode(" the\n".as_bytes()), "Ġthe\u{10A}");
    }

    #[test]
    fn mapping_is_a_bijection() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)).unwrap(), all);
        let mut sorted = BYTE_ORDER;
        sorted.sort_unstable();
        assert_eq!(sorted.to_vec(), all);
        assert_eq!(decode("Ġx\u{144}"), None);
        assert_eq!(
            decode("hello world"),
            None,
            "a raw space is not a mapped character"
        );
    }
}
