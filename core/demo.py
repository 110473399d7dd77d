"""Where the embedded default lives, and the one-prompt readout the first app page shows."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.generation import greedy_generate, next_token_distribution

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL_DIR = REPO_ROOT / "data" / "models" / "demo"
DEMO_CORPUS_DIR = REPO_ROOT / "data" / "facts" / "demo"

MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 20


@dataclass(frozen=True)
class PromptReadout:
    next_tokens: list[tuple[int, str, float]]  # (token id, text, probability), most likely first
    continuation_ids: list[int]
    continuation: str


def read_prompt(lm, prompt: str, top: int = 10, new_tokens: int = MAX_NEW_TOKENS) -> PromptReadout:
    if not prompt.strip():
        raise ValueError("the prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"the prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}")
    new_tokens = max(1, min(int(new_tokens), MAX_NEW_TOKENS))
    ids = greedy_generate(lm.model, lm.tokenizer, [prompt], new_tokens)[0]
    return PromptReadout(
        next_token_distribution(lm.model, lm.tokenizer, prompt, top),
        ids,
        lm.tokenizer.decode(ids, skip_special_tokens=True),
    )
