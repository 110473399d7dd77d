"""How pages write the reviewer's statistics: p-values and intervals as text, critical neurons as labels.

Pure pandas, no Streamlit: the numbers themselves come from core.metrics and core.statistics.
"""
from __future__ import annotations

import math

import pandas as pd

from core.metrics import neuron_label

NO_CRITICAL = "no critical neuron"
CRITICAL_HERE = "holds a critical neuron of this relation"
CRITICAL_ELSEWHERE = "holds critical neurons of other relations only"
UNSCREENED = "not screened for critical neurons"  # a run without single_neuron or random_sets tables


def p_text(p: float) -> str:
    """A p-value as text; 0 is what an exact test's p underflows to, far below any threshold."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if p == 0:
        return "< 1e-300"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def value_interval(value: float, low: float, high: float, digits: int = 1) -> str:
    """'66.7 [53.7, 79.6]': a figure with its interval; n/a where it could not be computed."""
    def one(x: float) -> str:
        return "n/a" if x is None or x != x else f"{x:.{digits}f}"
    return f"{one(value)} [{one(low)}, {one(high)}]"


def critical_text(members: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per set (`keys`), its critical neurons as one line each, e.g.
    '#445 (L0 up_proj 61): company_hq -74.5p alone'. `members`: core.metrics.critical_members; a neuron
    that breaks several relations is named once with each of them."""
    if members.empty:
        return pd.DataFrame(columns=[*keys, "critical_neurons"])
    per_neuron = members.sort_values("single_drop", ascending=False).groupby(
        [*keys, "neuron", "layer", "module", "index"], sort=False).apply(
        lambda g: ", ".join(f"{r} -{d:.1f}p" for r, d in zip(g.breaks, g.single_drop)), include_groups=False)
    per_neuron = per_neuron.rename("costs").reset_index()
    per_neuron["line"] = [f"{neuron_label(l, m, i, n)}: {c} alone" for l, m, i, n, c in zip(
        per_neuron.layer, per_neuron.module, per_neuron["index"], per_neuron.neuron, per_neuron.costs)]
    return per_neuron.groupby(keys, sort=False).line.agg("; ".join).rename("critical_neurons").reset_index()


def mark_random_sets(seeds: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """Each random set's dot (`seeds`: relation, family, seed, ...) with `random_set` (its kind:
    whether the set holds a neuron that alone breaks the dot's relation, only others' critical neurons, or
    none: NO_CRITICAL, CRITICAL_HERE, CRITICAL_ELSEWHERE) and `critical_neurons` (their labels, "" when
    none). `members`: critical_members of the sets."""
    text = critical_text(members, ["family", "seed"])
    out = seeds.merge(text, on=["family", "seed"], how="left")
    out["critical_neurons"] = out.critical_neurons.fillna("")
    breaks_here = set(zip(members.family, members.seed, members.breaks)) if len(members) else set()
    out["random_set"] = [
        CRITICAL_HERE if (f, s, r) in breaks_here else CRITICAL_ELSEWHERE if names else NO_CRITICAL
        for f, s, r, names in zip(out.family, out.seed, out.relation, out.critical_neurons)]
    return out
