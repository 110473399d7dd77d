"""Greedy answers of the model, split by batch over the processes (the baseline and effects stages)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.prompt_outcome import EvalTokens, Outcome, eval_batches, evaluate_batch, tokenize_for_eval
from core.facts import Prompt
from precompute.context import RunContext


def evaluate(ctx: RunContext, prompts: list[Prompt], tokens: list[EvalTokens] | None = None) -> list[Outcome] | None:
    """Greedy answers for `prompts`, batches split over the processes; all of them on the main process."""
    tokens = tokens if tokens is not None else tokenize_for_eval(ctx.lm.tokenizer, prompts)
    merged = ctx.workers.map_gathered(
        eval_batches(tokens, ctx.options.batch_size),
        lambda idx: zip(idx, evaluate_batch(ctx.lm.model, ctx.lm.tokenizer, prompts, tokens, idx,
                                            ctx.options.answer_floor)))
    return None if merged is None else [merged[i] for i in range(len(prompts))]


def outcome_frame(df: pd.DataFrame, outcomes: list[Outcome]) -> pd.DataFrame:
    return pd.DataFrame({
        "prompt_id": df["prompt_id"].to_numpy(np.int32),
        "generated": [o.generated for o in outcomes],
        "correct": np.array([o.correct for o in outcomes], dtype=bool),
        "gold_first_logprob": np.array([o.gold_first_logprob for o in outcomes], dtype=np.float32),
        "gold_logprob": np.array([o.gold_logprob for o in outcomes], dtype=np.float32),
    })
