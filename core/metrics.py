"""The paper's numbers from a run's tables: accuracy, drops, interference, cumulativity.

One implementation of each figure, shared by the explorer's pages and `precompute summary`: the per-prompt
aggregation is RunStore.ablation_summary (SQL); these functions shape its result. Overlap is core.overlap.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def finish_ablation_table(g: pd.DataFrame) -> pd.DataFrame:
    """Add accuracy drop in points and the paper's relative drop (negative = improvement)."""
    g = g.sort_values(["ablated", "kind", "k_from", "k", "seed", "relation", "language"]).reset_index(drop=True)
    g["drop_points"] = 100 * (g.base_accuracy - g.accuracy)
    with np.errstate(divide="ignore", invalid="ignore"):
        g["relative_drop"] = np.where(g.base_accuracy > 0, (g.base_accuracy - g.accuracy) / g.base_accuracy, np.nan)
    return g


def random_summary(table: pd.DataFrame, k: int, language: str = "en") -> pd.DataFrame:
    """Per evaluated relation: mean drop (points) over random seeds and a 95% interval of that mean."""
    t = table[(table.kind == "random") & (table.k == k) & (table.language == language)]
    rows = []
    for rel, g in t.groupby("relation"):
        d = g.drop_points.to_numpy()
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.nan
        rows.append(dict(relation=rel, random_drop=d.mean(), random_low=d.mean() - half, random_high=d.mean() + half,
                         random_first_lp_drop=g.first_lp_drop.mean(), seeds=len(d)))
    return pd.DataFrame(rows)


def summarise_relations(table: pd.DataFrame, k: int, language: str = "en") -> pd.DataFrame:
    """The summary's table from RunStore.ablation_summary: per relation, baseline, own drop, random drop, worst
    hit on others, interference (drops in points; most_improved_drop < 0 is an improvement)."""
    top = table[(table.kind == "top") & (table.k == k) & (table.language == language)]
    rows = []
    for rel, g in top.groupby("ablated"):
        own = g[g.relation == rel].iloc[0]
        others = g[g.relation != rel]
        worst = others.loc[others.drop_points.idxmax()]
        best = others.loc[others.drop_points.idxmin()]
        rows.append(dict(
            relation=rel, baseline=own.base_accuracy, own_drop=own.drop_points, own_first_lp_drop=own.first_lp_drop,
            others_mean_drop=others.drop_points.mean(), others_first_lp_drop=others.first_lp_drop.mean(),
            largest_other=worst.relation, largest_other_drop=worst.drop_points,
            most_improved=best.relation, most_improved_drop=best.drop_points,
        ))
    return pd.DataFrame(rows).merge(random_summary(table, k, language), on="relation", how="left")


def cumulativity(effects: pd.DataFrame, k_from: int, k_to: int, language: str | None = None) -> pd.DataFrame:
    """method.md: #total = correct with top-k_from off, wrong with top-k_to off; #affected = those also
    wrong with only ranks k_from..k_to off. Returns per relation counts and 1 - affected/total."""
    e = effects[effects.template_kind == "train"]
    if language:
        e = e[e.language == language]
    own = e[e.ablated == e.relation]
    small = own[(own.kind == "top") & (own.k == k_from)].set_index("prompt_id").correct
    large = own[(own.kind == "top") & (own.k == k_to)].set_index("prompt_id").correct
    diff = own[(own.kind == "range") & (own.k_from == k_from) & (own.k == k_to)].set_index("prompt_id").correct
    if diff.empty:
        raise ValueError(f"the run has no rank-range ablation {k_from}..{k_to}; ranges exist between consecutive sweep values")
    rel = own.drop_duplicates("prompt_id").set_index("prompt_id").relation
    frame = pd.DataFrame({"small": small, "large": large, "diff": diff, "relation": rel}).dropna()
    frame["total"] = frame.small.astype(bool) & ~frame.large.astype(bool)
    frame["affected"] = frame.total & ~frame["diff"].astype(bool)
    out = frame.groupby("relation", as_index=False).agg(total=("total", "sum"), affected=("affected", "sum"))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cumulativity"] = np.where(out.total > 0, 1 - out.affected / out.total, np.nan)
    return out


def cumulativity_summary(per_relation: pd.DataFrame) -> dict:
    micro_total = per_relation.total.sum()
    return {
        "macro": float(per_relation.cumulativity.mean()),
        "micro": float(1 - per_relation.affected.sum() / micro_total) if micro_total else float("nan"),
        "total": int(micro_total),
    }


def intra_relation(table: pd.DataFrame, k: int, language: str) -> pd.DataFrame:
    """Per relation: original accuracy, mean accuracy with random k-sets off (with seed range), with its own top-k off."""
    own = table[(table.kind == "top") & (table.k == k) & (table.language == language) & (table.ablated == table.relation)]
    rnd = table[(table.kind == "random") & (table.k == k) & (table.language == language)]
    r = rnd.groupby("relation").accuracy.agg(random="mean", random_low="min", random_high="max")
    out = own.set_index("relation")[["base_accuracy", "accuracy"]].rename(
        columns={"base_accuracy": "original", "accuracy": "relation_off"}).join(r)
    return out.reset_index()[["relation", "original", "random", "relation_off", "random_low", "random_high"]]


def inter_relation(table: pd.DataFrame, k: int, language: str) -> pd.DataFrame:
    """Every (evaluated relation, relation whose top-k is off) cell at k in one language."""
    return table[(table.kind == "top") & (table.k == k) & (table.language == language)].reset_index(drop=True)


def multilingual(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each relation with its own top-k off (identified in one language), in every language: original and after,
    long, one row per relation, language and condition."""
    own = table[(table.kind == "top") & (table.k == k) & (table.ablated == table.relation)]
    own = own[["relation", "language", "base_accuracy", "accuracy"]].rename(columns={"accuracy": "after"})
    long = own.melt(id_vars=["relation", "language"], value_vars=["base_accuracy", "after"],
                    var_name="condition", value_name="accuracy")
    long["condition"] = long.condition.map({"base_accuracy": "original", "after": "relation's top-k off"})
    return long.sort_values(["relation", "language", "condition"]).reset_index(drop=True)


def random_seed_accuracies(table: pd.DataFrame, k: int, language: str) -> pd.DataFrame:
    """Per relation and random seed: accuracy with that seed's random k neurons off (the spread behind `random`)."""
    rnd = table[(table.kind == "random") & (table.k == k) & (table.language == language)]
    return rnd[["relation", "seed", "accuracy"]].sort_values(["relation", "seed"]).reset_index(drop=True)


def sweep_curves(table: pd.DataFrame, relation: str, language: str) -> pd.DataFrame:
    """Accuracy vs k with `relation`'s top-k off: the relation itself, the mean of the others, and random sets."""
    t = table[(table.language == language)]
    top = t[(t.kind == "top") & (t.ablated == relation)]
    own = top[top.relation == relation][["k", "accuracy"]].assign(series=relation)
    others = top[top.relation != relation].groupby("k", as_index=False).accuracy.mean().assign(series="other relations (mean)")
    rnd = t[(t.kind == "random") & (t.relation == relation)].groupby("k", as_index=False).accuracy.mean().assign(
        series=f"{relation}, random sets")
    return pd.concat([own, others, rnd], ignore_index=True).sort_values(["series", "k"]).reset_index(drop=True)


def cumulativity_from_table(effects: pd.DataFrame, sweep: list[int], language: str | None) -> pd.DataFrame:
    """Cumulativity for every consecutive pair of the sweep: macro, micro, and #total."""
    rows = []
    for k_from, k_to in zip(sweep, sweep[1:]):
        per = cumulativity(effects, k_from, k_to, language)
        rows.append(dict(k_from=k_from, k_to=k_to, **cumulativity_summary(per)))
    return pd.DataFrame(rows)
