"""One prompt's outcome: the greedy 2-token answer and the gold object's log-probability.

A single teacher-forced pass over prompt + gold gives the gold log-probabilities
and the first greedy token; when that token is the gold's first token, the same
pass already holds the logits for the second greedy token (a causal model sees
the same prefix). Only the other rows need a second, one-step pass. The result
equals plain greedy decoding (tested), at about half the cost.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from core.evaluation import NEW_TOKENS, is_correct
from core.facts import Prompt
from core.generation import Batch, model_device


@dataclass(frozen=True)
class Outcome:
    generated: str
    correct: bool
    gold_first_logprob: float  # log p(first gold token | prompt)
    gold_logprob: float  # log p(all gold tokens | prompt), teacher-forced


def _split_ids(tokenizer, prompt: Prompt) -> tuple[list[int], list[int]]:
    prompt_ids = tokenizer(prompt.text)["input_ids"]
    full_ids = tokenizer(f"{prompt.text} {prompt.gold}")["input_ids"]
    if full_ids[: len(prompt_ids)] == prompt_ids and len(full_ids) > len(prompt_ids):
        return prompt_ids, full_ids[len(prompt_ids):]
    return prompt_ids, tokenizer(f" {prompt.gold}", add_special_tokens=False)["input_ids"]


def _right_padded(rows: list[list[int]], pad_id: int, device) -> Batch:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return Batch(ids.to(device), mask.to(device))


@torch.no_grad()
def _logits(model, batch: Batch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids).logits


@torch.no_grad()
def evaluate_prompts(model, tokenizer, prompts: Sequence[Prompt], batch_size: int = 128) -> list[Outcome]:
    device = model_device(model)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    outcomes: list[Outcome] = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        split = [_split_ids(tokenizer, p) for p in chunk]
        logprobs = _logits(model, _right_padded([p + g for p, g in split], pad, device)).float().log_softmax(-1)
        firsts, seconds, redo = [], [], []
        gold_first, gold_all = [], []
        for row, (p_ids, g_ids) in enumerate(split):
            at = len(p_ids) - 1
            steps = logprobs[row, at : at + len(g_ids)]
            token_lp = steps.gather(1, torch.tensor(g_ids, device=steps.device)[:, None])[:, 0]
            gold_first.append(float(token_lp[0]))
            gold_all.append(float(token_lp.sum()))
            first = int(steps[0].argmax())
            firsts.append(first)
            if first == g_ids[0] and len(g_ids) >= 2:
                seconds.append(int(steps[1].argmax()))
            else:
                seconds.append(None)
                if first != eos:
                    redo.append(row)
        if redo:
            batch = _right_padded([split[r][0] + [firsts[r]] for r in redo], pad, device)
            logits = _logits(model, batch)
            last = batch.attention_mask.sum(1) - 1
            for i, r in enumerate(redo):
                seconds[r] = int(logits[i, last[i]].argmax())
        for row, p in enumerate(chunk):
            new = []
            for token in (firsts[row], seconds[row])[:NEW_TOKENS]:
                if token is None or token == eos:
                    break
                new.append(token)
            text = tokenizer.decode(new, skip_special_tokens=True)
            outcomes.append(Outcome(text, is_correct(text, p.gold), gold_first[row], gold_all[row]))
    return outcomes
