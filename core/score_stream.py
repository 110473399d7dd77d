"""Score a [prompts, neurons] capture a neuron chunk at a time, so a 7B capture never has to fit in RAM.

The capture is usually a .npy file on disk (20 GB for 6,000 prompts x 835,584
neurons in float32), read through core.mapped.NpyColumns. Each chunk of columns is read once and serves
every relation: AP, the positives' mean and median, the negatives' mean, and
the prompts where each neuron is highest. Memory is one chunk plus the results
(a few numbers per neuron), set by `memory_budget`.

AP: every relation's identification set draws from the same captured rows, so each neuron's values over the
pooled rows (the union of the sets) are sorted once and every relation is counted along that one order
(core.scoring.PooledSets), instead of sorting each relation's positives and negatives again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from core.mapped import NpyColumns, blocks_read_ahead
from core.scoring import PooledSets, in_threads

STATISTICS = ("ap", "sign", "mean_pos", "median_pos", "mean_neg")
MAX_CHUNK = 65536
MIN_CHUNK = 256
STATISTICS_PART = 1024  # columns per part of the per-column statistics (a part's scratch stays in cache)


@dataclass(frozen=True)
class LabelledRows:
    """The capture rows of one identification set and whether each is a positive."""
    rows: np.ndarray
    positive: np.ndarray


@dataclass
class StreamScores:
    stats: dict[str, dict[str, np.ndarray]]  # relation -> statistic -> [neurons]
    top_prompt: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.int32))  # [neurons, places]
    top_value: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))


def chunk_columns(rows: int, memory_budget: int) -> int:
    """Columns per chunk so that four float32 copies of a column stay within the budget: the block, the next
    block being read meanwhile, the block's pooled rows (a copy only when some rows are in no set) and the
    scratch of its column parts (negated values for the top prompts, a relation's positives for its median).
    The pooled AP works in parts of a few neurons whose working memory is fixed (core.scoring.CPU_PART_BYTES
    per thread; on a GPU, DEVICE_PART_BYTES there), not a multiple of the chunk."""
    per_column = max(1, rows) * 4 * 4
    return int(min(MAX_CHUNK, max(MIN_CHUNK, memory_budget // per_column)))


def pooled_sets(sets: dict[str, LabelledRows]) -> tuple[np.ndarray, PooledSets]:
    """The rows any set uses (sorted) and the sets laid out over them, in the order of `sets`."""
    pool = np.unique(np.concatenate([np.asarray(s.rows, dtype=np.int64).reshape(-1) for s in sets.values()]))
    return pool, PooledSets([(np.searchsorted(pool, s.rows), s.positive) for s in sets.values()], len(pool))


def pooled_ap(block: np.ndarray, pool: np.ndarray, layout: PooledSets, device: str, negated: bool
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """AP of every set for every column of the block ([sets, columns]), and with `negated` the AP of -block."""
    values = block if len(pool) == block.shape[0] else block[pool]  # pool is sorted and unique: all rows, in order
    ap, reverse = layout.average_precision(torch.from_numpy(values).to(device), negated=negated)
    return ap.cpu().numpy(), None if reverse is None else reverse.cpu().numpy()


def top_rows(block: np.ndarray, places: int) -> np.ndarray:
    """[columns, places]: each column's rows of highest value, highest first, ties in row order; exactly the
    first `places` of a stable argsort of -block, found by partition (linear) instead of a full sort."""
    rows, cols = block.shape
    places = min(places, rows)
    if places == 0 or cols == 0:
        return np.empty((cols, places), dtype=np.int64)
    neg = np.ascontiguousarray(-block.T)  # [columns, rows]: partition along contiguous memory
    kth = np.partition(neg, places - 1, axis=1)[:, places - 1 : places]  # each column's places-th largest
    candidate = neg <= kth  # every row at least as high, ties included
    counts = candidate.sum(1)
    out = np.empty((cols, places), dtype=np.int64)
    plain = counts == places
    if plain.any():
        sub = np.nonzero(plain)[0] if not plain.all() else slice(None)  # usually every column: no copy
        chosen, values = candidate[sub], neg[sub]
        row_of = np.nonzero(chosen)[1].reshape(len(values), places)  # ascending rows per column
        order = np.argsort(np.take_along_axis(values, row_of, axis=1), axis=1, kind="stable")
        out[sub] = np.take_along_axis(row_of, order, axis=1)
    tied = np.nonzero(~plain)[0]
    if len(tied):
        out[tied] = np.argsort(neg[tied], axis=1, kind="stable")[:, :places]
    return out


def score_stream(
    acts: np.ndarray | NpyColumns,
    sets: dict[str, LabelledRows],
    prompt_ids: np.ndarray,
    top_places: int = 5,
    memory_budget: int = 1 << 30,
    device: str = "cpu",
    on_progress: Callable[[int], None] | None = None,
    either_direction: bool = False,
) -> StreamScores:
    """Statistics per relation for every column of `acts`, plus each column's `top_places` highest prompts.

    `ap` is the paper's AP of the raw values and `sign` +1. With `either_direction`, a neuron whose negated
    values rank the positives better keeps that AP instead, with sign -1: it marks the relation by being lower.
    """
    for rel, s in sets.items():
        if s.positive.all() or not s.positive.any():
            raise ValueError(f"relation {rel} has no positives or no negatives among validated prompts: "
                               "the model answers too few correctly")
    rows, n = acts.shape
    places = min(top_places, rows)
    out = StreamScores({rel: {k: np.empty(n) for k in STATISTICS} for rel in sets},
                       np.empty((n, places), dtype=np.int32), np.empty((n, places), dtype=np.float32))
    step = chunk_columns(rows, memory_budget)
    pool, layout = pooled_sets(sets) if sets else (None, None)
    split = {rel: (s.rows[s.positive], s.rows[~s.positive]) for rel, s in sets.items()}
    for lo, hi, block in blocks_read_ahead(acts, step):
        def part_statistics(part: slice) -> None:
            """Top prompts, means and medians of the block's columns `part` (numpy releases the GIL: parts run
            in threads). Per column exactly what whole-block numpy calls give: the axis-0 means add row by row,
            and a median of the transposed positives equals the median down their column."""
            at = slice(lo + part.start, lo + part.stop)
            best = top_rows(block[:, part], places)
            out.top_prompt[at] = prompt_ids[best]
            out.top_value[at] = np.take_along_axis(block[:, part].T, best, axis=1)
            for rel, (positives, negatives) in split.items():
                pos = block[positives, part]
                r = out.stats[rel]
                r["mean_pos"][at] = pos.mean(0)
                r["median_pos"][at] = np.median(np.ascontiguousarray(pos.T), axis=1)
                r["mean_neg"][at] = block[negatives, part].mean(0)

        in_threads(part_statistics, column_parts(hi - lo))
        if sets:
            ap_all, reverse_all = pooled_ap(block, pool, layout, device, either_direction)
        for i, rel in enumerate(sets):
            r = out.stats[rel]
            ap = ap_all[i]
            sign = np.ones_like(ap)
            if either_direction:
                reverse = reverse_all[i]
                lower = reverse > ap  # ties keep the paper's side
                ap, sign = np.where(lower, reverse, ap), np.where(lower, -1.0, 1.0)
            r["ap"][lo:hi], r["sign"][lo:hi] = ap, sign
            if on_progress is not None:
                on_progress(hi - lo)
        del block
    return out


def column_parts(columns: int) -> list[slice]:
    """A block's columns in near-equal parts of at most STATISTICS_PART columns, for in_threads (equal, so that
    no part is a sliver: a one-column part would be summed in another order than its neighbours)."""
    bounds = np.linspace(0, columns, -(-columns // STATISTICS_PART) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def ap_stream(acts: np.ndarray | NpyColumns, sets: dict[str, LabelledRows], memory_budget: int = 1 << 30,
              device: str = "cpu", either_direction: bool = False) -> dict[str, np.ndarray]:
    """Only the AP (signed as in score_stream) of every column for each set: what a ranking needs, at a
    fraction of score_stream's work (no medians, no top prompts)."""
    rows, n = acts.shape
    out = {name: np.empty(n) for name in sets}
    if not sets:
        return out
    pool, layout = pooled_sets(sets)
    for lo, hi, block in blocks_read_ahead(acts, chunk_columns(rows, memory_budget)):
        ap, reverse = pooled_ap(block, pool, layout, device, either_direction)
        if reverse is not None:
            ap = np.maximum(ap, reverse)
        for i, name in enumerate(sets):
            out[name][lo:hi] = ap[i]
    return out
