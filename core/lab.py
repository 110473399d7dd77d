"""The live lab: one prompt read by the model with and without an ablation, and its per-relation activity.

torch is imported where a model runs, not here: the lab page draws its controls from these limits before
the model (and torch) has loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from core.ablation import ZERO, Ablation
from core.neurons import NeuronId
from core.prompt_links import MAX_PROMPT_CHARS

if TYPE_CHECKING:
    from core.hooks import NeuronHooks

MAX_NEW_TOKENS = 20
MAX_ABLATED = 50_000
TOP_TOKENS = 10
MAX_SCALE = 10.0  # |factor| of scale ablation: past it the residual stream is off any distribution the model saw
__all__ = ["MAX_PROMPT_CHARS", "MAX_NEW_TOKENS", "MAX_ABLATED", "TOP_TOKENS", "MAX_SCALE"]  # shown in the UI


class LabInputError(ValueError):
    """A request the lab refuses, with the reason shown to the user."""


@dataclass(frozen=True)
class PromptReadout:
    probs: np.ndarray  # next-token probabilities over the whole vocabulary
    continuation_ids: list[int]
    continuation: str

    def top(self, n: int = TOP_TOKENS) -> list[int]:
        """The n most likely next token ids, most likely first."""
        order = np.argsort(-self.probs, kind="stable")
        return [int(i) for i in order[:n]]


@dataclass(frozen=True)
class FittedPrompt:
    text: str  # what the model reads: the prompt's end when it had to be cut
    tokens: int  # its length in tokens
    notices: tuple[str, ...]  # what was cut, for the user


def check_prompt(prompt: str) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise LabInputError("The prompt is empty: type some text for the model to continue.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise LabInputError(f"The prompt has {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}.")
    return prompt


def max_prompt_tokens(config, new_tokens: int) -> int:
    """Tokens a prompt may have so that it and `new_tokens` fit the model's positions."""
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048
    return max(1, int(positions) - int(new_tokens))


def fit_prompt(tokenizer, config, prompt: str, new_tokens: int) -> FittedPrompt:
    """The prompt cut to the lab's character limit and to the model's positions, keeping its end (what the next
    token depends on most), with a notice for every cut. Raises LabInputError for an empty prompt."""
    notices = []
    if len(prompt) > MAX_PROMPT_CHARS:
        notices.append(f"The prompt has {len(prompt):,} characters; the lab reads at most {MAX_PROMPT_CHARS:,}, "
                       "so only its first part is used.")
        prompt = prompt[:MAX_PROMPT_CHARS]
    check_prompt(prompt)
    limit = max_prompt_tokens(config, new_tokens)
    count = len(tokenizer(prompt)["input_ids"])
    if count > limit:
        offsets = tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
        cut = prompt
        for start in range(len(offsets) - limit + 1, len(offsets)):
            cut = prompt[offsets[start][0]:]
            if len(tokenizer(cut)["input_ids"]) <= limit:
                break
        notices.append(f"The prompt is {count:,} tokens; this model reads {limit + int(new_tokens):,} positions, "
                       f"{int(new_tokens)} of them for new tokens, so only its last {limit:,} tokens are read.")
        prompt = check_prompt(cut)
        count = len(tokenizer(prompt)["input_ids"])
    return FittedPrompt(prompt, count, tuple(notices))


@dataclass(frozen=True)
class LabRequest:
    """One reading of a prompt: greedy continuation and next-token probabilities with `neurons` changed by
    `ablation` (zero: switched off; none: the plain model)."""
    prompt: str
    neurons: tuple[NeuronId, ...] = ()
    new_tokens: int = MAX_NEW_TOKENS
    ablation: Ablation = ZERO

    def checked(self) -> "LabRequest":
        """The request with its prompt checked and its token count clamped; LabInputError when refused."""
        if len(self.neurons) > MAX_ABLATED:
            raise LabInputError(f"{len(self.neurons):,} neurons selected; the lab switches off at most "
                                f"{MAX_ABLATED:,} at once.")
        if abs(self.ablation.factor) > MAX_SCALE:
            raise LabInputError(f"The scale factor {self.ablation.factor:g} is outside -{MAX_SCALE:g} to {MAX_SCALE:g}.")
        return LabRequest(check_prompt(self.prompt), tuple(self.neurons),
                          max(1, min(int(self.new_tokens), MAX_NEW_TOKENS)), self.ablation)


def _readouts(lm, requests: Sequence[LabRequest]) -> list[PromptReadout]:
    """Checked requests decoded in one batch, each cut to its own token count (greedy: a shorter run is the
    longer run's prefix)."""
    from core.generation import greedy_decode

    steps = max(r.new_tokens for r in requests)
    decoded = greedy_decode(lm.model, lm.tokenizer, [r.prompt for r in requests], steps,
                            batch_size=len(requests), keep_first_probs=True)
    readouts = []
    for r, ids, probs in zip(requests, decoded.ids, decoded.first_probs):
        ids = ids[: r.new_tokens]
        readouts.append(PromptReadout(probs.numpy(), ids, lm.tokenizer.decode(ids, skip_special_tokens=True)))
    return readouts


def read_prompts(lm, hooks: NeuronHooks, requests: Sequence[LabRequest]) -> list[PromptReadout]:
    """Every request in one batch: one forward pass per decoding step for all of them, each row with only its
    own neurons switched off (core.hooks' per-row sets)."""
    requests = [r.checked() for r in requests]
    if not requests:
        return []
    with hooks.ablate_rows([r.neurons for r in requests], [r.ablation for r in requests]):
        return _readouts(lm, requests)


def read_prompt(lm, prompt: str, new_tokens: int = MAX_NEW_TOKENS) -> PromptReadout:
    """The plain model's reading (no hooks needed)."""
    return _readouts(lm, [LabRequest(prompt, (), new_tokens).checked()])[0]


def read_prompt_ablated(lm, hooks: NeuronHooks, prompt: str, neurons: Sequence[NeuronId],
                        new_tokens: int = MAX_NEW_TOKENS, ablation: Ablation = ZERO) -> PromptReadout:
    return read_prompts(lm, hooks, [LabRequest(prompt, tuple(neurons), new_tokens, ablation)])[0]


def token_changes(baseline: list[int], ablated: list[int]) -> list[bool]:
    """For each ablated token: True where it differs from the baseline token at the same position."""
    return [i >= len(baseline) or token != baseline[i] for i, token in enumerate(ablated)]


def continuation_table(base: PromptReadout, ablated: PromptReadout, tokenizer) -> pd.DataFrame:
    """Position by position: the baseline and the ablated token as text (and id), and whether they differ."""
    length = max(len(base.continuation_ids), len(ablated.continuation_ids))

    def text_at(ids: list[int], i: int) -> str | None:
        return repr(tokenizer.decode([ids[i]])) if i < len(ids) else None

    def id_at(ids: list[int], i: int) -> int | None:
        return ids[i] if i < len(ids) else None

    return pd.DataFrame({
        "position": list(range(1, length + 1)),
        "baseline": [text_at(base.continuation_ids, i) for i in range(length)],
        "with neurons off": [text_at(ablated.continuation_ids, i) for i in range(length)],
        # a position past the ablated answer's end differs too (the ablated answer stopped earlier)
        "changed": token_changes(base.continuation_ids, ablated.continuation_ids)
        + [True] * (length - len(ablated.continuation_ids)),
        "baseline id": pd.array([id_at(base.continuation_ids, i) for i in range(length)], dtype="Int64"),
        "ablated id": pd.array([id_at(ablated.continuation_ids, i) for i in range(length)], dtype="Int64"),
    })


def compare_next_tokens(base: PromptReadout, ablated: PromptReadout, tokenizer, ranked_by: str = "baseline",
                        top: int = TOP_TOKENS) -> pd.DataFrame:
    """The `top` most likely next tokens of one side (`ranked_by`: baseline or ablated), each with its
    probability on both sides and the change."""
    if ranked_by not in ("baseline", "ablated"):
        raise ValueError(f"ranked_by must be baseline or ablated, not {ranked_by!r}")
    ids = (base if ranked_by == "baseline" else ablated).top(top)
    return pd.DataFrame({
        "rank": list(range(1, len(ids) + 1)),
        "token": [repr(tokenizer.decode([i])) for i in ids],
        "token_id": ids,
        "baseline": [float(base.probs[i]) for i in ids],
        "ablated": [float(ablated.probs[i]) for i in ids],
    }).assign(change=lambda d: d.ablated - d.baseline)


def relation_activity(hooks: NeuronHooks, tokenizer, prompt: str, tops: dict[str, pd.DataFrame],
                      pooling: str = "mean") -> pd.DataFrame:
    """Per relation: how this prompt drives the relation's top-k neurons, scaled so that the identification
    negatives' mean is 0 and the positives' mean is 1 (averaged over the neurons)."""
    from core.capture import capture_pooled

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
