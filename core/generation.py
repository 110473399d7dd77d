"""Batched forward passes and greedy decoding with padding handled explicitly.

Decoding is our own greedy loop rather than `model.generate`, so a checkpoint's
generation config (sampling, temperature, repetition penalty) can never change
an evaluation: method.md asks for plain greedy decoding.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def position_ids(self) -> torch.Tensor:
        # Left padding shifts real tokens right; positions must still start at 0 at the first real token.
        return (self.attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def encode(tokenizer, texts: Sequence[str], padding_side: str = "left", device="cpu") -> Batch:
    previous = tokenizer.padding_side
    tokenizer.padding_side = padding_side
    try:
        enc = tokenizer(list(texts), return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = previous
    return Batch(enc["input_ids"].to(device), enc["attention_mask"].to(device))


def model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def forward_logits(model, batch: Batch) -> torch.Tensor:
    return model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
    ).logits


@dataclass
class Decoded:
    ids: list[list[int]]  # new token ids per text, EOS not included
    first_probs: list[torch.Tensor]  # per text: the next-token distribution after the prompt (float32, CPU)


@torch.no_grad()
def greedy_generate(model, tokenizer, texts: Sequence[str], max_new_tokens: int, batch_size: int = 64) -> list[list[int]]:
    """New token ids per text, greedy, stopping a row at EOS (EOS not included)."""
    return greedy_decode(model, tokenizer, texts, max_new_tokens, batch_size).ids


ALL_DONE_CHECK_EVERY = 8  # steps between the one host sync that asks whether every row has stopped


@torch.no_grad()
def greedy_decode(model, tokenizer, texts: Sequence[str], max_new_tokens: int, batch_size: int = 64,
                  keep_first_probs: bool = False) -> Decoded:
    """Greedy decoding; with `keep_first_probs`, also the first step's full next-token distribution, which the
    prompt's own forward pass already computed. Rows stop at EOS on the device: the loop reads nothing back
    per token (only, every few steps, whether all rows have stopped), and the tokens come back once per batch."""
    results: list[list[int]] = []
    first_probs: list[torch.Tensor] = []
    eos = tokenizer.eos_token_id
    device = model_device(model)
    for start in range(0, len(texts), batch_size):
        batch = encode(tokenizer, texts[start : start + batch_size], "left", device)
        mask, pos = batch.attention_mask, batch.position_ids
        out = model(input_ids=batch.input_ids, attention_mask=mask, position_ids=pos, use_cache=True)
        rows = batch.input_ids.shape[0]
        if keep_first_probs:
            first_probs.extend(out.logits[:, -1, :].float().softmax(-1).cpu())
        tokens = torch.full((rows, max_new_tokens), -1, dtype=torch.long, device=device)
        finished = torch.zeros(rows, dtype=torch.bool, device=device)
        for step in range(max_new_tokens):
            next_ids = out.logits[:, -1, :].argmax(-1)
            if eos is not None:
                finished = finished | (next_ids == eos)
            tokens[:, step] = next_ids.masked_fill(finished, -1)  # -1 from a row's EOS on
            if step == max_new_tokens - 1:
                break
            if eos is not None and (step + 1) % ALL_DONE_CHECK_EVERY == 0 and bool(finished.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
            out = model(
                input_ids=next_ids[:, None], attention_mask=mask, position_ids=pos,
                past_key_values=out.past_key_values, use_cache=True,
            )
        for row in tokens.cpu().tolist():
            results.append(row[: row.index(-1)] if -1 in row else row)
    return Decoded(results, first_probs)


@torch.no_grad()
def next_token_distribution(model, tokenizer, text: str, top: int = 10) -> list[tuple[int, str, float]]:
    """The `top` most likely next tokens: (token id, decoded text, probability)."""
    batch = encode(tokenizer, [text], "left", model_device(model))
    probs = forward_logits(model, batch)[0, -1].float().softmax(-1)
    values, ids = probs.topk(min(top, probs.shape[-1]))
    return [(int(i), tokenizer.decode([int(i)]), float(v)) for v, i in zip(values, ids)]
