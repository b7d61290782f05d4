#!/usr/bin/env python3
"""Checks that a model directory written by gpt2-rs (a training checkpoint `OUT/step-N`, or
an export such as models/shakespeare) loads in Hugging Face transformers and computes what
our own code computes. Run by hand (never by CI), from the repository root, after
`cargo build --release --example eval --example generate`:

    .venv/bin/python scripts/check_checkpoint.py models/shakespeare
    .venv/bin/python scripts/check_checkpoint.py runs/shakespeare/step-400

1. `GPT2LMHeadModel.from_pretrained(DIR)` loads it with no missing or unexpected weights
   (the tied lm_head is rebuilt from wte), and its tokenizer loads with
   `PreTrainedTokenizerFast(tokenizer_file=DIR/tokenizer.json)` and round-trips a text.
2. The mean loss over that text (its ids, written as an llm.c token file) from
   `examples/eval` equals transformers' (computed in float64 from the same weights) to 1e-4
   relative, in the same windows.
3. Greedy continuations from `examples/generate --temperature 0 --emit-ids` equal
   transformers' (float64, use_cache=True) wherever its top-1/top-2 margin exceeds 1e-3.
"""
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

TEXT = (
    "ROMEO:\nBut, soft! what light through yonder window breaks?\n"
    "It is the east, and Juliet is the sun.\n\nJULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n"
)


def run(*args):
    out = subprocess.run(list(args), check=True, capture_output=True, text=True)
    return out.stdout


def main():
    d = sys.argv[1]
    model, info = GPT2LMHeadModel.from_pretrained(d, output_loading_info=True, attn_implementation="eager")
    bad = {k: v for k, v in info.items() if v and k != "missing_keys"}
    missing = [k for k in info["missing_keys"] if k != "lm_head.weight"]
    assert not bad and not missing, f"loading problems: {info}"
    model = model.double().eval()
    assert torch.equal(model.lm_head.weight, model.transformer.wte.weight), "lm_head is not tied"
    print(f"1. transformers loads {d}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"stored as {getattr(model.config, 'dtype', None) or getattr(model.config, 'torch_dtype', '?')}")

    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
    ids = tok.encode(TEXT)
    assert tok.decode(ids) == TEXT, "the tokenizer does not round-trip"
    n_ctx = model.config.n_positions
    seq = min(n_ctx, len(ids) - 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "text.bin")
        with open(path, "wb") as f:
            header = [20240520, 1, len(ids)] + [0] * 253
            f.write(struct.pack("<256i", *header))
            f.write(struct.pack(f"<{len(ids)}H", *ids))
        out = run("target/release/examples/eval", "--model", d, "--data", path, "--seq", str(seq), "--batch", "1")
    ours = {k: float(v) for k, v in (line.split() for line in out.strip().splitlines())}
    # The same windows as eval.rs: T+1 tokens from multiples of T, then the leftovers.
    nats, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, seq):
            w = torch.tensor([ids[start : min(start + seq + 1, len(ids))]])
            logits = model(w[:, :-1]).logits
            nats += float(F.cross_entropy(logits[0], w[0, 1:], reduction="sum"))
            count += w.shape[1] - 1
    theirs = nats / count
    rel = abs(ours["loss"] - theirs) / theirs
    print(f"2. loss over {count} tokens: ours {ours['loss']:.6f}, transformers {theirs:.6f} (rel. diff {rel:.1e})")
    assert rel <= 1e-4, "losses differ"

    prompt = ids[:12]
    ours_gen = [int(x) for x in run(
        "target/release/examples/generate", "--model", d, "--prompt-ids", " ".join(map(str, prompt)),
        "--temperature", "0", "--emit-ids", "--max-tokens", "24",
    ).split()]
    with torch.no_grad():
        out = model(torch.tensor([prompt]), use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1]
        for i, t in enumerate(ours_gen):
            top2 = torch.topk(logits, 2)
            margin = float(top2.values[0] - top2.values[1])
            want = int(top2.indices[0])
            if want != t:
                assert margin <= 1e-3, f"greedy token {i}: ours {t}, transformers {want} (margin {margin:.2e})"
                print(f"   token {i}: tie within {margin:.1e}, stopping the comparison there")
                break
            out = model(torch.tensor([[t]]), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1]
    print(f"3. greedy continuation of {len(prompt)} prompt tokens: {len(ours_gen)} tokens equal: {tok.decode(ours_gen)!r}")
    print("OK")


if __name__ == "__main__":
    main()
