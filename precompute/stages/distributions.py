"""Stage: activation distributions (core/distributions.py). Per relation and language, the count, mean and
quantiles of the pooled activation on the identification set's positives and on its negatives, for every neuron
in some relation's top-k at the run's largest k (in any language) and a seeded uniform sample of the others;
read from the capture a block of columns at a time, like scoring. One file per relation x language
(distributions/relation=R/language=L), each written whole: a file that exists is done.

A run made before this stage gets it by running `precompute run` again with the same options into its folder:
the other stages find their files and skip, the capture is taken again for the languages that lack the table
(it is not kept in a committed run), and only this table is written."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from core.distributions import (PARQUET_OPTIONS, distribution_stream, distributions_frame, result_bytes,
                                stored_neurons)
from core.mapped import NpyColumns
from core.parquet_io import read_parquet, write_parquet_atomic
from core.run_layout import capture_paths, distributions_path, identification_path, scores_path
from core.score_stream import LabelledRows
from precompute.context import RunContext


def distributions_missing(ctx: RunContext, lang: str) -> bool:
    return any(not distributions_path(ctx.out, r, lang).exists() for r in ctx.relations)


def run(ctx: RunContext) -> bool:
    """The languages missing a table, shared out over the processes."""
    todo = ctx.workers.on_main(lambda: [lang for lang in ctx.languages if distributions_missing(ctx, lang)])
    if not todo:
        return False
    ctx.workers.each_share(todo, lambda mine: _distributions(ctx, mine))
    return True


def top_union(run_dir, relations: list[str], languages: list[str], limit: int) -> np.ndarray:
    """Flat ids of every neuron ranked <= `limit` for some relation in some language (sorted, distinct)."""
    found = [pq.read_table(scores_path(run_dir, r, l), columns=["neuron", "rank"],
                           filters=[("rank", "<=", limit)]).column("neuron").to_numpy()
             for r in relations for l in languages]
    return np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)


def relation_groups(relations: list[str], neurons: int, memory_budget: int) -> list[list[str]]:
    """The relations in passes over the capture, as many per pass as keep their results within half the
    budget (the other half holds a block of the capture); every relation of a small model in one pass."""
    per_pass = max(1, (memory_budget // 2) // max(1, result_bytes(neurons)))
    return [relations[i : i + per_pass] for i in range(0, len(relations), per_pass)]


def _distributions(ctx: RunContext, todo: list[str]) -> None:
    if not todo:
        return
    limit = max([ctx.k, *ctx.k_sweep])
    neurons, sampled = stored_neurons(top_union(ctx.out, ctx.relations, ctx.languages, limit), ctx.space.total,
                                      ctx.options.seed)
    budget = ctx.options.score_memory_mib << 20
    for lang in todo:
        acts_path, ids_path = capture_paths(ctx.out, lang)
        acts = NpyColumns(acts_path)
        row_of = {int(p): i for i, p in enumerate(np.load(ids_path))}
        rels = [r for r in ctx.relations if not distributions_path(ctx.out, r, lang).exists()]
        groups = relation_groups(rels, len(neurons), budget)
        with ctx.workers.bar(total=len(neurons) * len(groups), desc=f"distributions ({lang}): activation quantiles",
                             unit="neuron") as bar:
            for group in groups:
                sets = {}
                for rel in group:
                    ident = read_parquet(identification_path(ctx.out, rel, lang))
                    sets[rel] = LabelledRows(np.array([row_of[int(p)] for p in ident.prompt_id], dtype=np.int64),
                                             ident.positive.to_numpy(bool))
                stats = distribution_stream(acts, sets, neurons, budget, on_progress=bar.update)
                for rel in group:
                    write_parquet_atomic(distributions_frame(neurons, sampled, stats[rel]),
                                         distributions_path(ctx.out, rel, lang), **PARQUET_OPTIONS)
