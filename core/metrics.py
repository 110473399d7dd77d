"""The paper's numbers from a run's tables: accuracy, drops, interference, cumulativity, and the checks a
reviewer asks for (seed spread, intervals, paired tests, critical neurons, cross effects as a distribution).

One implementation of each figure, shared by the explorer's pages and `precompute summary`: the per-prompt
aggregation is RunStore.ablation_summary and RunStore.paired_outcomes (SQL); these functions shape their
results, with the distributions from core.statistics (scipy.stats). Overlap is core.overlap.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.run_layout import RANDOM
from core.statistics import holm, mcnemar_paired, mean_interval, paired_drop_interval

ALPHA = 0.01  # the significance level the summary states, after Holm's correction over relations
CROSS_THRESHOLD = 50.0  # accuracy points: cross-relation cells named one by one


def finish_ablation_table(g: pd.DataFrame) -> pd.DataFrame:
    """Add accuracy drop in points and the paper's relative drop (negative = improvement)."""
    g = g.sort_values(["ablated", "kind", "k_from", "k", "seed", "relation", "language"]).reset_index(drop=True)
    g["drop_points"] = 100 * (g.base_accuracy - g.accuracy)
    with np.errstate(divide="ignore", invalid="ignore"):
        g["relative_drop"] = np.where(g.base_accuracy > 0, (g.base_accuracy - g.accuracy) / g.base_accuracy, np.nan)
    return g


def random_rows(table: pd.DataFrame, family: str = RANDOM) -> pd.DataFrame:
    """The rows of one random family (the paper's uniform sets, or random_noncritical)."""
    return table[(table.kind == "random") & (table.ablated == family)]


def random_summary(table: pd.DataFrame, k: int, language: str = "en", family: str = RANDOM) -> pd.DataFrame:
    """Per evaluated relation, the random sets' drops (points): every seed's spread (mean, median, min, max,
    which seed is worst) and a 95% percentile-bootstrap interval of the mean over seeds (it cannot leave the
    seeds' range, so never the attainable one)."""
    t = random_rows(table, family)
    t = t[(t.k == k) & (t.language == language)]
    rows = []
    for rel, g in t.groupby("relation"):
        d = g.drop_points.to_numpy(float)
        low, high = mean_interval(d)
        worst = g.loc[g.drop_points.idxmax()]
        rows.append(dict(relation=rel, random_drop=d.mean(), random_median=float(np.median(d)), random_min=d.min(),
                         random_max=d.max(), worst_seed=int(worst.seed), random_low=low, random_high=high,
                         random_first_lp_drop=g.first_lp_drop.mean(),
                         random_first_lp_drop_median=float(g.first_lp_drop.median()), seeds=len(d)))
    return pd.DataFrame(rows)


def paired_tests(paired: pd.DataFrame, family: str = RANDOM) -> pd.DataFrame:
    """Per relation and random seed, on the same prompts: how many answers only the random set keeps
    (`random_only`: own top-k breaks them, the random set does not), how many only own top-k keeps, and the
    two-sided exact McNemar p-value. `paired`: RunStore.paired_outcomes."""
    rows = []
    for (rel, seed), g in paired[paired.family == family].groupby(["relation", "seed"]):
        random_only, own_only, p = mcnemar_paired(g.random_correct.to_numpy(bool), g.own_correct.to_numpy(bool))
        rows.append(dict(relation=rel, seed=int(seed), prompts=len(g), random_only=random_only, own_only=own_only,
                         p=p))
    return pd.DataFrame(rows, columns=["relation", "seed", "prompts", "random_only", "own_only", "p"])


def significance(paired: pd.DataFrame, family: str = RANDOM, alpha: float = ALPHA) -> pd.DataFrame:
    """Per relation: the own top-k drop with a 95% percentile-bootstrap interval over prompts (paired with the
    baseline), and whether own top-k breaks more than *every* random set: the largest McNemar p over the seeds
    (an intersection-union test: each seed must reject), Holm-adjusted over the relations, compared with
    `alpha`."""
    tests = paired_tests(paired, family)
    columns = ["relation", "prompts", "own_low", "own_high", "p_worst_seed", "seeds_significant", "tested_seeds",
               "p_holm", "significant"]
    rows = []
    for rel, g in paired[paired.family == family].groupby("relation"):
        prompts = g.drop_duplicates("prompt_id")
        low, high = paired_drop_interval(prompts.base_correct.to_numpy(bool), prompts.own_correct.to_numpy(bool))
        t = tests[tests.relation == rel]
        rows.append(dict(relation=rel, prompts=len(prompts), own_low=low, own_high=high, p_worst_seed=t.p.max(),
                         seeds_significant=int((t.p < alpha).sum()), tested_seeds=len(t)))
    out = pd.DataFrame(rows, columns=columns[:-2])
    if out.empty:
        return pd.DataFrame(columns=columns)
    out["p_holm"] = holm(out.p_worst_seed.to_numpy())
    out["significant"] = out.p_holm < alpha
    return out


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
    out = pd.DataFrame(rows).merge(random_summary(table, k, language), on="relation", how="left")
    out["beats_worst_random"] = out.own_drop > out.random_max
    return out


def ablation_comparison(tables: dict[str, pd.DataFrame], k: int, language: str = "en") -> pd.DataFrame:
    """summarise_relations for each of a run's ablations (`tables`: ablation key -> RunStore.ablation_summary),
    stacked with an `ablation` column, in the order given: the modes side by side at one k."""
    parts = [summarise_relations(t, k, language).assign(ablation=key) for key, t in tables.items()
             if len(t[(t.kind == "top") & (t.k == k) & (t.language == language)])]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def cross_relation(table: pd.DataFrame, k: int, language: str, threshold: float = CROSS_THRESHOLD) -> tuple[dict, pd.DataFrame]:
    """The drops a relation's top-k causes in the *other* relations, as a distribution: (median, mean, max,
    cell count and how many are at least `threshold` points; the cells at or above it, largest first)."""
    top = table[(table.kind == "top") & (table.k == k) & (table.language == language)]
    cells = top[top.relation != top.ablated]
    d = cells.drop_points.to_numpy(float)
    above = cells[cells.drop_points >= threshold].sort_values("drop_points", ascending=False)
    stats = dict(cells=len(d), median=float(np.median(d)) if len(d) else float("nan"),
                 mean=float(d.mean()) if len(d) else float("nan"), max=float(d.max()) if len(d) else float("nan"),
                 above=len(above), threshold=threshold, zero=int((d == 0).sum()))
    return stats, above[["ablated", "relation", "base_accuracy", "accuracy", "drop_points"]].reset_index(drop=True)


def critical_members(members: pd.DataFrame, critical: pd.DataFrame) -> pd.DataFrame:
    """Which critical neurons sit in which neuron sets. `members`: set (any label columns) and neuron;
    `critical`: RunStore.critical_neurons. One row per (set member that is critical, relation it breaks)."""
    return members.merge(critical[["neuron", "layer", "module", "index", "relation", "drop_points"]]
                         .rename(columns={"relation": "breaks", "drop_points": "single_drop"}), on="neuron")


def neuron_label(layer: int, module: str, index: int, neuron: int) -> str:
    return f"#{neuron} (L{layer} {module} {index})"


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


def intra_relation(table: pd.DataFrame, k: int, language: str, family: str = RANDOM) -> pd.DataFrame:
    """Per relation: original accuracy, mean accuracy with `family`'s random k-sets off (with seed range), with
    its own top-k off."""
    own = table[(table.kind == "top") & (table.k == k) & (table.language == language) & (table.ablated == table.relation)]
    rnd = random_rows(table, family)
    rnd = rnd[(rnd.k == k) & (rnd.language == language)]
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


def random_seed_accuracies(table: pd.DataFrame, k: int, language: str, family: str = RANDOM) -> pd.DataFrame:
    """Per relation and random seed: accuracy with that seed's random k neurons off (the spread behind `random`)."""
    rnd = random_rows(table, family)
    rnd = rnd[(rnd.k == k) & (rnd.language == language)]
    return rnd[["relation", "seed", "accuracy"]].sort_values(["relation", "seed"]).reset_index(drop=True)


def sweep_curves(table: pd.DataFrame, relation: str, language: str) -> pd.DataFrame:
    """Accuracy vs k with `relation`'s top-k off: the relation itself, the mean of the others, and random sets."""
    t = table[(table.language == language)]
    top = t[(t.kind == "top") & (t.ablated == relation)]
    own = top[top.relation == relation][["k", "accuracy"]].assign(series=relation)
    others = top[top.relation != relation].groupby("k", as_index=False).accuracy.mean().assign(series="other relations (mean)")
    rnd = random_rows(t)
    rnd = rnd[rnd.relation == relation].groupby("k", as_index=False).accuracy.mean().assign(
        series=f"{relation}, random sets")
    return pd.concat([own, others, rnd], ignore_index=True).sort_values(["series", "k"]).reset_index(drop=True)


def sweep_random_seeds(table: pd.DataFrame, relation: str, language: str, family: str = RANDOM) -> pd.DataFrame:
    """Every random set behind sweep_curves' random line: k, seed and `relation`'s accuracy with it off."""
    rnd = random_rows(table, family)
    rnd = rnd[(rnd.relation == relation) & (rnd.language == language)]
    return rnd[["k", "seed", "accuracy"]].sort_values(["k", "seed"]).reset_index(drop=True)


def cumulativity_from_table(effects: pd.DataFrame, sweep: list[int], language: str | None) -> pd.DataFrame:
    """Cumulativity for every consecutive pair of the sweep: macro, micro, and #total."""
    rows = []
    for k_from, k_to in zip(sweep, sweep[1:]):
        per = cumulativity(effects, k_from, k_to, language)
        rows.append(dict(k_from=k_from, k_to=k_to, **cumulativity_summary(per)))
    return pd.DataFrame(rows)
