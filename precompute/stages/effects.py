"""Stage 5, effects: the evaluation prompts answered with each condition's neurons zeroed (core/run_layout
lists the conditions: each relation's top-k and rank ranges, and random sets)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.ablation import ZERO, Ablation, ablation_key
from core.prompt_outcome import tokenize_for_eval
from core.resume import resume_point
from core.parquet_io import read_parquet, write_parquet_atomic
from core.run_layout import (RANDOM, RANDOM_NONCRITICAL, Condition, conditions, effect_path, mode_conditions,
                             mode_effect_path, neuron_means_path, random_sets_path, single_neuron_path)
from precompute.context import RunContext, to_prompts
from precompute.stages.answers import evaluate, outcome_frame, plain_passes
from precompute.stages.scoring import ranking

RANDOM_STREAM = 7919  # in the random sets' seed, so they draw apart from the identification negatives


def effect_prompts(prompts: pd.DataFrame, effect_templates: int | None) -> pd.DataFrame:
    """The evaluation split's prompts: every held-out template, and the first `effect_templates` trained
    templates (all when None)."""
    df = prompts[prompts.split == "evaluation"]
    if effect_templates is not None:
        df = df[(df.template_kind == "heldout") | (df.template_index < effect_templates)]
    return df.reset_index(drop=True)


def neuron_set(c: Condition, rankings: dict[str, np.ndarray], total: int, seed: int,
               critical: np.ndarray | None = None) -> np.ndarray:
    """The sorted flat ids `c` zeroes: ranks k_from+1..k of its relation's ranking (`rankings`: flat ids by
    decreasing AP), or k distinct ids of 0..total-1 drawn from the run's `seed`, k and the condition's seed
    (the non-critical family: drawn the same way from the ids not in `critical`)."""
    if c.kind == RANDOM and c.ablated == RANDOM_NONCRITICAL:
        allowed = np.setdiff1d(np.arange(total), critical if critical is not None else [])
        rng = np.random.default_rng([seed, RANDOM_STREAM, c.k, c.seed, 1])
        return np.sort(rng.choice(allowed, c.k, replace=False))
    if c.kind == RANDOM:
        rng = np.random.default_rng([seed, RANDOM_STREAM, c.k, c.seed])
        return np.sort(rng.choice(total, c.k, replace=False))
    return np.sort(rankings[c.ablated][c.k_from : c.k])


def critical_neurons(run_dir, threshold: float) -> np.ndarray:
    """Flat ids whose single ablation costs some relation at least `threshold` accuracy points."""
    table = read_parquet(single_neuron_path(run_dir))
    return np.unique(table[table.drop_points >= threshold].neuron.to_numpy())


def run_conditions(ctx: RunContext) -> list[Condition]:
    noncritical_k = ctx.k if ctx.options.random_exclude_critical else None
    if ctx.options.ablation != "zero":  # not run_ablation: that reads the stored means
        return mode_conditions(ctx.relations, ctx.k, ctx.options.random_seeds, noncritical_k)
    return conditions(ctx.relations, ctx.k_sweep, ctx.options.random_seeds, noncritical_k)


def run_ablation(ctx: RunContext) -> Ablation:
    """The run's --ablation; mean reads the run's stored neuron means (the means stage writes them first)."""
    o = ctx.options
    if o.ablation == "mean":
        table = read_parquet(neuron_means_path(ctx.out, o.identification_language))
        return Ablation("mean", means=table.sort_values("neuron")["mean"].to_numpy(np.float32))
    if o.ablation == "scale":
        return Ablation("scale", float(o.ablation_factor))
    return ZERO


def condition_path(ctx: RunContext, c: Condition):
    key = ablation_key(ctx.options.ablation, ctx.options.ablation_factor)
    return effect_path(ctx.out, c) if key == "zero" else mode_effect_path(ctx.out, key, c)


def random_sets_frame(ctx: RunContext) -> pd.DataFrame:
    """family, k, seed, neuron: the neurons of every random condition of the run."""
    critical = _critical(ctx)
    noncritical_k = ctx.k if ctx.options.random_exclude_critical else None
    every = conditions(ctx.relations, ctx.k_sweep, ctx.options.random_seeds, noncritical_k)  # the zero sweep's
    rows = [pd.DataFrame({"family": c.ablated, "k": np.int32(c.k), "seed": np.int32(c.seed),
                          "neuron": neuron_set(c, {}, ctx.space.total, ctx.options.seed, critical).astype(np.int32)})
            for c in every if c.kind == RANDOM]
    return pd.concat(rows, ignore_index=True)


def _critical(ctx: RunContext) -> np.ndarray | None:
    if not ctx.options.random_exclude_critical:
        return None
    return critical_neurons(ctx.out, ctx.options.critical_threshold)


def effects_todo(ctx: RunContext) -> list[tuple[Condition, np.ndarray]]:
    """The conditions whose file is missing, with their neuron sets (rankings from the identification language)."""
    if not random_sets_path(ctx.out).exists():
        write_parquet_atomic(random_sets_frame(ctx), random_sets_path(ctx.out))
    return neuron_sets(ctx, [c for c in run_conditions(ctx) if not condition_path(ctx, c).exists()])


def neuron_sets(ctx: RunContext, todo: list[Condition]) -> list[tuple[Condition, np.ndarray]]:
    """Each condition with the flat ids it zeroes (rankings from the identification language)."""
    if not todo:
        return []
    rankings = {rel: ranking(ctx.out, rel, ctx.options.identification_language) for rel in ctx.relations}
    critical = _critical(ctx)
    return [(c, neuron_set(c, rankings, ctx.space.total, ctx.options.seed, critical)) for c in todo]


def run(ctx: RunContext) -> bool:
    todo = ctx.workers.on_main(lambda: effects_todo(ctx))
    if not todo:
        return False
    df = effect_prompts(ctx.prompts, ctx.options.effect_templates)
    prompts = to_prompts(df)
    tokens = tokenize_for_eval(ctx.lm.tokenizer, prompts)
    ablation = run_ablation(ctx)
    ablated = {c: [ctx.space.neuron(int(i)) for i in neurons] for c, neurons in todo}
    points = {c: resume_point(neurons, ctx.space) for c, neurons in ablated.items()}
    plain = plain_passes(ctx, tokens, points.values())
    desc = "effects: ablated answers" + ("" if ablation.mode == "zero" else f" ({ablation.label}, main k)")
    with ctx.workers.bar(total=len(todo) * len(df), desc=desc, unit="prompt") as bar:
        for c, neurons in ablated.items():
            with ctx.hooks.ablate(neurons, ablation):
                outcomes = evaluate(ctx, prompts, tokens, plain, points[c])
            if ctx.is_main:
                write_parquet_atomic(effect_frame(df, outcomes, c), condition_path(ctx, c))
            bar.update(len(df))
    return True


def effect_frame(df: pd.DataFrame, outcomes, c: Condition) -> pd.DataFrame:
    frame = outcome_frame(df, outcomes).drop(columns=["generated"])
    frame.insert(1, "relation", df.relation.to_numpy())
    frame.insert(2, "language", df.language.to_numpy())
    frame.insert(3, "template_kind", df.template_kind.to_numpy())
    for key in ("kind", "k_from", "seed"):
        frame[key] = getattr(c, key)
    return frame
