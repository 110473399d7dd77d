"""Stage 1, baseline: every prompt answered greedily; one file per relation and language.

Before the full pass, a pre-check answers a small seeded sample of each relation and language's identification
prompts (PRECHECK_PROMPTS) and names, in one line, every pair whose sample projects fewer positives than
--min-positives: a model that does not know a relation is told so in seconds, not after the whole baseline. A
sample cannot prove a count, so the pre-check only warns; the exact check (every pair that falls short, with
its counts) stops the run after the baseline (precompute/stages/identification.check_positives).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.parquet_io import read_parquet, write_parquet_atomic
from core.run_layout import baseline_path
from precompute.context import RunContext, to_prompts
from precompute.stages.answers import evaluate, outcome_frame

PRECHECK_PROMPTS = 32  # identification prompts sampled per relation and language
PRECHECK_STREAM = 104729  # in the sample's seed, apart from every other draw of the run


def run(ctx: RunContext) -> bool:
    units = [(r, l) for r in ctx.relations for l in ctx.languages]
    todo = ctx.workers.on_main(lambda: [u for u in units if not baseline_path(ctx.out, *u).exists()])
    if not todo:
        return False
    prompts = ctx.prompts
    precheck(ctx, todo)
    bar = ctx.workers.bar(total=int(sum(((prompts.relation == r) & (prompts.language == l)).sum() for r, l in todo)),
                          desc="baseline: greedy 2-token answers", unit="prompt")
    for rel, lang in todo:
        df = prompts[(prompts.relation == rel) & (prompts.language == lang)]
        outcomes = evaluate(ctx, to_prompts(df))
        if ctx.is_main:
            # alternatives judge the answers; the table keeps the primary gold only (its schema is unchanged)
            frame = df.drop(columns=["relation", "language", "alternatives"], errors="ignore").reset_index(drop=True)
            frame = pd.concat([frame, outcome_frame(df, outcomes).drop(columns=["prompt_id"])], axis=1)
            write_parquet_atomic(frame, baseline_path(ctx.out, rel, lang))
        bar.update(len(df))
    bar.close()
    return True


def identification_prompts(prompts: pd.DataFrame) -> pd.DataFrame:
    """The prompts identification draws its positives from: identification split, trained templates."""
    return prompts[(prompts.split == "identification") & (prompts.template_kind == "train")]


def precheck_sample(prompts: pd.DataFrame, units: list[tuple[str, str]], seed: int) -> pd.DataFrame:
    """Up to PRECHECK_PROMPTS identification prompts of each (relation, language) in `units`, drawn without
    replacement with default_rng([seed, PRECHECK_STREAM, unit index]), in prompt_id order."""
    pool = identification_prompts(prompts)
    parts = []
    for i, (rel, lang) in enumerate(units):
        ids = pool[(pool.relation == rel) & (pool.language == lang)].prompt_id.to_numpy()
        rng = np.random.default_rng([seed, PRECHECK_STREAM, i])
        parts.append(np.sort(rng.choice(ids, min(PRECHECK_PROMPTS, len(ids)), replace=False)))
    chosen = np.concatenate(parts) if parts else np.array([], dtype=np.int32)
    return prompts[prompts.prompt_id.isin(chosen)]


def projected_shortfalls(sample: pd.DataFrame, correct: np.ndarray, prompts: pd.DataFrame,
                         min_positives: int) -> list[str]:
    """'relation (language) c of n sampled, about P of N' for every pair whose projected positives (the sample's
    share correct x its identification prompts) fall below `min_positives`."""
    totals = identification_prompts(prompts).groupby(["relation", "language"]).size()
    judged = sample[["relation", "language"]].assign(correct=correct)
    out = []
    for (rel, lang), group in judged.groupby(["relation", "language"], sort=True):
        hits, asked, total = int(group.correct.sum()), len(group), int(totals[(rel, lang)])
        projected = hits / asked * total
        if projected < min_positives:
            out.append(f"{rel} ({lang}) {hits} of {asked} sampled, about {projected:.0f} of {total}")
    return out


def precheck(ctx: RunContext, units: list[tuple[str, str]]) -> None:
    """Answer the pre-check sample (all processes take part) and log the pairs likely to fall short."""
    sample = precheck_sample(ctx.prompts, units, ctx.options.seed)
    if sample.empty:
        return
    outcomes = evaluate(ctx, to_prompts(sample))
    if not ctx.is_main:
        return
    correct = np.array([o.correct for o in outcomes], dtype=bool)
    short = projected_shortfalls(sample, correct, ctx.prompts, ctx.options.min_positives)
    ctx.log(f"pre-check: {int(correct.sum())} of {len(sample)} sampled identification prompts answered correctly"
            + (f"; likely fewer than --min-positives {ctx.options.min_positives} correct: {'; '.join(short)} "
               "(the exact count follows the baseline)" if short else ""))


def read_baseline(ctx: RunContext) -> pd.DataFrame:
    """The whole baseline table, with relation and language, in prompt_id order."""
    parts = []
    for rel in ctx.relations:
        for lang in ctx.languages:
            part = read_parquet(baseline_path(ctx.out, rel, lang))
            part["relation"], part["language"] = rel, lang
            parts.append(part)
    return pd.concat(parts, ignore_index=True).sort_values("prompt_id").reset_index(drop=True)
