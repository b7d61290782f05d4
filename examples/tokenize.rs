//! Command-line GPT-2 tokenizer.
//!
//! ```text
//! tokenize [--file F] [--vocab DIR] [--allow-special] [--count]   text -> ids
//! tokenize --decode [--file F] [--vocab DIR]                      ids -> bytes
//! tokenize --train --vocab-size N --out DIR [--special S]... [FILES...]
//! ```
//!
//! Encoding reads the input bytes verbatim (stdin, or `--file`; invalid UTF-8 is an error)
//! and prints the ids joined by single spaces, then one newline (`--count`: only the number
//! of tokens and a newline). Special-token strings are plain text unless
//! `--allow-special`. Decoding reads whitespace-separated ids and writes the exact decoded
//! bytes, nothing added. `--vocab DIR` loads another vocabulary (see
//! `Tokenizer::from_dir`); the default is GPT-2's, embedded. Training learns a vocabulary
//! of N tokens from FILES (or the input) and saves it in DIR; the special tokens default
//! to `<|endoftext|>`.
//!
//! `cargo run --release --example tokenize -- --file data/tinyshakespeare.txt --count`

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use gpt2::gpt2_tokenizer::{SpecialTokens, Tokenizer};

#[derive(Parser)]
#[command(about = "GPT-2 byte-level BPE: encode text to ids, decode ids, train a vocabulary")]
struct Args {
    /// Read the input from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Print only the number of tokens.
    #[arg(long, conflicts_with_all = ["decode", "train"])]
    count: bool,
    /// Recognise special tokens such as <|endoftext|> (default: plain text).
    #[arg(long, conflicts_with_all = ["decode", "train"])]
    allow_special: bool,
    /// Decode whitespace-separated ids to bytes.
    #[arg(long, conflicts_with = "train")]
    decode: bool,
    /// Vocabulary directory (tokenizer.json, vocab.json + merges.txt, or encoder.json +
    /// vocab.bpe); default: GPT-2's, embedded.
    #[arg(long, value_name = "DIR", conflicts_with = "train")]
    vocab: Option<PathBuf>,
    /// Train a vocabulary on FILES (or the input) and save it.
    #[arg(long, requires_all = ["vocab_size", "out"])]
    train: bool,
    /// Size of the trained vocabulary, special tokens included.
    #[arg(long, value_name = "N", requires = "train")]
    vocab_size: Option<usize>,
    /// Directory to save the trained vocabulary in.
    #[arg(long, value_name = "DIR", requires = "train")]
    out: Option<PathBuf>,
    /// A special token to append to the trained vocabulary (repeatable; default
    /// <|endoftext|>).
    #[arg(long = "special", value_name = "TOKEN", requires = "train")]
    specials: Vec<String>,
    /// Training text files.
    #[arg(requires = "train")]
    files: Vec<PathBuf>,
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>, String> {
    match file {
        Some(path) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("stdin: {e}"))?;
            Ok(bytes)
        }
    }
}

fn utf8(bytes: Vec<u8>, name: &str) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{name}: input is not valid UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn input_name(file: Option<&Path>) -> String {
    file.map_or("stdin".into(), |p| p.display().to_string())
}

fn train(args: &Args) -> Result<(), String> {
    let (Some(size), Some(out)) = (args.vocab_size, args.out.as_deref()) else {
        unreachable!("clap requires --vocab-size and --out with --train")
    };
    let texts = if args.files.is_empty() {
        vec![utf8(
            read_input(args.file.as_deref())?,
            &input_name(args.file.as_deref()),
        )?]
    } else {
        let read = |p: &PathBuf| utf8(read_input(Some(p))?, &p.display().to_string());
        args.files.iter().map(read).collect::<Result<_, _>>()?
    };
    let specials: Vec<&str> = if args.specials.is_empty() {
        vec!["<|endoftext|>"]
    } else {
        args.specials.iter().map(String::as_str).collect()
    };
    let tok = Tokenizer::train(&texts, size, &specials).map_err(|e| e.to_string())?;
    tok.save(out).map_err(|e| e.to_string())
}

fn run(args: &Args) -> Result<(), String> {
    if args.train {
        return train(args);
    }
    let tok = match &args.vocab {
        Some(dir) => Tokenizer::from_dir(dir).map_err(|e| e.to_string())?,
        None => Tokenizer::gpt2(),
    };
    let input = read_input(args.file.as_deref())?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let io = |e: std::io::Error| format!("stdout: {e}");
    if args.decode {
        let ids = input
            .split(u8::is_ascii_whitespace)
            .filter(|w| !w.is_empty())
            .enumerate()
            .map(|(i, w)| {
                let w = String::from_utf8_lossy(w);
                w.parse::<u32>()
                    .map_err(|_| format!("input word {}: {w:?} is not a token id", i + 1))
            })
            .collect::<Result<Vec<u32>, String>>()?;
        out.write_all(&tok.decode(&ids).map_err(|e| e.to_string())?)
            .map_err(io)?;
    } else {
        let text = utf8(input, &input_name(args.file.as_deref()))?;
        let mode = if args.allow_special {
            SpecialTokens::Allow
        } else {
            SpecialTokens::Text
        };
        let ids = tok
            .encode_with_special(&text, mode)
            .map_err(|e| e.to_string())?;
        if args.count {
            writeln!(out, "{}", ids.len()).map_err(io)?;
        } else {
            let line: Vec<String> = ids.iter().map(u32::to_string).collect();
            writeln!(out, "{}", line.join(" ")).map_err(io)?;
        }
    }
    out.flush().map_err(io)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
