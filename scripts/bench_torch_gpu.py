#!/usr/bin/env python3
"""The yardstick of our CUDA kernels, run on the GPU machine (which has PyTorch).

    python3 scripts/bench_torch_gpu.py                  # time PyTorch on our bench cases
    python3 scripts/bench_torch_gpu.py --summary LOG... # % of the yardstick per case

The first form times, on the cases of benches/cuda_matmul.rs and benches/cuda_attention.rs:
torch.addmm / addmm_ (cuBLAS; bias and accumulation as our kernels do them) for each matmul
case, in f32 with TF32 off for the f32 cases (the yardstick of v1, v2) and in bf16 for the
bf16 ones (v3, v4); F.scaled_dot_product_attention, causal, on views of a packed
(B, T, 3C) qkv as ours reads it, forward and backward (autograd.grad on a kept graph);
decoding one token against a KV cache; and transformers' GPT-2 generation and training
step on the cases of benches/cuda_gpt2.rs (if transformers is installed). It prints lines in the format of our benches:
`torch <case> <us> us <TFLOP/s> TFLOP/s` (or GB/s). Timing as ours: wall clock around
enough calls for about 0.2 s between two synchronisations, after a warm-up; random inputs.

The second form reads bench logs (ours and this script's) and prints, per case, each
implementation's time and its % of torch's throughput.
"""
import re
import sys
import time

B, NH, HS = 16, 12, 64
LAYERS = [(768, 2304), (768, 768), (768, 3072), (3072, 768)]
HEAD = (768, 50304)
LINE = re.compile(r"^(\S+)\s+(.+?)\s+([\d.]+) us\s+([\d.]+) (TFLOP/s|GB/s|tok/s)\s*$")


def report(case, secs, amount, unit="TFLOP/s"):
    scale = {"TFLOP/s": 1e12, "GB/s": 1e9, "tok/s": 1.0}[unit]
    print(f"{'torch':<8} {case:<40} {secs * 1e6:>10.1f} us {amount / secs / scale:>8.1f} {unit}", flush=True)


def timed(torch, fn):
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    once = time.perf_counter() - start
    iters = int(min(max(0.2 / once, 3), 1000))
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters


def matmul_cases():
    cases = []
    for m in (4096, 16384):
        cases += [((m, k, n), "InOut") for k, n in LAYERS]
        cases.append(((m, *HEAD), "OutIn"))
    cases.append(((4096, 4096, 4096), "InOut"))
    return cases


def bench_matmul(torch):
    torch.backends.cuda.matmul.allow_tf32 = False
    for (m, k, n), layout in matmul_cases():
        flops = 2.0 * m * k * n
        for dtype, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            x = torch.rand(m, k, device="cuda", dtype=dtype) * 2 - 1
            w = torch.rand(*((k, n) if layout == "InOut" else (n, k)), device="cuda", dtype=dtype) * 2 - 1
            bias = torch.rand(n, device="cuda", dtype=dtype) * 2 - 1
            wk = w if layout == "InOut" else w.t()  # (K, N) view
            y = torch.empty(m, n, device="cuda", dtype=dtype)
            case = f"{layout} {name} M={m} K={k} N={n}"
            report(f"fwd {case}", timed(torch, lambda: torch.addmm(bias, x, wk, out=y)), flops)
            if name == "f32" or m != 16384:
                continue
            dy = torch.rand(m, n, device="cuda", dtype=dtype) * 2 - 1
            dx = torch.zeros(m, k, device="cuda", dtype=dtype)
            dw = torch.zeros_like(w)
            report(f"dX {case}", timed(torch, lambda: dx.addmm_(dy, wk.t())), flops)
            if layout == "InOut":
                report(f"dW {case}", timed(torch, lambda: dw.addmm_(x.t(), dy)), flops)
            else:
                report(f"dW {case}", timed(torch, lambda: dw.addmm_(dy.t(), x)), flops)
            del dy, dx, dw
        del x, w, y
        torch.cuda.empty_cache()


def bench_attention(torch):
    import torch.nn.functional as F

    c = NH * HS
    for t in (256, 1024, 4096):
        fwd_flops = 4.0 * B * NH * t * t * HS / 2
        qkv = (torch.rand(B, t, 3 * c, device="cuda", dtype=torch.bfloat16) * 2 - 1).requires_grad_()
        q, k, v = qkv.view(B, t, 3, NH, HS).permute(2, 0, 3, 1, 4)  # each (B, NH, T, HS)
        case = f"B={B} T={t} NH={NH} HS={HS}"
        with torch.no_grad():
            secs = timed(torch, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        report(f"attn fwd {case}", secs, fwd_flops)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        dout = torch.rand_like(out)
        secs = timed(torch, lambda: torch.autograd.grad(out, qkv, dout, retain_graph=True))
        report(f"attn bwd {case}", secs, 2.5 * fwd_flops)
        del qkv, q, k, v, out, dout
        torch.cuda.empty_cache()
    for kv_len in (128, 1024):
        q = torch.rand(1, NH, 1, HS, device="cuda", dtype=torch.bfloat16)
        kv = torch.rand(2, kv_len, NH, HS, device="cuda", dtype=torch.bfloat16).permute(0, 2, 1, 3)
        with torch.no_grad():
            secs = timed(torch, lambda: F.scaled_dot_product_attention(q, kv[0:1], kv[1:2]))
        report(f"decode B=1 kv_len={kv_len} NH={NH} HS={HS}", secs, 2.0 * kv_len * c * 2, "GB/s")


def summary(paths):
    rows = {}  # case -> {impl: (us, rate, unit)}
    order = []
    for path in paths:
        for line in open(path, errors="replace"):
            m = LINE.match(line.strip())
            if not m:
                continue
            imp, case, us, rate, unit = m.group(1), m.group(2), float(m.group(3)), float(m.group(4)), m.group(5)
            if case not in rows:
                rows[case] = {}
                order.append(case)
            rows[case][imp] = (us, rate, unit)
    print(f"{'case':<40} {'impl':<6} {'us':>10} {'rate':>9}  % of torch")
    for case in order:
        impls = rows[case]
        base = impls.get("torch")
        for imp, (us, rate, unit) in impls.items():
            if imp == "torch":
                continue
            pct = f"{100.0 * rate / base[1]:5.0f}%" if base and base[1] > 0 else "    -"
            print(f"{case:<40} {imp:<6} {us:>10.1f} {rate:>9.1f}  {pct}  {unit}")
        if base:
            print(f"{case:<40} {'torch':<6} {base[0]:>10.1f} {base[1]:>9.1f}   100%  {base[2]}")


def bench_generate(torch):
    """transformers' GPT-2 124M (random weights, eager attention) on the cases of
    benches/cuda_gpt2.rs: prefill of 512 tokens, then 32 decoding steps with the KV
    cache after a 64-token prompt, sampling each token; µs per token. Skipped when transformers is missing."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        print("SKIP torch generate: transformers is not installed", file=sys.stderr)
        return
    for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(attn_implementation="eager")).to("cuda", dtype).eval()
        tokens = torch.randint(0, 50257, (1, 512), device="cuda")
        with torch.no_grad():
            secs = timed(torch, lambda: model(tokens, use_cache=True))
            report(f"generate 124M {name} prefill 512", secs / 512, 1.0, "tok/s")

            def decode(batch):
                """Seconds per generated token (of all sequences) over 32 steps, each token
                sampled with temperature 1 and top-k 50 (as benches/cuda_gpt2.rs) and fed back."""
                rows = tokens[:, :64].expand(batch, 64).contiguous()
                out = model(rows, use_cache=True)
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(32):
                    logits = out.logits[:, -1].float()
                    kth = torch.topk(logits, 50).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                    nxt = torch.multinomial(torch.softmax(logits, -1), 1)
                    out = model(nxt, past_key_values=out.past_key_values, use_cache=True)
                torch.cuda.synchronize()
                return (time.perf_counter() - start) / (32 * batch)

            for batch in (1, 16):
                decode(batch)
                per_token = sorted(decode(batch) for _ in range(5))[2]
                report(f"generate 124M {name} decode B={batch}", per_token, 1.0, "tok/s")
        del model
        torch.cuda.empty_cache()


def bench_train(torch):
    """transformers' GPT-2 124M training step at B=16, T=1024 (bf16 autocast, SDPA
    attention, dropout 0, fused AdamW, clipping at 1.0), on the case of
    benches/cuda_gpt2.rs; µs per token. Skipped when transformers is missing."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        print("SKIP torch train: transformers is not installed", file=sys.stderr)
        return
    torch.manual_seed(0)
    cfg = GPT2Config(attn_implementation="sdpa", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    x = torch.randint(0, 50257, (16, 1024), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    secs = timed(torch, step)
    report("train 124M B=16 T=1024", secs / (16 * 1024), 1.0, "tok/s")
    del model, opt
    torch.cuda.empty_cache()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--summary":
        summary(sys.argv[2:])
        return
    import torch

    if not torch.cuda.is_available():
        print("SKIP bench_torch_gpu: torch sees no CUDA device", file=sys.stderr)
        sys.exit(1)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}", flush=True)
    bench_matmul(torch)
    bench_attention(torch)
    bench_generate(torch)
    bench_train(torch)


if __name__ == "__main__":
    main()
