"""A test oracle: a run read straight from its Parquet with pyarrow, and the paper's figures computed in pandas.

Nothing outside the tests uses this. The explorer, `precompute summary` and the benchmarks read a run through
core.store.RunStore and compute with core.metrics / core.overlap; tests/test_one_source.py checks that this
independent second path gives the same tables and figures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from core.metrics import finish_ablation_table, summarise_relations
from core.run_layout import TABLES


def read_parquet_table(run_dir: Path, table: str) -> pd.DataFrame:
    """One table of a run (hive-partitioned Parquet) read by pyarrow, not by DuckDB."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    folder = Path(run_dir) / table
    if not folder.exists():
        raise FileNotFoundError(f"{folder} is missing: the run is incomplete")
    dataset = ds.dataset(folder, format="parquet", partitioning="hive", exclude_invalid_files=False)
    df = dataset.to_table().to_pandas()
    for col in df.columns:  # dictionary-encoded columns arrive as categoricals
        if isinstance(df[col].dtype, pd.CategoricalDtype):
            df[col] = df[col].astype(str)
    return df


def ablation_table(baseline: pd.DataFrame, effects: pd.DataFrame, template_kind: str = "train") -> pd.DataFrame:
    """Per (ablated set, k, seed, evaluated relation, language): accuracy before/after and log-prob drops
    (what RunStore.ablation_summary computes in SQL)."""
    base = baseline[["prompt_id", "correct", "gold_first_logprob", "gold_logprob"]].rename(
        columns={"correct": "base_correct", "gold_first_logprob": "base_first_lp", "gold_logprob": "base_lp"})
    j = effects.merge(base, on="prompt_id", how="inner")
    j = j[j.template_kind == template_kind]
    # Averaged in float64, as the SQL does: a pandas mean of the float32 columns stays float32 (off by ~1e-7).
    j = j.astype({c: "float64" for c in ("gold_first_logprob", "gold_logprob", "base_first_lp", "base_lp")})
    g = j.groupby(["ablated", "kind", "k_from", "k", "seed", "relation", "language"], as_index=False).agg(
        base_accuracy=("base_correct", "mean"), accuracy=("correct", "mean"), prompts=("correct", "size"),
        first_lp_drop=("base_first_lp", "mean"), lp_drop=("base_lp", "mean"),
        first_lp_after=("gold_first_logprob", "mean"), lp_after=("gold_logprob", "mean"))
    g["first_lp_drop"] = g["first_lp_drop"] - g.pop("first_lp_after")
    g["lp_drop"] = g["lp_drop"] - g.pop("lp_after")
    return finish_ablation_table(g)


def relation_summary(baseline: pd.DataFrame, effects: pd.DataFrame, k: int, language: str = "en") -> pd.DataFrame:
    """The summary's per-relation table from raw tables."""
    return summarise_relations(ablation_table(baseline, effects), k, language)


def top_sets(scores: pd.DataFrame, k: int) -> dict[str, set[int]]:
    """relation -> its top-k neuron ids, from a scores table of one language."""
    top = scores[scores["rank"] <= k]
    return {rel: set(g.neuron) for rel, g in top.groupby("relation")}


def overlap_matrix(sets: dict[str, set[int]], metric: str = "count", total: int | None = None) -> pd.DataFrame:
    """relation x relation: shared neurons, Jaccard, or shared / (|A||B|/total)."""
    names = sorted(sets)
    m = pd.DataFrame(index=names, columns=names, dtype=float)
    for a in names:
        for b in names:
            shared = len(sets[a] & sets[b])
            if metric == "count":
                m.loc[a, b] = shared
            elif metric == "jaccard":
                m.loc[a, b] = shared / max(1, len(sets[a] | sets[b]))
            elif metric == "chance_ratio":
                expected = len(sets[a]) * len(sets[b]) / total
                m.loc[a, b] = shared / expected if expected else np.nan
            else:
                raise ValueError(f"unknown overlap metric {metric!r}")
    return m


def paired_outcomes(baseline: pd.DataFrame, effects: pd.DataFrame, k: int, language: str,
                    template_kind: str = "train") -> pd.DataFrame:
    """What RunStore.paired_outcomes joins in SQL: per relation and prompt, correct at baseline, with the own
    top-k off and with each random set (both families) of the same k off."""
    e = effects[(effects.k == k) & (effects.language == language) & (effects.template_kind == template_kind)]
    own = e[(e.kind == "top") & (e.ablated == e.relation)][["relation", "prompt_id", "correct"]].rename(
        columns={"correct": "own_correct"})
    rnd = e[e.kind == "random"][["prompt_id", "ablated", "seed", "correct"]].rename(
        columns={"ablated": "family", "correct": "random_correct"})
    base = baseline[["prompt_id", "correct"]].rename(columns={"correct": "base_correct"})
    out = own.merge(base, on="prompt_id").merge(rnd, on="prompt_id")
    columns = ["relation", "prompt_id", "base_correct", "own_correct", "family", "seed", "random_correct"]
    return out[columns].sort_values(["relation", "family", "seed", "prompt_id"], ignore_index=True)


def null_shared(null_top: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per permutation seed and ordered relation pair, the shared top-k neurons (pairs sharing none absent)."""
    rows = []
    for seed, g in null_top[null_top["rank"] <= k].groupby("seed"):
        sets = {rel: set(x.neuron) for rel, x in g.groupby("relation")}
        rows += [(int(seed), a, b, len(sets[a] & sets[b])) for a in sets for b in sets if sets[a] & sets[b]]
    return pd.DataFrame(rows, columns=["seed", "relation_a", "relation_b", "shared"]).sort_values(
        ["seed", "relation_a", "relation_b"], ignore_index=True)
