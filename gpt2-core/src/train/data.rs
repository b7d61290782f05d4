//! Training data: text → tokens (in parallel), llm.c's token files, the validation split,
//! and the loader that cuts (inputs, targets) batches.
//!
//! ## Token files (llm.c's `.bin`)
//! A header of 256 little-endian `i32`: magic [`TOKEN_MAGIC`] (20240520), version 1, the
//! number of tokens; the rest zero. Then the tokens as little-endian `u16`.
//!
//! ## Batches
//! A batch is `B` rows of `T + 1` consecutive tokens; row `b`'s inputs are its first `T`
//! tokens and its targets the last `T`. [`Order::Sequential`] is llm.c's loader: batch `i`
//! reads tokens `[i·B·T, i·B·T + B·T + 1)` and row `b` starts at `i·B·T + b·T`; after
//! the last whole batch it starts over. [`Order::Shuffled`] cuts the same stream into
//! windows of `T + 1` tokens starting at multiples of `T`, and each epoch visits them in
//! a random order (Fisher–Yates with the stream `(seed, epoch)`), `B` windows per batch.

use std::path::Path;

use gpt2_kernels::rng::Rng;
use gpt2_tokenizer::Tokenizer;

use crate::error::{Error, Result};

/// First `i32` of a token file.
pub const TOKEN_MAGIC: i32 = 20240520;
/// The token file version this code reads and writes (`u16` tokens).
pub const TOKEN_VERSION: i32 = 1;
const HEADER_BYTES: usize = 256 * 4;

/// Writes `tokens` as an llm.c token file. Errors if a token does not fit 16 bits.
pub fn write_token_file(path: &Path, tokens: &[u32]) -> Result<()> {
    if let Some(&t) = tokens.iter().find(|&&t| t > u32::from(u16::MAX)) {
        return Err(Error::Input(format!(
            "token id {t} does not fit the token file's 16 bits"
        )));
    }
    let count = i32::try_from(tokens.len())
        .map_err(|_| Error::Input(format!("{} tokens are too many for one file", tokens.len())))?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 2 * tokens.len());
    for h in [TOKEN_MAGIC, TOKEN_VERSION, count] {
        bytes.extend_from_slice(&h.to_le_bytes());
    }
    bytes.resize(HEADER_BYTES, 0);
    for &t in tokens {
        bytes.extend_from_slice(&(t as u16).to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Reads an llm.c token file, checking its magic, version and size.
pub fn read_token_file(path: &Path) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_token_file(&bytes).map_err(|msg| Error::format(path, msg))
}

fn parse_token_file(bytes: &[u8]) -> std::result::Result<Vec<u32>, String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes is shorter than the 1024-byte header of a token file",
            bytes.len()
        ));
    }
    let word = |i: usize| {
        i32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    if word(0) != TOKEN_MAGIC {
        return Err(format!(
            "bad magic {} (token files start with {TOKEN_MAGIC})",
            word(0)
        ));
    }
    if word(1) != TOKEN_VERSION {
        return Err(format!(
            "unsupported token file version {} (only {TOKEN_VERSION}, u16 tokens, is supported)",
            word(1)
        ));
    }
    let count =
        usize::try_from(word(2)).map_err(|_| format!("negative token count {}", word(2)))?;
    let expected = HEADER_BYTES + 2 * count;
    if bytes.len() != expected {
        return Err(format!(
            "the header says {count} tokens ({expected} bytes), but the file has {} bytes",
            bytes.len()
        ));
    }
    Ok(bytes[HEADER_BYTES..]
        .chunks_exact(2)
        .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
        .collect())
}

/// Bytes per chunk of text encoded by one task in [`tokenize`].
const CHUNK_BYTES: usize = 1 << 16;

/// Whether the text can be cut at byte `k` without changing its encoding: `k` follows a
/// lone `\n` between two printable ASCII characters (`x\n|y`). GPT-2's pre-tokeniser
/// then ends a piece at `k` in the whole text (the `\n` is a whitespace run of one that
/// is followed by a non-space, so it is a piece of its own) and in the part before `k`
/// (a trailing `\n` is a piece of its own too), and the pattern looks behind nothing, so
/// scanning from `k` is the same either way. (After `\n\n` it would not be: alone, the
/// two newlines make one piece, in the whole text two.)
fn is_cut(text: &[u8], k: usize) -> bool {
    let graphic = |b: u8| b.is_ascii_graphic();
    k >= 2 && k < text.len() && text[k - 1] == b'\n' && graphic(text[k - 2]) && graphic(text[k])
}

/// Splits `text` into pieces of about `size` bytes at cuts that do not change the
/// encoding (see [`is_cut`]).
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = (start + size).min(bytes.len());
        while end < bytes.len() && !is_cut(bytes, end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

/// Encodes `text` as plain text (special-token strings are text), in parallel over
/// chunks cut where the encoding cannot change; the result equals
/// `tokenizer.encode(text)`.
pub fn tokenize(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer.encode_batch(&chunks(text, CHUNK_BYTES)).concat()
}

/// Loads training data: an llm.c token file (recognised by its magic) or a UTF-8 text
/// file, tokenised with `tokenizer`.
pub fn load_tokens(path: &Path, tokenizer: &Tokenizer) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() >= 4 && bytes[..4] == TOKEN_MAGIC.to_le_bytes() {
        return parse_token_file(&bytes).map_err(|msg| Error::format(path, msg));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!(
                "neither a token file nor UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })?;
    Ok(tokenize(tokenizer, &text))
}

/// Splits tokens into (train, validation): the last `val_frac` of them (rounded) are
/// the validation set.
pub fn split_validation(tokens: &[u32], val_frac: f64) -> Result<(&[u32], &[u32])> {
    if !(0.0..1.0).contains(&val_frac) {
        return Err(Error::Input(format!(
            "validation fraction {val_frac} is not in [0, 1)"
        )));
    }
    let n_val = (tokens.len() as f64 * val_frac).round() as usize;
    Ok(tokens.split_at(tokens.len() - n_val))
}

/// The order in which a [`DataLoader`] visits the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Order {
    /// llm.c's: consecutive batches, start over at the end.
    Sequential,
    /// Random windows of `T + 1` tokens, reshuffled every epoch from `seed`.
    Shuffled {
        /// The random stream.
        seed: u64,
    },
}

/// Where a [`DataLoader`] is: enough to continue exactly (checkpoints store it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Completed passes over the data.
    pub epoch: u64,
    /// The next batch within this epoch.
    pub batch: u64,
}

/// Cuts (inputs, targets) batches of `B` rows of `T` tokens from a token sequence.
#[derive(Debug, Clone)]
pub struct DataLoader {
    tokens: Vec<u32>,
    b: usize,
    t: usize,
    order: Order,
    pos: Position,
    /// The shuffled window order of the current epoch (empty when sequential).
    perm: Vec<u32>,
}

impl DataLoader {
    /// A loader at the start of the data. Errors if there are not enough tokens for one
    /// batch (`B·T + 1`).
    pub fn new(tokens: Vec<u32>, b: usize, t: usize, order: Order) -> Result<DataLoader> {
        if b == 0 || t == 0 || tokens.len() < b * t + 1 {
            return Err(Error::Input(format!(
                "{} tokens are not enough for one batch of B = {b} rows of T = {t} (need B·T + 1, B, T ≥ 1)",
                tokens.len()
            )));
        }
        let mut loader = DataLoader {
            tokens,
            b,
            t,
            order,
            pos: Position::default(),
            perm: Vec::new(),
        };
        loader.seek(Position::default());
        Ok(loader)
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> u64 {
        let (n, bt) = (self.tokens.len() - 1, self.b * self.t);
        match self.order {
            Order::Sequential => (n / bt) as u64,
            Order::Shuffled { .. } => (n / self.t / self.b) as u64,
        }
    }

    /// The position of the next batch.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Moves to `pos` (e.g. a checkpoint's).
    pub fn seek(&mut self, pos: Position) {
        self.pos = pos;
        if let Order::Shuffled { seed } = self.order {
            let n_windows = (self.tokens.len() - 1) / self.t;
            self.perm = (0..n_windows as u32).collect();
            let mut rng = Rng::new(gpt2_kernels::rng::hash(seed, pos.epoch));
            for i in (1..n_windows).rev() {
                let j = (rng.next_u64() % (i as u64 + 1)) as usize;
                self.perm.swap(i, j);
            }
        }
    }

    /// The next batch: `(inputs, targets)`, each `(B, T)`.
    pub fn next_batch(&mut self) -> (Vec<u32>, Vec<u32>) {
        if self.pos.batch >= self.batches_per_epoch() {
            self.seek(Position {
                epoch: self.pos.epoch + 1,
                batch: 0,
            });
        }
        let (b, t, i) = (self.b, self.t, self.pos.batch as usize);
        let (mut x, mut y) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        for row in 0..b {
            let start = match self.order {
                Order::Sequential => i * b * t + row * t,
                Order::Shuffled { .. } => self.perm[i * b + row] as usize * t,
            };
            let w = &self.tokens[start..start + t + 1];
            x.extend_from_slice(&w[..t]);
            y.extend_from_slice(&w[1..]);
        }
        self.pos.batch += 1;
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_batches_follow_llmc() {
        let tokens: Vec<u32> = (0..100).collect();
        let (b, t) = (2, 5);
        let mut dl = DataLoader::new(tokens, b, t, Order::Sequential).unwrap();
        assert_eq!(dl.batches_per_epoch(), 9); // (100 - 1) / 10
        for i in 0..9u32 {
            let (x, y) = dl.next_batch();
            let base = i * 10;
            let want_x: Vec<u32> = (0..b as u32)
                .flat_map(|r| (0..t as u32).map(move |j| base + r * 5 + j))
                .collect();
            assert_eq!(x, want_x, "batch {i}");
            assert_eq!(y, want_x.iter().map(|v| v + 1).collect::<Vec<_>>());
        }
        assert_eq!(
            dl.next_batch().0[0],
            0,
            "starts over after the last whole batch"
        );
        assert_eq!(dl.position(), Position { epoch: 1, batch: 1 });
    }

    #[test]
    fn shuffled_epochs_are_permutations_and_repeat_by_seed() {
        let tokens: Vec<u32> = (0..61).collect();
        let (b, t) = (2, 3); // 20 windows, 10 batches per epoch
        let order = Order::Shuffled { seed: 9 };
        let mut dl = DataLoader::new(tokens.clone(), b, t, order).unwrap();
        let epoch = |dl: &mut DataLoader| {
            let mut starts: Vec<u32> = (0..10)
                .flat_map(|_| {
                    let (x, y) = dl.next_batch();
                    assert!(x.iter().zip(&y).all(|(a, b)| a + 1 == *b));
                    x.chunks(t).map(|r| r[0]).collect::<Vec<_>>()
                })
                .collect();
            let order = starts.clone();
            starts.sort_unstable();
            assert_eq!(starts, (0..20).map(|w| w * 3).collect::<Vec<_>>());
            order
        };
        let (e0, e1) = (epoch(&mut dl), epoch(&mut dl));
        assert_ne!(e0, e1, "each epoch has its own order");
        let mut again = DataLoader::new(tokens, b, t, order).unwrap();
        again.seek(Position { epoch: 1, batch: 0 });
        assert_eq!(
            epoch(&mut again),
            e1,
            "an epoch's order depends only on the seed"
        );
    }

    /// Cutting at every allowed point (small chunks) gives the same ids as encoding the
    /// whole text, on text full of the cases that would break a careless cut: blank
    /// lines, spaces and tabs before newlines, contractions, digits, non-ASCII.
    #[test]
    fn chunked_encoding_equals_whole_encoding() {
        let tok = Tokenizer::gpt2();
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(
                [
                    "ROMEO:\n",
                    "I'll go.\n\n",
                    "  \n",
                    "x\ty \n",
                    "Naïve 42\n",
                    "'s\n\n\nz",
                ][i % 6],
            );
            text.push_str(&"word ".repeat(i % 4));
        }
        let whole = tok.encode(&text);
        for size in [1, 7, 64] {
            let pieces = chunks(&text, size);
            assert!(size > 1 || pieces.len() > 40, "{} pieces", pieces.len());
            assert_eq!(pieces.concat(), text);
            assert_eq!(
                tok.encode_batch(&pieces).concat(),
                whole,
                "chunks of {size}"
            );
        }
        assert_eq!(tokenize(&tok, &text), whole);
    }

    #[test]
    fn token_files_round_trip_and_refuse_ids_over_16_bits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.bin");
        let tokens = vec![0, 1, 50256, 65535];
        write_token_file(&p, &tokens).unwrap();
        assert_eq!(read_token_file(&p).unwrap(), tokens);
        assert!(write_token_file(&p, &[65536]).is_err());
    }

    #[test]
    fn validation_is_the_last_fraction() {
        let tokens: Vec<u32> = (0..1000).collect();
        let (train, val) = split_validation(&tokens, 0.1).unwrap();
        assert_eq!((train.len(), val.len(), val[0]), (900, 100, 900));
        assert!(split_validation(&tokens, 1.0).is_err());
    }
}
