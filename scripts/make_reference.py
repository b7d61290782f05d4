#!/usr/bin/env python3
"""Reference data for gpt2-rs's model tests, made with PyTorch + Hugging Face transformers.

Run by hand (never by CI), from the repository root:

    python3 -m venv .venv && .venv/bin/pip install torch transformers safetensors
    .venv/bin/python scripts/make_reference.py

It writes two tiny random GPT-2s with `save_pretrained` under tests/fixtures/ and, next to
each, what PyTorch computes for them. Weights are stored in f32; every reference quantity is
computed from those exact f32 weights in **float64** (so it is the true value, not PyTorch's
own rounding), with all dropout off and eager attention, then stored as f32.

Fixtures:
  tiny-small/  vocab 211, n_embd 96, 3 heads (head size 32), 2 layers, n_ctx 64:
               non-power-of-two sizes, small enough to store everything.
  tiny-vocab/  the full 50257-token vocabulary, n_embd 16, 2 heads, 2 layers, n_ctx 32.

Per fixture, `reference.safetensors` holds:
  input_ids (B,T) i64, targets (B,T) i64, logits (B,T,V), loss (),
  hidden.{0..L} (B,T,C)  -- HF's hidden_states: embeddings, after each block (the last one
                           after ln_f, as HF returns it),
  grad.<name>            -- d loss / d param after loss.backward(), HF parameter names,
  adamw.loss (S,), adamw.grad_norm (S,), adamw.<name> -- 10 AdamW steps (see below; the
                           learning rate is per fixture, small enough that PyTorch's own
                           float32 run stays within 5e-5 of the float64 one, which the
                           script asserts -- at lr 1e-2 tiny-small's loss falls from 6.6
                           to 0.008 and float32 drifts 2e-4 from float64),
and `reference.json` holds the greedy continuation (prompt ids, generated ids, the smallest
top-1/top-2 logit margin seen) and the hyper-parameters used.

For tiny-vocab the (V,C) wte-shaped tensors (grad and AdamW result) are stored only on a
fixed subset of rows (`wte_rows`) to keep the repository small; tests compare those rows.

tiny-small also gets `model_llmc.bin` (llm.c's checkpoint format, written here
independently of our Rust code), `model-bf16.safetensors` and `model-f16.safetensors` (the same
weights rounded) with `reference_lowp.safetensors` (logits for those rounded weights).
"""
import copy
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
ADAMW = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, grad_clip=1.0, steps=10)


def make_model(seed, **cfg):
    torch.manual_seed(seed)
    config = GPT2Config(
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation="eager", **cfg
    )
    model = GPT2LMHeadModel(config).eval()
    # Larger-than-default init (GPT-2's is N(0, 0.02)) so that bugs change the outputs.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model


def f64(model):
    return copy.deepcopy(model).double().eval()


def loss_of(model, x, y):
    logits = model(x).logits
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def greedy(model, prompt, n_new, eos):
    """Greedy decoding with HF's KV cache (use_cache=True), one token at a time, checking that
    the winner beats the runner-up by a clear margin so that f32 code must agree."""
    ids = list(prompt)
    out = model(torch.tensor([ids]), use_cache=True)
    past = out.past_key_values
    logits = out.logits[0, -1]
    new, min_margin = [], float("inf")
    for _ in range(n_new):
        top2 = torch.topk(logits, 2).values
        min_margin = min(min_margin, float(top2[0] - top2[1]))
        tok = int(torch.argmax(logits))
        new.append(tok)
        if tok == eos:
            break
        out = model(torch.tensor([[tok]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[0, -1]
    return new, min_margin


def adamw_steps(model, x, y, hp):
    """hp['steps'] steps of torch.optim.AdamW on one batch: decay on >= 2-D parameters only
    (as nanoGPT), global-norm clipping, constant lr."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=hp["lr"], betas=hp["betas"], eps=hp["eps"],
    )
    losses, norms = [], []
    for _ in range(hp["steps"]):
        opt.zero_grad()
        loss = loss_of(model, x, y)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), hp["grad_clip"])))
        losses.append(float(loss.detach()))
        opt.step()
    return losses, norms


def check_adamw_conditioning(model, x, y, hp, ref_model):
    """The same steps in float32 must stay within 5e-5 (max|a-b|/max|b| per tensor) of the
    float64 run, so that a float32 implementation can be held to 1e-4. The attention's key
    bias is skipped: its gradient is exactly zero (softmax ignores a shift shared by a row),
    and float32 rounding noise divided by AdamW's sqrt(v) moves it by up to lr per step."""
    m32 = copy.deepcopy(model).float()
    adamw_steps(m32, x, y, hp)
    for (n, p), (_, q) in zip(m32.named_parameters(), ref_model.named_parameters()):
        if n.endswith("attn.c_attn.bias"):
            c = p.numel() // 3
            p, q = torch.cat([p[:c], p[2 * c:]]), torch.cat([q[:c], q[2 * c:]])
        err = float((p.double() - q).abs().max() / q.abs().max())
        assert err <= 5e-5, f"AdamW run is ill-conditioned in float32: {n} drifts {err:.2e}"


def write_llmc(model, path):
    """llm.c's gpt2_124M.bin layout: 256 x i32 header (magic 20240326, version 3 = f32, maxT, V,
    L, NH, C, Vp), then the parameters in llm.c's order, nn.Linear (out, in) weights, and wte
    padded with zero rows to Vp = V rounded up to a multiple of 128."""
    c = model.config
    vp = (c.vocab_size + 127) // 128 * 128
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [20240326, 3, c.n_positions, c.vocab_size, c.n_layer, c.n_head, c.n_embd, vp]
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    wte = torch.zeros(vp, c.n_embd)
    wte[: c.vocab_size] = sd["transformer.wte.weight"]
    order = [wte, sd["transformer.wpe.weight"]]
    per_layer = [
        ("ln_1.weight", False), ("ln_1.bias", False), ("attn.c_attn.weight", True), ("attn.c_attn.bias", False),
        ("attn.c_proj.weight", True), ("attn.c_proj.bias", False), ("ln_2.weight", False), ("ln_2.bias", False),
        ("mlp.c_fc.weight", True), ("mlp.c_fc.bias", False), ("mlp.c_proj.weight", True), ("mlp.c_proj.bias", False),
    ]
    for name, conv1d in per_layer:
        for i in range(c.n_layer):
            t = sd[f"transformer.h.{i}.{name}"]
            order.append(t.t().contiguous() if conv1d else t)  # Conv1D (in,out) -> Linear (out,in)
    order += [sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"]]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for t in order:
            f.write(t.contiguous().numpy().astype("<f4").tobytes())


def make_fixture(name, seed, cfg, batch, seq, prompt_len, n_new, wte_rows=None, lowp=False, adamw=ADAMW):
    out_dir = os.path.join(ROOT, name)
    os.makedirs(out_dir, exist_ok=True)
    model = make_model(seed, **cfg)
    model.save_pretrained(out_dir, safe_serialization=True)
    ref = f64(model)
    V = cfg["vocab_size"]
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, V, (batch, seq + 1), generator=g)
    x, y = tokens[:, :-1], tokens[:, 1:]

    tensors = {"input_ids": x.contiguous(), "targets": y.contiguous()}
    out = ref(x, output_hidden_states=True)
    tensors["logits"] = out.logits.float()
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden.{i}"] = h.float()
    loss = loss_of(ref, x, y)
    tensors["loss"] = loss.detach().float().reshape(())
    loss.backward()

    def keep(name, t):
        if wte_rows is not None and name == "transformer.wte.weight":
            return t[wte_rows]
        return t

    for n, p in ref.named_parameters():
        tensors[f"grad.{n}"] = keep(n, p.grad).float()

    opt_model = f64(model)
    losses, norms = adamw_steps(opt_model, x, y, adamw)
    check_adamw_conditioning(model, x, y, adamw, opt_model)
    tensors["adamw.loss"] = torch.tensor(losses, dtype=torch.float32)
    tensors["adamw.grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    for n, p in opt_model.named_parameters():
        tensors[f"adamw.{n}"] = keep(n, p.detach()).float()
    if wte_rows is not None:
        tensors["wte_rows"] = torch.tensor(wte_rows, dtype=torch.int64)

    # Greedy continuation: find a prompt whose every step has a clear top-1/top-2 margin.
    eos = cfg.get("eos_token_id", 50256)
    for attempt in range(100):
        gp = torch.Generator().manual_seed(seed + 100 + attempt)
        prompt = torch.randint(0, V, (prompt_len,), generator=gp).tolist()
        with torch.no_grad():
            new, margin = greedy(ref, prompt, n_new, eos)
        if margin > 1e-3:
            break
    else:
        raise SystemExit(f"{name}: no prompt with a clear greedy margin")

    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "reference.safetensors"))
    meta = {
        "generated_by": "scripts/make_reference.py",
        "torch": torch.__version__,
        "config": cfg,
        "batch": batch,
        "seq": seq,
        "loss": float(loss),
        "greedy": {"prompt": prompt, "generated": new, "min_top2_margin": margin, "eos": eos},
        "adamw": adamw,
    }
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")

    if lowp:
        write_llmc(model, os.path.join(out_dir, "model_llmc.bin"))
        low = {}
        for dtype, tag in [(torch.bfloat16, "bf16"), (torch.float16, "f16")]:
            m = copy.deepcopy(model).to(dtype)
            sd = {k: v.contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight"}
            save_file(sd, os.path.join(out_dir, f"model-{tag}.safetensors"), metadata={"format": "pt"})
            with torch.no_grad():
                low[f"logits.{tag}"] = m.double()(x).logits.float()
        save_file(low, os.path.join(out_dir, "reference_lowp.safetensors"))
    print(f"{name}: loss {float(loss):.6f}, greedy {len(new)} tokens, min margin {margin:.4f}")


def main():
    torch.set_grad_enabled(True)
    make_fixture(
        "tiny-small", seed=1,
        cfg=dict(vocab_size=211, n_positions=64, n_embd=96, n_layer=2, n_head=3, bos_token_id=210, eos_token_id=210),
        batch=2, seq=33, prompt_len=7, n_new=20, lowp=True, adamw=dict(ADAMW, lr=1e-3),
    )
    rows = sorted(set(list(range(0, 256)) + list(range(50257 - 64, 50257)) + list(range(1000, 50000, 97))))
    make_fixture(
        "tiny-vocab", seed=2,
        cfg=dict(vocab_size=50257, n_positions=32, n_embd=16, n_layer=2, n_head=2),
        batch=2, seq=5, prompt_len=5, n_new=12, wte_rows=rows,
    )


if __name__ == "__main__":
    main()
