"""Stage 1, baseline: every prompt answered greedily; one file per relation and language."""
from __future__ import annotations

import pandas as pd

from core.parquet_io import read_parquet, write_parquet_atomic
from core.run_layout import baseline_path
from precompute.context import RunContext, to_prompts
from precompute.stages.answers import evaluate, outcome_frame


def run(ctx: RunContext) -> bool:
    units = [(r, l) for r in ctx.relations for l in ctx.languages]
    todo = ctx.workers.on_main(lambda: [u for u in units if not baseline_path(ctx.out, *u).exists()])
    if not todo:
        return False
    prompts = ctx.prompts
    bar = ctx.workers.bar(total=int(sum(((prompts.relation == r) & (prompts.language == l)).sum() for r, l in todo)),
                          desc="baseline: greedy 2-token answers", unit="prompt")
    for rel, lang in todo:
        df = prompts[(prompts.relation == rel) & (prompts.language == lang)]
        outcomes = evaluate(ctx, to_prompts(df))
        if ctx.is_main:
            frame = df.drop(columns=["relation", "language"]).reset_index(drop=True)
            frame = pd.concat([frame, outcome_frame(df, outcomes).drop(columns=["prompt_id"])], axis=1)
            write_parquet_atomic(frame, baseline_path(ctx.out, rel, lang))
        bar.update(len(df))
    bar.close()
    return True


def read_baseline(ctx: RunContext) -> pd.DataFrame:
    """The whole baseline table, with relation and language, in prompt_id order."""
    parts = []
    for rel in ctx.relations:
        for lang in ctx.languages:
            part = read_parquet(baseline_path(ctx.out, rel, lang))
            part["relation"], part["language"] = rel, lang
            parts.append(part)
    return pd.concat(parts, ignore_index=True).sort_values("prompt_id").reset_index(drop=True)
