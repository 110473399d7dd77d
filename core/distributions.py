"""Activation distributions: what a neuron's average precision summarises, kept as numbers a page can draw.

For a neuron, a relation and a language, the identification set's positives (the relation's validated prompts)
and negatives (other relations' prompts, drawn as the identification stage draws them) each give a list of pooled
activations; AP says how well one list ranks above the other. The run stores, per (neuron, relation, language,
side), the count, the mean and the quantiles QUANTILES (numpy.quantile, method QUANTILE_METHOD) of that list,
so the neuron page can draw two boxes per relation instead of one number.

Which neurons: every neuron of rank <= the run's largest k (max of k and the sweep) for some relation in some
language (scores.rank), and a uniform sample of DISTRIBUTION_SAMPLE of the others, drawn with
numpy.random.default_rng([run seed, DISTRIBUTIONS_STREAM]) and marked `sampled` in the table.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from core.mapped import NpyColumns, column_block

if TYPE_CHECKING:  # core.score_stream imports torch, which the neuron page (activation_boxes) does not need
    from core.score_stream import LabelledRows

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
QUANTILE_COLUMNS = ("q00", "q05", "q25", "q50", "q75", "q95", "q100")  # q00 the minimum, q100 the maximum
QUANTILE_METHOD = "linear"  # numpy's default (Hyndman & Fan type 7): interpolates between the two nearest values
STATISTICS = ("mean", *QUANTILE_COLUMNS)  # float32 columns, after n
SIDES = ("positive", "negative")
DISTRIBUTION_SAMPLE = 256  # neurons outside every top-k set whose distributions are stored too
DISTRIBUTIONS_STREAM = 32452843  # in the sample's seed, apart from every other draw of the run
COLUMNS = ("neuron", "side", "sampled", "n", *STATISTICS)
# How the table's files are written (core.parquet_io.write_parquet_atomic): a dictionary of distinct floats is
# larger than the floats, so the floats go byte-stream-split and the sorted neuron ids delta-coded (a third smaller).
PARQUET_OPTIONS = {"use_dictionary": ["side"],
                   "column_encoding": {"neuron": "DELTA_BINARY_PACKED", **dict.fromkeys(STATISTICS, "BYTE_STREAM_SPLIT")}}


def side_statistics(x: np.ndarray) -> dict[str, np.ndarray]:
    """n, mean and the QUANTILES of every column of x [rows, columns], in float64 arithmetic."""
    x64 = np.asarray(x, dtype=np.float64)
    rows, cols = x64.shape
    out = {"n": np.full(cols, rows, dtype=np.int64)}
    if rows == 0:
        return {**out, **{name: np.full(cols, np.nan) for name in STATISTICS}}
    out["mean"] = x64.mean(0)
    for name, q in zip(QUANTILE_COLUMNS, np.quantile(x64, QUANTILES, axis=0, method=QUANTILE_METHOD)):
        out[name] = q
    return out


def stored_neurons(top: np.ndarray, total: int, seed: int, sample: int = DISTRIBUTION_SAMPLE
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(neurons, sampled): the sorted union of `top` (flat ids, repeats allowed) and a uniform sample of `sample`
    of the other neurons (all of them when fewer), and which of the neurons the sample drew."""
    top = np.unique(np.asarray(top, dtype=np.int64))
    others = np.setdiff1d(np.arange(total, dtype=np.int64), top)
    drawn = np.random.default_rng([seed, DISTRIBUTIONS_STREAM]).choice(others, min(sample, len(others)),
                                                                       replace=False)
    neurons = np.union1d(top, drawn)
    return neurons, np.isin(neurons, drawn)


def result_bytes(neurons: int) -> int:
    """Memory of one relation's results in distribution_stream: both sides' statistics for every neuron."""
    return len(SIDES) * (1 + len(STATISTICS)) * 8 * neurons


def distribution_stream(acts: np.ndarray | NpyColumns, sets: dict[str, LabelledRows], neurons: np.ndarray,
                        memory_budget: int = 1 << 30, on_progress: Callable[[int], None] | None = None
                        ) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """relation -> side -> statistic -> [len(neurons)]: side_statistics of each set's positives and negatives for
    the capture columns `neurons` (sorted flat ids). The capture is read a block of columns at a time (only the
    span that holds wanted columns), so memory is one block (sized by `memory_budget`, float64 copies counted)
    plus the results."""
    from core.score_stream import chunk_columns

    rows, total = acts.shape
    neurons = np.asarray(neurons, dtype=np.int64)
    out = {rel: {side: {} for side in SIDES} for rel in sets}
    parts: dict[str, dict[str, list[dict]]] = {rel: {side: [] for side in SIDES} for rel in sets}
    step = chunk_columns(rows, memory_budget // 2)  # the statistics work on float64 copies: twice a float32 block
    for lo in range(0, total, step):
        a, b = np.searchsorted(neurons, [lo, min(lo + step, total)])
        if a == b:
            continue
        wanted = neurons[a:b]
        first = int(wanted[0])
        block = column_block(acts, first, int(wanted[-1]) + 1)
        if len(wanted) != block.shape[1]:
            block = block[:, wanted - first]
        for rel, s in sets.items():
            x = block[s.rows]
            parts[rel]["positive"].append(side_statistics(x[s.positive]))
            parts[rel]["negative"].append(side_statistics(x[~s.positive]))
        if on_progress is not None:
            on_progress(len(wanted))
        del block
    for rel in sets:
        for side in SIDES:
            pieces = parts[rel][side]
            for name in ("n", *STATISTICS):
                out[rel][side][name] = (np.concatenate([p[name] for p in pieces]) if pieces
                                        else np.empty(0, np.int64 if name == "n" else np.float64))
    return out


def distributions_frame(neurons: np.ndarray, sampled: np.ndarray, stats: dict[str, dict[str, np.ndarray]]
                        ) -> pd.DataFrame:
    """One relation x language's table: per neuron (ascending) a positive row, then a negative row; `sampled`
    marks the neurons of the uniform sample (the others are in some top-k set). n int32, statistics float32."""
    count = len(neurons)
    frame = {"neuron": np.repeat(np.asarray(neurons, dtype=np.int32), len(SIDES)),
             "side": np.tile(np.array(SIDES, dtype=object), count),
             "sampled": np.repeat(np.asarray(sampled, dtype=bool), len(SIDES))}
    for name in ("n", *STATISTICS):
        both = np.stack([stats[side][name] for side in SIDES], axis=1).reshape(-1)  # neuron-major, SIDES order
        frame[name] = both.astype(np.int32 if name == "n" else np.float32)
    return pd.DataFrame(frame)


def activation_boxes(quantiles: pd.DataFrame, profile: pd.DataFrame, language: str) -> pd.DataFrame:
    """The neuron page's boxes for one language: the rows of RunStore.activation_quantiles in `language`, each
    with the neuron's AP and rank for its relation there (RunStore.neuron_profile), relations in order,
    positives before negatives."""
    rows = quantiles[quantiles.language == language]
    scores = profile.loc[profile.language == language, ["relation", "ap", "rank"]]
    merged = rows.merge(scores, on="relation", how="left")
    merged["side"] = pd.Categorical(merged.side, categories=list(SIDES))
    return merged.sort_values(["relation", "side"], ignore_index=True).assign(side=lambda d: d.side.astype(str))
