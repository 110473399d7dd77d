"""Stage 4, scoring: every neuron's average precision (and rank, means) per relation and language, and each
neuron's top prompts per language, streamed over the capture's columns (core/score_stream.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.generation import model_device
from core.mapped import NpyColumns
from core.neurons import NeuronSpace
from core.parquet_io import read_parquet, write_parquet_atomic
from core.run_layout import TOP_PLACES, capture_paths, identification_path, scores_path, top_prompts_path
from core.score_stream import LabelledRows, score_stream
from precompute.context import RunContext


def scores_missing(ctx: RunContext, lang: str) -> bool:
    return not top_prompts_path(ctx.out, lang).exists() or any(
        not scores_path(ctx.out, r, lang).exists() for r in ctx.relations)


def run(ctx: RunContext) -> bool:
    """The languages missing scores, shared out over the processes."""
    todo = ctx.workers.on_main(lambda: [lang for lang in ctx.languages if scores_missing(ctx, lang)])
    if not todo:
        return False
    ctx.workers.each_share(todo, lambda mine: _score(ctx, mine))
    return True


def _score(ctx: RunContext, todo_langs: list[str]) -> None:
    if not todo_langs:
        return
    n = ctx.space.total
    columns = neuron_columns(ctx.space)
    device = model_device(ctx.lm.model)
    device = str(device) if device.type == "cuda" else "cpu"  # AP's sorts on the GPU when there is one
    for lang in todo_langs:
        acts_path, ids_path = capture_paths(ctx.out, lang)
        acts = NpyColumns(acts_path)
        captured_ids = np.load(ids_path)
        row_of = {int(p): i for i, p in enumerate(captured_ids)}
        rels = [r for r in ctx.relations if not scores_path(ctx.out, r, lang).exists()]
        sets = {}
        for rel in rels:
            ident = read_parquet(identification_path(ctx.out, rel, lang))
            sets[rel] = LabelledRows(np.array([row_of[int(p)] for p in ident.prompt_id]),
                                     np.array(ident.positive, dtype=bool))
        with ctx.workers.bar(total=n * len(rels), desc=f"scoring ({lang}): average precision", unit="neuron") as bar:
            # Identification already refused a relation without positives or negatives.
            scored = score_stream(acts, sets, captured_ids, TOP_PLACES, ctx.options.score_memory_mib << 20,
                                  device, on_progress=bar.update,
                                  either_direction=ctx.options.direction == "either")
        for rel in rels:
            write_parquet_atomic(scores_frame(columns, scored.stats[rel]), scores_path(ctx.out, rel, lang))
        if not top_prompts_path(ctx.out, lang).exists():
            write_parquet_atomic(top_prompts_frame(scored.top_prompt, scored.top_value), top_prompts_path(ctx.out, lang))


def neuron_columns(space: NeuronSpace) -> dict:
    """neuron, layer, module, index: the columns every scores file starts with, for all neurons."""
    n = space.total
    layer, module_pos, index = space.decompose(np.arange(n))
    return {"neuron": np.arange(n, dtype=np.int32), "layer": layer.astype(np.int16),
            "module": pd.Categorical(np.array(space.module_names)[module_pos], categories=list(space.module_names)),
            "index": index.astype(np.int32)}


def ranks(ap: np.ndarray) -> np.ndarray:
    """1 for the highest AP; ties keep neuron order."""
    order = np.argsort(-ap, kind="stable")
    rank = np.empty(len(ap), dtype=np.int32)
    rank[order] = np.arange(1, len(ap) + 1, dtype=np.int32)
    return rank


def scores_frame(columns: dict, stats: dict) -> pd.DataFrame:
    """One relation x language's scores table: neuron_columns plus ap, sign (+1: higher on the relation, -1:
    lower, only with --direction either), rank, mean_pos, median_pos, mean_neg."""
    return pd.DataFrame({
        **columns, "ap": stats["ap"].astype(np.float32), "sign": stats["sign"].astype(np.int8),
        "rank": ranks(stats["ap"]),
        "mean_pos": stats["mean_pos"].astype(np.float32), "median_pos": stats["median_pos"].astype(np.float32),
        "mean_neg": stats["mean_neg"].astype(np.float32),
    })


def top_prompts_frame(prompt_ids: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """neuron, place (1..), prompt_id, value from [neurons, places] arrays of prompt ids and values."""
    n, places = prompt_ids.shape
    return pd.DataFrame({
        "neuron": np.repeat(np.arange(n, dtype=np.int32), places),
        "place": np.tile(np.arange(1, places + 1, dtype=np.int16), n),
        "prompt_id": prompt_ids.reshape(-1), "value": values.reshape(-1),
    })


def ranking(run_dir, rel: str, lang: str) -> np.ndarray:
    """Flat neuron ids of `rel` in `lang` by decreasing AP (rank 1 first), from its scores file."""
    return read_parquet(scores_path(run_dir, rel, lang)).sort_values("rank").neuron.to_numpy()
