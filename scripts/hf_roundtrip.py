#!/usr/bin/env python3
"""Checks that Hugging Face `tokenizers` reads our saved vocabularies back to our encoding,
and writes the fixture `gpt2-tokenizer/tests/fixtures/hf_trained.json` that the Rust test
`hf_fixture` compares against. Run by hand (not by CI), from the repository root:

    cargo build --release --example tokenize
    /work/pyenv/bin/python scripts/hf_roundtrip.py

It needs `tokenizers` (and optionally `tiktoken`) and no network. Steps:
1. Train a 600-token vocabulary on data/tinyshakespeare.txt with our CLI, save it.
2. Load it with `tokenizers` twice: vocab.json + merges.txt (as a ByteLevel BPE, which
   knows nothing of special tokens) and tokenizer.json (special tokens are added tokens).
3. Encode sample texts with both and with our CLI (plain-text special tokens for the
   former, `--allow-special` for the latter); all must agree.
4. Same for GPT-2's own files loaded by `tokenizers` vs our embedded GPT-2 (and tiktoken,
   built from the same local files, if installed), and for the tokenizer.json that
   `tokenizers` writes for GPT-2, loaded by our CLI.
5. Write the fixture (texts and HF's ids).
"""
import json
import os
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer, models, pre_tokenizers, decoders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "target", "release", "examples", "tokenize")
CORPUS = os.path.join(ROOT, "data", "tinyshakespeare.txt")
GPT2_DIR = os.path.join(ROOT, "gpt2-tokenizer", "data")
FIXTURE = os.path.join(ROOT, "gpt2-tokenizer", "tests", "fixtures", "hf_trained.json")
VOCAB_SIZE = 600
SPECIALS = ["<|endoftext|>"]

TEXTS = [
    "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?",
    "I'll tell thee what: we're sure they've gone, isn't it? He'd say I'm right. 'Tis so.",
    "SHOUTING IT'S WE'LL THEY'VE", "numbers 1234567 3.14159 and 2024-06-01",
    "  leading spaces, trailing spaces   ", "tabs\tand\r\nwindows\r\nlines\n\n\n",
    "naïve café Straße — “quotes” … ½", "Привет, мир! Γειά σου Κόσμε",
    "机器学习 日本語 한국어", "emoji 😀👍🏽👨‍👩‍👧‍👦 done", "e\u0301 vs \u00e9",
    "text<|endoftext|>more text<|endoftext|>", "<|endoftext|>", "fn main() { println!(\"hi\"); }",
    "https://example.com/path?q=1&x=%20#frag", "",
]


def cli(args, stdin):
    out = subprocess.run([CLI, *args], input=stdin.encode(), capture_output=True, check=True)
    return [int(x) for x in out.stdout.split()]


def byte_level_bpe(vocab, merges):
    tok = Tokenizer(models.BPE.from_file(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def check(name, expected, got, text):
    if expected != got:
        sys.exit(f"MISMATCH {name} on {text!r}:\n  expected {expected}\n  got      {got}")


def main():
    if not os.path.exists(CLI):
        sys.exit(f"build the CLI first: cargo build --release --example tokenize ({CLI})")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([CLI, "--train", "--vocab-size", str(VOCAB_SIZE), "--out", out, CORPUS], check=True)
        hf_files = byte_level_bpe(os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt"))
        hf_json = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        assert hf_files.get_vocab_size() == VOCAB_SIZE, hf_files.get_vocab_size()
        cases = []
        for text in TEXTS:
            plain = hf_files.encode(text).ids
            special = hf_json.encode(text).ids
            check("trained vocab.json+merges.txt vs ours", plain, cli(["--vocab", out], text), text)
            check("trained tokenizer.json vs ours --allow-special", special,
                  cli(["--vocab", out, "--allow-special"], text), text)
            check("HF decode", text, hf_json.decode(special, skip_special_tokens=False), text)
            cases.append({"text": text, "vocab_merges": plain, "tokenizer_json": special})
        corpus = open(CORPUS, encoding="utf-8").read()
        check("trained, whole corpus", hf_files.encode(corpus).ids, cli(["--vocab", out], corpus), "<corpus>")

    gpt2 = byte_level_bpe(os.path.join(GPT2_DIR, "encoder.json"), os.path.join(GPT2_DIR, "vocab.bpe"))
    for text in TEXTS + [open(CORPUS, encoding="utf-8").read()]:
        check("GPT-2 HF vs ours", gpt2.encode(text).ids, cli([], text), text[:80])
    # A tokenizer.json written by Hugging Face itself (GPT-2, <|endoftext|> added as
    # special), loaded by our CLI: special tokens recognised on both sides.
    gpt2.add_special_tokens(["<|endoftext|>"])
    with tempfile.TemporaryDirectory() as hf_dir:
        gpt2.save(os.path.join(hf_dir, "tokenizer.json"))
        for text in TEXTS:
            check("HF-written GPT-2 tokenizer.json vs ours --allow-special", gpt2.encode(text).ids,
                  cli(["--vocab", hf_dir, "--allow-special"], text), text)
    try:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(GPT2_DIR, "vocab.bpe"), os.path.join(GPT2_DIR, "encoder.json"))
        enc = tiktoken.Encoding("gpt2-local", pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
                                mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
        for text in TEXTS:
            check("GPT-2 tiktoken (python) vs ours", enc.encode_ordinary(text), cli([], text), text)
        print("tiktoken (python) agrees on GPT-2")
    except ImportError:
        print("tiktoken not installed: skipped")

    fixture = {
        "note": "Written by scripts/hf_roundtrip.py: ids from Hugging Face tokenizers for a vocabulary "
                "our CLI trained on data/tinyshakespeare.txt; checked by gpt2-tokenizer/tests/train.rs.",
        "corpus": "data/tinyshakespeare.txt",
        "vocab_size": VOCAB_SIZE,
        "special_tokens": SPECIALS,
        "cases": cases,
    }
    # One case per line, to keep the file short and diffs readable.
    head = json.dumps({k: v for k, v in fixture.items() if k != "cases"}, ensure_ascii=False, indent=1)
    lines = ",\n  ".join(json.dumps(c, ensure_ascii=False) for c in cases)
    with open(FIXTURE, "w", encoding="utf-8") as f:
        f.write(head[:-2] + ',\n "cases": [\n  ' + lines + "\n ]\n}\n")
    print(f"all agree; wrote {os.path.relpath(FIXTURE, ROOT)} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
