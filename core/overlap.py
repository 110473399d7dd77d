"""Overlap of top-k neuron sets: counts, Jaccard, and the ratio to what two random sets would share."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

METRICS = ("count", "jaccard", "chance_ratio")
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
    out["value"] = out[{"count": "shared", "jaccard": "jaccard", "chance_ratio": "chance_ratio"}[metric]]
    return out


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
        return heatmap_cells(long, self.mode, self.language, self.relation, self.identification_language, selected)
