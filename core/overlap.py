"""Overlap of top-k neuron sets: counts, Jaccard, and how they compare with two nulls.

The hypergeometric null is two *independent* random sets of the same sizes. The construction does not follow
it: each relation's positives are the other relations' negatives, which pushes top-k sets apart. The
permutation null (the run's null_top table: identification re-run with relation labels permuted among the
identification prompts) is the overlap the construction itself produces with no relation structure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.statistics import holm, hypergeom_overlap, permutation_null

METRICS = ("count", "jaccard", "chance_ratio", "hypergeom_z", "null_ratio", "null_z")
NULL_METRICS = ("null_ratio", "null_z")  # need the permutation null: relation x relation, identification language
MODES = ("relations", "languages", "relation_language")


def filtered_total(modules: dict[str, int], chosen: list[str], layers: tuple[int, int]) -> int:
    """Neurons inside the layer and module filters: the N of the chance level k*k/N."""
    return sum(size for name, size in modules.items() if name in chosen) * (layers[1] - layers[0] + 1)


def overlap_long(shared: pd.DataFrame, sizes: pd.DataFrame, metric: str, total: int) -> pd.DataFrame:
    """Rows (a, b) with shared, size_a, size_b, expected (random sets) and `value` in the chosen metric.

    `shared` has relation_a, language_a, relation_b, language_b, shared; `sizes` relation, language, size.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown overlap metric {metric!r}; choose one of {', '.join(METRICS)}")
    s = sizes.set_index(["relation", "language"])["size"]
    out = shared.copy()
    out["size_a"] = [int(s.get((r, l), 0)) for r, l in zip(out.relation_a, out.language_a)]
    out["size_b"] = [int(s.get((r, l), 0)) for r, l in zip(out.relation_b, out.language_b)]
    out["expected"] = out.size_a * out.size_b / max(total, 1)
    union = out.size_a + out.size_b - out.shared
    out["jaccard"] = out.shared / union.clip(lower=1)
    out["chance_ratio"] = out.shared / out.expected.where(out.expected > 0)
    hyper = hypergeom_overlap(out.shared.to_numpy(), out.size_a.to_numpy(), out.size_b.to_numpy(), max(total, 1))
    out["hypergeom_z"], out["p_more"], out["p_less"] = hyper["z"], hyper["p_more"], hyper["p_less"]
    for column in NULL_METRICS:
        if column not in out:
            out[column] = np.nan
    out["value"] = out[{"count": "shared"}.get(metric, metric)]
    return out


def null_values(null_counts: pd.DataFrame, relations: list[str], seeds: int) -> pd.DataFrame:
    """Every unordered pair of distinct relations x permutation seed with its shared count (zeros filled in):
    relation_a < relation_b, seed, shared. `null_counts`: RunStore.null_overlap_counts."""
    pairs = pd.DataFrame([(a, b) for a in relations for b in relations if a < b], columns=["relation_a", "relation_b"])
    grid = pairs.merge(pd.DataFrame({"seed": range(seeds)}), how="cross")
    counts = null_counts[null_counts.relation_a < null_counts.relation_b]
    out = grid.merge(counts, on=["relation_a", "relation_b", "seed"], how="left")
    out["shared"] = out.shared.fillna(0).astype(int)
    return out


def permutation_test(observed: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    """Per relation pair (`observed`: relation_a, relation_b, shared): the permutation null's mean for that pair
    and its spread, the ratio and z against it, and the p-value of sharing at least this much against the
    null pooled over every pair and seed (the label permutation makes all pairs alike), Holm-adjusted over
    the pairs. `null`: null_values."""
    pooled = null.shared.to_numpy(float)
    per_pair = {key: g.shared.to_numpy(float) for key, g in null.groupby(["relation_a", "relation_b"])}
    rows = []
    for a, b, shared in zip(observed.relation_a, observed.relation_b, observed.shared):
        if a == b:  # a set against itself: no null
            rows.append(dict(relation_a=a, relation_b=b))
            continue
        mine = per_pair.get((min(a, b), max(a, b)), np.array([]))
        against = permutation_null(shared, pooled)
        rows.append(dict(relation_a=a, relation_b=b, pair_null_mean=float(mine.mean()) if len(mine) else np.nan,
                         pair_null_max=float(mine.max()) if len(mine) else np.nan, null_mean=against["mean"],
                         null_max=float(pooled.max()) if len(pooled) else np.nan,
                         null_sd=against["sd"], null_ratio=against["ratio"], null_z=against["z"],
                         p_null=against["p_more"]))
    out = pd.DataFrame(rows, columns=["relation_a", "relation_b", "pair_null_mean", "pair_null_max", "null_mean",
                                      "null_max", "null_sd", "null_ratio", "null_z", "p_null"])
    # Each pair appears once in the count (a heatmap holds it twice, as (a, b) and (b, a)).
    once = out.relation_a < out.relation_b
    adjusted = pd.Series(holm(out.loc[once, "p_null"].to_numpy()), index=out.index[once])
    by_pair = {(a, b): p for a, b, p in zip(out.relation_a[once], out.relation_b[once], adjusted)}
    out["p_null_holm"] = [by_pair.get((min(a, b), max(a, b)), np.nan) if a != b else np.nan
                          for a, b in zip(out.relation_a, out.relation_b)]
    return out


def with_permutation_null(pairs: pd.DataFrame, store, k: int, layers: tuple[int, int], modules: list[str]) -> pd.DataFrame:
    """`pairs` (relation_a, relation_b, shared, ...) with the permutation null's columns in place of the empty
    ones overlap_long leaves: the run's null_top at the same k and filters."""
    null = null_values(store.null_overlap_counts(int(k), tuple(layers), modules), store.relations, store.null_seeds)
    tested = permutation_test(pairs[["relation_a", "relation_b", "shared"]], null)
    return pairs.drop(columns=list(NULL_METRICS)).merge(tested, on=["relation_a", "relation_b"], how="left")


def complete_grid(long: pd.DataFrame, rows: list[tuple[str, str]]) -> pd.DataFrame:
    """Add the pairs that share nothing (absent from a join) as zero rows, so every heatmap cell exists."""
    have = {(a, la, b, lb) for a, la, b, lb in zip(long.relation_a, long.language_a, long.relation_b, long.language_b)}
    extra = [dict(relation_a=a, language_a=la, relation_b=b, language_b=lb, shared=0)
             for a, la in rows for b, lb in rows if (a, la, b, lb) not in have]
    return pd.concat([long, pd.DataFrame(extra)], ignore_index=True) if extra else long


def heatmap_cells(long: pd.DataFrame, mode: str, lang: str, relation: str, identification_language: str,
                  selected: tuple[str, str] | None = None) -> pd.DataFrame:
    """The cells of one overlap view as `row`, `col`, with `diagonal` (a set against itself) and `selected`.

    relations: relation x relation in `lang`; languages: language x language of `relation`;
    relation_language: each relation in every language against itself in the identification language.
    """
    if mode == "relations":
        data = long[(long.language_a == lang) & (long.language_b == lang)].assign(
            row=lambda d: d.relation_a, col=lambda d: d.relation_b)
    elif mode == "languages":
        data = long[(long.relation_a == relation) & (long.relation_b == relation)].assign(
            row=lambda d: d.language_a, col=lambda d: d.language_b)
    elif mode == "relation_language":
        data = long[(long.relation_a == long.relation_b) & (long.language_b == identification_language)].assign(
            row=lambda d: d.relation_a, col=lambda d: d.language_a)
    else:
        raise ValueError(f"unknown overlap view {mode!r}; choose one of {', '.join(MODES)}")
    data = data.assign(diagonal=(data.relation_a == data.relation_b) & (data.language_a == data.language_b))
    data = data.assign(selected=[(r, c) == selected for r, c in zip(data.row, data.col)])
    return data.sort_values(["row", "col"]).reset_index(drop=True)


@dataclass(frozen=True)
class OverlapView:
    """One overlap heatmap: which sets its rows and columns are, and which two sets one of its cells compares."""
    mode: str
    language: str  # the relations view's language
    relation: str  # the languages view's relation
    identification_language: str

    def axes(self, relations: list[str], languages: list[str]) -> tuple[list[str], list[str]]:
        rows = languages if self.mode == "languages" else relations
        cols = relations if self.mode == "relations" else languages
        return list(rows), list(cols)

    def cell_sets(self, row: str, col: str) -> tuple[tuple[str, str], tuple[str, str]]:
        """The (relation, language) sets behind the cell (row, col)."""
        if self.mode == "relations":
            return (row, self.language), (col, self.language)
        if self.mode == "languages":
            return (self.relation, row), (self.relation, col)
        return (row, col), (row, self.identification_language)

    def cells(self, store, k: int, layers: tuple[int, int], modules: list[str], metric: str, total: int,
              selected: tuple[str, str] | None = None) -> pd.DataFrame:
        """What the heatmap draws: every cell of this view from the run's top-k sets (see heatmap_cells)."""
        shared, sizes = store.overlap_counts(int(k), sorted(set(store.languages)), tuple(layers), modules)
        every_set = [(r, lang) for r in store.relations for lang in store.languages]
        long = overlap_long(complete_grid(shared, every_set), sizes, metric, total)
        cells = heatmap_cells(long, self.mode, self.language, self.relation, self.identification_language, selected)
        if self.has_null(store, k):
            cells = with_permutation_null(cells, store, k, layers, modules)
            if metric in NULL_METRICS:
                cells["value"] = cells[metric]
        return cells

    def has_null(self, store, k: int) -> bool:
        """The permutation null exists for this view: relation x relation in the identification language,
        a run that stored it, and k within the ranks it kept."""
        return (self.mode == "relations" and self.language == self.identification_language
                and store.available("null_top") and store.null_seeds > 0 and int(k) <= store.top_limit)
