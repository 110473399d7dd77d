"""Greedy 2-token prefix accuracy (method.md, Evaluation)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from core.facts import Prompt
from core.generation import greedy_generate

NEW_TOKENS = 2


def is_correct(generated: str, gold: str) -> bool:
    """The stripped generation is a non-empty, case-insensitive prefix of the gold object."""
    text = generated.strip().lower()
    return bool(text) and gold.strip().lower().startswith(text)


@dataclass(frozen=True)
class Judged:
    prompt: Prompt
    generated: str
    correct: bool


def judge_prompts(model, tokenizer, prompts: Sequence[Prompt], batch_size: int = 64, new_tokens: int = NEW_TOKENS) -> list[Judged]:
    ids = greedy_generate(model, tokenizer, [p.text for p in prompts], new_tokens, batch_size)
    texts = [tokenizer.decode(t, skip_special_tokens=True) for t in ids]
    return [Judged(p, t, is_correct(t, p.gold)) for p, t in zip(prompts, texts)]