"""Greedy answers of the model, split by batch over the processes (the baseline, effects and critical stages),
and the plain passes that ablated answers resume from (core.resume)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from core.generation import model_device
from core.prompt_outcome import (EvalBatch, EvalTokens, Outcome, eval_batch, eval_batches, evaluate_batch, plain_states,
                                 tokenize_for_eval)
from core.facts import Prompt
from core.resume import PlainStates, ResumePoint, StateNeeds, affordable_points, can_replay
from precompute.context import RunContext

# Memory for one process's recorded plain passes. The demo's effects stage needs about 1 GB with one process
# (half each with two); a 7B model's deep resume points would need far more, and their conditions run in full.
RESUME_BUDGET_BYTES = 2 << 30


@dataclass(frozen=True)
class PlainPasses:
    """This process's evaluation batches as tensors (`inputs`), their plain passes covering `points`, and the
    answers judged so far (evaluate_batch's `judged`)."""
    inputs: dict[tuple[int, ...], EvalBatch]
    by_batch: dict[tuple[int, ...], PlainStates]
    points: frozenset[ResumePoint]
    judged: dict = field(default_factory=dict)

    def states(self, idx: list[int], point: ResumePoint | None) -> tuple[PlainStates | None, ResumePoint | None]:
        """What a batch resumes from under an ablation first changing `point`: (None, None) for a full pass."""
        if point not in self.points:
            return None, None
        return self.by_batch[tuple(idx)], point


def plain_passes(ctx: RunContext, tokens: list[EvalTokens], points: Iterable[ResumePoint | None]
                 ) -> PlainPasses | None:
    """The plain passes over this process's share of the batches `evaluate` makes of `tokens`, for as many of
    `points` as RESUME_BUDGET_BYTES holds; None where the model cannot resume (core.resume)."""
    model = ctx.lm.model
    points = {p for p in points if p is not None}
    if not points or not can_replay(model):
        return None
    mine = ctx.workers.mine(eval_batches(tokens, ctx.options.batch_size))
    inputs = {tuple(idx): eval_batch(ctx.lm.tokenizer, tokens, idx, model_device(model)) for idx in mine}
    padded = sum(batch.batch.input_ids.numel() for batch in inputs.values())
    element = next(model.parameters()).element_size()
    chosen = affordable_points(points, model.config, padded, element, RESUME_BUDGET_BYTES)
    needs = StateNeeds.of(chosen)
    by_batch = {key: plain_states(model, batch, needs) for key, batch in inputs.items()} if chosen else {}
    return PlainPasses(inputs, by_batch, frozenset(chosen))


def evaluate(ctx: RunContext, prompts: list[Prompt], tokens: list[EvalTokens] | None = None,
             plain: PlainPasses | None = None, point: ResumePoint | None = None) -> list[Outcome] | None:
    """Greedy answers for `prompts`, batches split over the processes; all of them on the main process.
    `plain`, `point`: the batches' tensors and plain passes, and where the active ablation first changes a pass
    (the same answers, bit for bit, from less computation)."""
    tokens = tokens if tokens is not None else tokenize_for_eval(ctx.lm.tokenizer, prompts)

    def answers(idx):
        states, start = plain.states(idx, point) if plain is not None else (None, None)
        inputs, judged = (plain.inputs[tuple(idx)], plain.judged) if plain is not None else (None, None)
        return zip(idx, evaluate_batch(ctx.lm.model, ctx.lm.tokenizer, prompts, tokens, idx,
                                       ctx.options.answer_floor, states, start, inputs, judged))

    merged = ctx.workers.map_gathered(eval_batches(tokens, ctx.options.batch_size), answers)
    return None if merged is None else [merged[i] for i in range(len(prompts))]


def outcome_frame(df: pd.DataFrame, outcomes: list[Outcome]) -> pd.DataFrame:
    return pd.DataFrame({
        "prompt_id": df["prompt_id"].to_numpy(np.int32),
        "generated": [o.generated for o in outcomes],
        "correct": np.array([o.correct for o in outcomes], dtype=bool),
        "gold_first_logprob": np.array([o.gold_first_logprob for o in outcomes], dtype=np.float32),
        "gold_logprob": np.array([o.gold_logprob for o in outcomes], dtype=np.float32),
    })
