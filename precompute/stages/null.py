"""Stage: the overlap's permutation null. Relation labels are permuted among the identification language's
validated prompts, identification sets are drawn from the permuted labels exactly as the identification stage
draws them, and every neuron is ranked again by AP. The top-ranked neurons of each permutation are kept
(null_top/seed=S): their overlaps are what the construction alone produces (each relation's positives are the
others' negatives) when no neuron has anything to do with any relation."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.generation import model_device
from core.mapped import NpyColumns
from core.parquet_io import write_parquet_atomic
from core.run_layout import capture_paths, null_top_path
from core.score_stream import LabelledRows, ap_stream
from precompute.context import RunContext
from precompute.stages.baseline import read_baseline
from precompute.stages.identification import identification_set, validated
from precompute.stages.scoring import neuron_columns, ranks

NULL_STREAM = 104729  # in the permutations' seeds, apart from every other draw of the run


def null_todo(ctx: RunContext) -> list[int]:
    return [s for s in range(ctx.options.null_seeds) if not null_top_path(ctx.out, s).exists()]


def run(ctx: RunContext) -> bool:
    """The permutations missing, shared out over the processes (each writes its own files)."""
    todo = ctx.workers.on_main(lambda: null_todo(ctx))
    if not todo:
        return False
    ctx.workers.each_share(todo, lambda mine: _null(ctx, mine))
    return True


def permuted_labels(base: pd.DataFrame, language: str, key: list[int]) -> pd.DataFrame:
    """`base` with the relation labels of `language`'s validated prompts (the pool identification draws
    positives and negatives from) permuted among those prompts; every other row unchanged."""
    valid = validated(base)
    rows = valid.index[valid.language == language]
    out = base.copy()
    out.loc[rows, "relation"] = np.random.default_rng(key).permutation(base.loc[rows, "relation"].to_numpy())
    return out


def null_sets(base: pd.DataFrame, relations: list[str], language: str, language_index: int, seed: int,
              permutation: int, negatives_ratio: float) -> dict[str, pd.DataFrame]:
    """Per relation, the identification set (prompt_id, positive) of one permutation of the labels."""
    permuted = permuted_labels(base, language, [seed, NULL_STREAM, permutation])
    return {rel: identification_set(permuted, rel, language, [seed, NULL_STREAM, permutation, i, language_index],
                                    negatives_ratio)
            for i, rel in enumerate(relations)}


def _null(ctx: RunContext, todo: list[int]) -> None:
    if not todo:
        return
    lang = ctx.options.identification_language
    base = read_baseline(ctx)
    acts_path, ids_path = capture_paths(ctx.out, lang)
    acts, captured_ids = NpyColumns(acts_path), np.load(ids_path)
    row_of = {int(p): i for i, p in enumerate(captured_ids)}
    device = model_device(ctx.lm.model)
    device = str(device) if device.type == "cuda" else "cpu"
    limit = max([ctx.k, *ctx.k_sweep])
    columns = pd.DataFrame(neuron_columns(ctx.space))
    for permutation in ctx.workers.bar(iterable=todo, desc=f"overlap null ({lang}): permuted identifications",
                                       unit="permutation"):
        sets = null_sets(base, ctx.relations, lang, ctx.corpus.languages.index(lang), ctx.options.seed, permutation,
                         ctx.options.negatives_ratio)
        labelled = {rel: LabelledRows(np.array([row_of[int(p)] for p in s.prompt_id]), s.positive.to_numpy(bool))
                    for rel, s in sets.items()}
        ap = ap_stream(acts, labelled, ctx.options.score_memory_mib << 20, device,
                       either_direction=ctx.options.direction == "either")
        frames = []
        for rel in ctx.relations:
            rank = ranks(ap[rel])
            kept = np.nonzero(rank <= limit)[0]
            frames.append(columns.iloc[kept].assign(relation=rel, language=lang, rank=rank[kept]))
        frame = pd.concat(frames, ignore_index=True).sort_values(["relation", "rank"], ignore_index=True)
        write_parquet_atomic(frame[["relation", "language", "rank", "neuron", "layer", "module", "index"]],
                             null_top_path(ctx.out, permutation))
