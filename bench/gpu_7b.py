"""Llama-2-7B's exact shape on one GPU, with RANDOM weights: capture, scoring, ablated generation, memory.

    python -m bench.gpu_7b                                  # on a CUDA machine: Llama-2-7B config, bfloat16
    python -m bench.gpu_7b --shape small --device cpu --dtype float32   # a quick check of the script itself

Random weights say nothing about neurons; they cost exactly what trained ones
cost. Printed: capture throughput (prompts/s, tokens/s) through the project's
own hooks and pooling, against the arithmetic limit (2 x parameters FLOPs per
token at --peak-tflops); AP scoring of every neuron for 12 relations with the
sorts on the GPU; greedy generation latency with and without 3,000 neurons
switched off, against the memory-bandwidth limit (all weights read once per
token at --peak-tbps); and peak GPU memory.
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
from core.generation import greedy_generate
from core.hooks import neuron_hooks
from core.score_stream import LabelledRows, score_stream
from precompute.synthetic_run import SHAPES, llama_config


def word_tokenizer(vocab: int):
    """A tokenizer where "w17" is token 17: exact prompt lengths without a trained vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {"<pad>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, vocab)}}
    tok = Tokenizer(models.WordLevel(words, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def synced(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    synced(device)
    t0 = time.perf_counter()
    fn()
    synced(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama-2-7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--prompts", type=int, default=2048, help="prompts captured")
    parser.add_argument("--tokens", type=int, default=20, help="tokens per prompt")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--score-prompts", type=int, default=6000, help="capture rows scored (the paper: ~6,000)")
    parser.add_argument("--relations", type=int, default=12)
    parser.add_argument("--ablate", type=int, default=3000)
    parser.add_argument("--new-tokens", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 arithmetic limit")
    parser.add_argument("--peak-tbps", type=float, default=4.8, help="memory bandwidth limit")
    args = parser.parse_args()
    from transformers import LlamaForCausalLM

    config = llama_config(SHAPES[args.shape], max_position_embeddings=4096, pad_token_id=0, bos_token_id=1,
                          eos_token_id=2)
    vocab = config.vocab_size
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM(config).to(dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    matmul_params = params - model.get_input_embeddings().weight.numel()  # embeddings are a lookup, not a matmul
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    space = neuron_space_for(config, "paper")
    hooks = neuron_hooks(model, space)
    tokenizer = word_tokenizer(vocab)
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{t}" for t in rng.integers(3, vocab, args.tokens)) for _ in range(args.prompts)]
    print(f"RANDOM WEIGHTS, {args.shape} config: {params / 1e9:.2f} B parameters, {space.total:,} neurons, "
          f"{args.dtype} on {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'})")

    capture_pooled(hooks, tokenizer, texts[: args.batch], batch_size=args.batch)  # warm-up
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    out = np.empty((args.prompts, space.total), dtype=np.float32)
    seconds = timed(lambda: capture_pooled(hooks, tokenizer, texts, batch_size=args.batch, out=out), args.device)
    tokens = args.prompts * args.tokens
    achieved = 2 * matmul_params * tokens / seconds / 1e12
    print(f"capture: {args.prompts / seconds:,.0f} prompts/s, {tokens / seconds:,.0f} tokens/s "
          f"(batch {args.batch} x {args.tokens} tokens); {achieved:,.1f} TFLOP/s = "
          f"{achieved / args.peak_tflops:.1%} of {args.peak_tflops:g}")
    plain = timed(lambda: model(input_ids=torch.randint(3, vocab, (args.batch, args.tokens), device=args.device)),
                  args.device)
    with_hooks = timed(lambda: capture_pooled(hooks, tokenizer, texts[: args.batch], batch_size=args.batch), args.device)
    print(f"  one batch: plain forward {plain * 1000:.1f} ms, with capture {with_hooks * 1000:.1f} ms "
          f"({with_hooks / plain:.2f}x)")

    rows = np.resize(out, (args.score_prompts, space.total)) if args.score_prompts != args.prompts else out
    set_size = min(1500, len(rows))  # the paper's sets: 300 positives and 4x as many negatives
    sets = {f"relation_{r}": LabelledRows(np.sort(rng.choice(len(rows), set_size, replace=False)),
                                          np.arange(set_size) < set_size // 5) for r in range(args.relations)}
    scoring = timed(lambda: score_stream(rows, sets, np.arange(len(rows), dtype=np.int32), device=args.device),
                    args.device)
    print(f"scoring: {space.total:,} neurons x {args.relations} relations over {len(rows):,} captured prompts "
          f"in {scoring:.1f} s (AP sorts on {args.device})")

    space_ids = rng.choice(space.total, min(args.ablate, space.total), replace=False)
    neurons = [space.neuron(int(i)) for i in space_ids]
    for batch in (1, 32):
        batch_texts = (texts * 32)[:batch]
        runs = {}
        for label in ("unablated", "ablated"):
            samples = []
            for _ in range(3):
                if label == "ablated":
                    def go():
                        with hooks.ablate(neurons):
                            greedy_generate(model, tokenizer, batch_texts, args.new_tokens, batch_size=batch)
                else:
                    def go():
                        greedy_generate(model, tokenizer, batch_texts, args.new_tokens, batch_size=batch)
                samples.append(timed(go, args.device))
            runs[label] = statistics.median(samples)
        per_token = runs["unablated"] / args.new_tokens
        floor = weight_bytes / (args.peak_tbps * 1e12)
        print(f"generation, batch {batch}, {args.new_tokens} new tokens: unablated {runs['unablated'] * 1000:.0f} ms, "
              f"ablated ({len(neurons):,} neurons off) {runs['ablated'] * 1000:.0f} ms "
              f"({runs['ablated'] / runs['unablated']:.2f}x); {per_token * 1000:.1f} ms/token against a "
              f"{floor * 1000:.2f} ms/token bandwidth floor ({floor / per_token:.0%} of it)")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB "
              f"(weights {weight_bytes / 2**30:.1f} GiB)")


if __name__ == "__main__":
    main()
