"""Stage: every neuron's mean pooled activation over the identification language's captured prompts (the
identification pool), which mean ablation sets a neuron to (core.ablation). One small table per run."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.mapped import NpyColumns, blocks_read_ahead
from core.parquet_io import write_parquet_atomic
from core.run_layout import capture_paths, neuron_means_path
from core.score_stream import chunk_columns
from precompute.context import RunContext


def means_missing(ctx: RunContext) -> bool:
    return not neuron_means_path(ctx.out, ctx.options.identification_language).exists()


def run(ctx: RunContext) -> bool:
    return ctx.workers.on_main(lambda: _means(ctx))


def column_means(acts, memory_budget: int) -> np.ndarray:
    """Each column's mean (accumulated in float64), read a block of columns at a time."""
    rows, n = acts.shape
    out = np.empty(n, dtype=np.float64)
    for lo, hi, block in blocks_read_ahead(acts, chunk_columns(rows, memory_budget)):
        out[lo:hi] = block.mean(axis=0, dtype=np.float64)
    return out


def _means(ctx: RunContext) -> bool:
    if not means_missing(ctx):
        return False
    lang = ctx.options.identification_language
    acts_path, _ = capture_paths(ctx.out, lang)
    acts = NpyColumns(acts_path)
    means = column_means(acts, ctx.options.score_memory_mib << 20)
    frame = pd.DataFrame({"neuron": np.arange(len(means), dtype=np.int32), "mean": means.astype(np.float32),
                          "prompts": np.int32(acts.shape[0])})
    write_parquet_atomic(frame, neuron_means_path(ctx.out, lang))
    return True
