#!/usr/bin/env python3
"""PyTorch CPU timings of the shapes that gpt2-rs's benches measure, for the ratio in the
notes. Run by hand (never by CI), from the repository root, on an otherwise idle machine:

    .venv/bin/python scripts/bench_pytorch.py            # everything (~15 min on 2 cores)
    .venv/bin/python scripts/bench_pytorch.py --only train
    .venv/bin/python scripts/bench_pytorch.py --only generate --threads 1

GPT-2 124M with random weights (transformers' GPT2LMHeadModel, eager attention, all
dropout 0), made here, no download.

train     (benches/train_step.rs): one full step -- forward, cross-entropy, backward,
          clip_grad_norm_(1.0), torch.optim.AdamW (decay on >= 2-D tensors, foreach) --
          at B=4,T=64 and B=8,T=256; ms/step and tokens/s (median of the timed steps).
generate  (benches/generate.rs): prefill of 512 tokens at batch 1 (one forward with
          use_cache=True; tokens/s), then decoding 128 tokens one at a time with the KV
          cache (tokens/s), f32 and bf16 weights (bf16: once, 16 tokens; it is ~50x
          slower than f32 on CPUs without AVX512-BF16/AMX).

Both at 1 and 2 threads (torch.set_num_threads; interop threads 1). Prints a markdown
table; timings are wall-clock medians (time.perf_counter).
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel


def model_124m(dtype=torch.float32):
    torch.manual_seed(0)
    cfg = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager")
    return GPT2LMHeadModel(cfg).to(dtype)


def median_time(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_train(b, t, reps):
    model = model_124m().train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=6e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 50257, (b, t), generator=g)
    y = torch.randint(0, 50257, (b, t), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(x).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    s = median_time(step, warmup=1, reps=reps)
    return s * 1e3, b * t / s


@torch.no_grad()
def bench_generate(dtype, warmup, reps, n_new, prompt_len=512):
    """Median seconds of the 512-token prefill and per decoded token (each repetition
    prefills, then decodes n_new tokens greedily from that cache)."""
    model = model_124m(dtype).eval()
    g = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, 50257, (1, prompt_len), generator=g)
    pre, dec = [], []
    for r in range(warmup + reps):
        t0 = time.perf_counter()
        out = model(prompt, use_cache=True)
        t1 = time.perf_counter()
        past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
        for _ in range(n_new):
            out = model(tok, past_key_values=past, use_cache=True)
            past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t2 = time.perf_counter()
        if r >= warmup:
            pre.append(t1 - t0)
            dec.append((t2 - t1) / n_new)
    return statistics.median(pre), statistics.median(dec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["train", "generate"])
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    args = ap.parse_args()
    torch.set_num_interop_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        if args.only in (None, "train"):
            for b, t, reps in [(4, 64, 5), (8, 256, 3)]:
                ms, tok_s = bench_train(b, t, reps)
                rows.append(f"| train step B={b} T={t} | {threads} | {ms:.0f} ms/step | {tok_s:.0f} |")
                print(rows[-1], flush=True)
        if args.only in (None, "generate"):
            # PyTorch has no fast bf16 GEMM on CPUs without AVX512-BF16/AMX (about 50x
            # slower than f32 on AVX2), so bf16 is timed once, with 16 decoded tokens.
            for name, dtype, warm, reps, n_new in [
                ("f32", torch.float32, 1, 3, 128),
                ("bf16", torch.bfloat16, 0, 1, 16),
            ]:
                pre_s, tok_s = bench_generate(dtype, warm, reps, n_new)
                rows.append(f"| prefill 512 ({name}) | {threads} | {pre_s * 1e3:.0f} ms | {512 / pre_s:.0f} |")
                rows.append(f"| decode batch 1 ({name}) | {threads} | {tok_s * 1e3:.1f} ms/token | {1 / tok_s:.1f} |")
                print("\n".join(rows[-2:]), flush=True)
    print("\n| PyTorch CPU, GPT-2 124M | threads | time | tokens/s |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
