"""The live lab: one prompt read by the model with and without an ablation, and its per-relation activity."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from core.capture import capture_pooled
from core.generation import greedy_generate, next_token_distribution
from core.hooks import NeuronHooks
from core.neurons import NeuronId

MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 20
MAX_ABLATED = 50_000
TOP_TOKENS = 10


class LabInputError(ValueError):
    """A request the lab refuses, with the reason shown to the user."""


@dataclass(frozen=True)
class PromptReadout:
    next_tokens: list[tuple[int, str, float]]  # (token id, text, probability), most likely first
    continuation_ids: list[int]
    continuation: str


def check_prompt(prompt: str) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise LabInputError("The prompt is empty: type some text for the model to continue.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise LabInputError(f"The prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}.")
    return prompt


def read_prompt(lm, prompt: str, top: int = TOP_TOKENS, new_tokens: int = MAX_NEW_TOKENS) -> PromptReadout:
    prompt = check_prompt(prompt)
    new_tokens = max(1, min(int(new_tokens), MAX_NEW_TOKENS))
    ids = greedy_generate(lm.model, lm.tokenizer, [prompt], new_tokens)[0]
    return PromptReadout(next_token_distribution(lm.model, lm.tokenizer, prompt, top), ids,
                         lm.tokenizer.decode(ids, skip_special_tokens=True))


def read_prompt_ablated(lm, hooks: NeuronHooks, prompt: str, neurons: Sequence[NeuronId],
                        top: int = TOP_TOKENS, new_tokens: int = MAX_NEW_TOKENS) -> PromptReadout:
    if len(neurons) > MAX_ABLATED:
        raise LabInputError(f"{len(neurons):,} neurons selected; the lab switches off at most {MAX_ABLATED:,} at once.")
    with hooks.ablate(neurons):
        return read_prompt(lm, prompt, top, new_tokens)


def token_changes(baseline: list[int], ablated: list[int]) -> list[bool]:
    """For each ablated token: True where it differs from the baseline token at the same position."""
    return [i >= len(baseline) or token != baseline[i] for i, token in enumerate(ablated)]


def compare_next_tokens(base: PromptReadout, ablated: PromptReadout, tokenizer) -> pd.DataFrame:
    """The union of both top lists with each token's probability before and after."""
    rows = {}
    for side, readout in (("baseline", base), ("ablated", ablated)):
        for token_id, text, prob in readout.next_tokens:
            rows.setdefault(token_id, {"token_id": token_id, "token": text})[side] = prob
    df = pd.DataFrame(list(rows.values()))
    for side in ("baseline", "ablated"):
        if side not in df:
            df[side] = np.nan
    return df.sort_values("baseline", ascending=False, na_position="last").reset_index(drop=True)


def relation_activity(hooks: NeuronHooks, tokenizer, prompt: str, tops: dict[str, pd.DataFrame],
                      pooling: str = "mean") -> pd.DataFrame:
    """Per relation: how this prompt drives the relation's top-k neurons, scaled so that the identification
    negatives' mean is 0 and the positives' mean is 1 (averaged over the neurons)."""
    acts = capture_pooled(hooks, tokenizer, [check_prompt(prompt)], pooling)[0]
    rows = []
    for rel, top in tops.items():
        if top.empty:
            continue
        ids = top.neuron.to_numpy()
        spread = (top.mean_pos - top.mean_neg).to_numpy()
        scaled = (acts[ids] - top.mean_neg.to_numpy()) / np.where(np.abs(spread) > 1e-9, spread, np.nan)
        rows.append(dict(relation=rel, activity=float(np.nanmean(scaled)), neurons=len(ids)))
    return pd.DataFrame(rows)
