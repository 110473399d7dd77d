"""Capture overhead: a forward pass with the pooled capture vs a plain forward pass, same batches, one run.

    python -m bench.capture_overhead [--model data/models/demo] [--prompts 2000] [--repeats 5]

"Plain" is a second copy of the model loaded from the same files with no hook at all (the capture's model
carries the project's permanent, inert hooks on every neuron module, which cost something even when idle).
Both run the same batches, interleaved, after a warm-up; the medians and their ratio are printed.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch


from core.adapters import neuron_space_for
from core.capture import capture_pooled
from core.facts import load_corpus
from core.generation import encode
from core.hooks import neuron_hooks
from core.loading import load_causal_lm


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="data/models/demo")
    parser.add_argument("--facts", default="data/facts/demo")
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_causal_lm(args.model)
    bare = load_causal_lm(args.model).model  # never given hooks
    texts = [p.text for p in load_corpus(Path(args.facts)).prompts(language="en")][: args.prompts]
    hooks = neuron_hooks(lm.model, neuron_space_for(lm.config))
    out = np.zeros((len(texts), hooks.space.total), dtype=np.float32)

    @torch.no_grad()
    def plain():
        for i in range(0, len(texts), args.batch_size):
            b = encode(lm.tokenizer, texts[i : i + args.batch_size], "right")
            bare(input_ids=b.input_ids, attention_mask=b.attention_mask, position_ids=b.position_ids)

    def captured():
        capture_pooled(hooks, lm.tokenizer, texts, "mean", args.batch_size, out=out)

    plain(), captured()  # warm-up
    times = {"plain": [], "capture": []}
    for _ in range(args.repeats):  # interleaved so both see the same machine state
        for name, fn in (("plain", plain), ("capture", captured)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    assert not bare._forward_hooks and not any(m._forward_hooks or m._forward_pre_hooks for m in bare.modules())
    p, c = statistics.median(times["plain"]), statistics.median(times["capture"])
    print(f"{len(texts)} prompts, batch {args.batch_size}, {hooks.space.total:,} neurons, median of {args.repeats}")
    print(f"plain forward (a model with no hooks): {p:.3f} s ({len(texts) / p:,.0f} prompts/s)")
    print(f"with capture:    {c:.3f} s ({len(texts) / c:,.0f} prompts/s)")
    print(f"overhead ratio:  {c / p:.3f}x")


if __name__ == "__main__":
    main()
