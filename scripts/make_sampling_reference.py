#!/usr/bin/env python3
"""Hugging Face's candidate sets for gpt2-rs's sampling tests (run by hand, never by CI).

    .venv/bin/python scripts/make_sampling_reference.py

Applies transformers' own logits processors, in the order `generate` applies them
(RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
TopPLogitsWarper), to hand-made logits rows with ties, negative values and peaked or flat
shapes, and writes tests/fixtures/sampling.json: per case the input, the parameters, the
indices HF keeps (finite after all filters) and the processed logits of those indices;
the input rows are stored once, rounded to 6 decimals (the rounded values are the inputs).
"""
import json
import os

import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "sampling.json")


def rows():
    g = torch.Generator().manual_seed(0)
    yield "peaked", torch.tensor([4.0, 1.0, 0.5, 0.5, -1.0, 2.0, 0.0, -3.0, 1.0, 3.5])
    yield "ties", torch.tensor([1.0, 2.0, 2.0, 2.0, 0.0, 1.0, 2.0, -1.0])
    yield "random-100", torch.randn(100, generator=g) * 2.0
    # No exact ties here: torch.sort is not stable, so which of several exactly equal logits
    # survives a top-p cut is arbitrary in Hugging Face (the "ties" row keeps its ties away
    # from the cut).
    yield "ramp-300", torch.linspace(-3.0, 3.0, 300)
    yield "wide-2000", torch.randn(2000, generator=g) * 3.0


CASES = [
    dict(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0),
    dict(temperature=0.7, top_k=5, top_p=1.0, repetition_penalty=1.0),
    dict(temperature=1.0, top_k=0, top_p=0.9, repetition_penalty=1.0),
    dict(temperature=1.3, top_k=50, top_p=0.5, repetition_penalty=1.0),
    dict(temperature=0.8, top_k=3, top_p=0.95, repetition_penalty=1.3),
    dict(temperature=1.0, top_k=0, top_p=0.3, repetition_penalty=2.0),
]


def main():
    out, inputs = [], {}
    for name, logits in rows():
        inputs[name] = [round(float(x), 6) for x in logits]
        logits = torch.tensor(inputs[name])
        history = [0, 1, 1, 5, len(logits) - 1]
        for p in CASES:
            procs = []
            if p["repetition_penalty"] != 1.0:
                procs.append(RepetitionPenaltyLogitsProcessor(p["repetition_penalty"]))
            procs.append(TemperatureLogitsWarper(p["temperature"]))
            if p["top_k"] > 0:
                procs.append(TopKLogitsWarper(p["top_k"]))
            if p["top_p"] < 1.0:
                procs.append(TopPLogitsWarper(p["top_p"]))
            ids = torch.tensor([history])
            scores = logits.clone().unsqueeze(0)
            for proc in procs:
                scores = proc(ids, scores)
            scores = scores[0]
            kept = [i for i in range(len(scores)) if torch.isfinite(scores[i])]
            out.append(dict(
                row=name, params=p, history=history, kept=kept, kept_logits=[float(scores[i]) for i in kept],
            ))
    with open(OUT, "w") as f:
        json.dump({"generated_by": "scripts/make_sampling_reference.py", "rows": inputs, "cases": out}, f)
        f.write("\n")
    print(f"{len(out)} cases")


if __name__ == "__main__":
    main()
