"""The end-of-run summary and the README's 'What the demo model shows' section, computed from a run folder.

Read through the explorer's store and computed by the explorer's own functions (RunStore.ablation_summary,
RunStore.paired_outcomes, core.metrics; RunStore.overlap_counts, core.overlap), so the README, the app and
the tests quote one source. `Findings` gathers every figure once; the text and Markdown forms only format it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.manifest import Manifest, module_sizes
from core.metrics import (ALPHA, CROSS_THRESHOLD, critical_members, cross_relation, neuron_label, random_summary,
                          significance, summarise_relations)
from core.overlap import complete_grid, filtered_total, overlap_long, with_permutation_null
from core.run_layout import RANDOM, RANDOM_NONCRITICAL
from core.store import RunStore

CLOSE_PAIRS = (("person_father", "person_mother"), ("person_plays_pro_sport", "person_plays_position_in_sport"),
               ("landmark_in_country", "landmark_on_continent"), ("company_ceo", "company_hq"))


@dataclass
class Findings:
    manifest: Manifest
    k: int
    language: str
    table: pd.DataFrame  # per relation: summarise_relations + significance
    noncritical: pd.DataFrame  # random_summary of the non-critical family (empty when the run has none)
    critical: pd.DataFrame  # RunStore.critical_neurons (empty when not screened)
    critical_in_sets: pd.DataFrame  # critical neurons inside random sets and top-k sets at k
    cross: dict
    cross_cells: pd.DataFrame
    pairs: pd.DataFrame  # relation pairs in `language` with overlap, hypergeometric and permutation columns
    null_seeds: int


def relation_overlap(store: RunStore, k: int, language: str) -> pd.DataFrame:
    """The overlap page's relation x relation view in one language, no layer or module filter: every pair of
    relations (zero-sharing pairs included) with shared, expected (two random sets), the hypergeometric
    columns and, in the identification language, the permutation null's."""
    m = store.manifest
    sizes = dict(module_sizes(m))
    modules, layers = list(sizes), (0, int(m.neurons["num_layers"]) - 1)
    shared, set_sizes = store.overlap_counts(k, [language], layers, modules)
    long = overlap_long(complete_grid(shared, [(r, language) for r in store.relations]), set_sizes, "count",
                        filtered_total(sizes, modules, layers))
    long = long[long.relation_a < long.relation_b].sort_values(["relation_a", "relation_b"], ignore_index=True)
    if language == m.options.get("identification_language", "en") and store.available("null_top") and store.null_seeds:
        long = with_permutation_null(long, store, k, layers, modules)
    return long


def findings(store: RunStore, language: str = "en", k: int | None = None) -> Findings:
    k = int(k or store.manifest.k)
    ablation = store.ablation_summary("train")
    table = summarise_relations(ablation, k, language)
    paired = store.paired_outcomes(k, language)
    table = table.merge(significance(paired), on="relation", how="left")
    noncritical = random_summary(ablation, k, language, RANDOM_NONCRITICAL)
    critical = store.critical_neurons() if store.available("single_neuron") else pd.DataFrame(
        columns=["neuron", "layer", "module", "index", "relation", "language", "prompts", "base_accuracy", "accuracy",
                 "drop_points"])
    members = []
    if store.available("random_sets"):
        plain = store.random_sets(k)
        plain = plain[plain.family == RANDOM]
        members.append(plain.assign(set="random seed " + plain.seed.astype(str))[["set", "neuron"]])
    for rel in store.relations:
        members.append(store.top_neurons(rel, store.manifest.options.get("identification_language", "en"), k)
                       .assign(set=f"top-{k} of {rel}")[["set", "neuron"]])
    in_sets = critical_members(pd.concat(members, ignore_index=True), critical) if len(critical) else critical
    cross, cells = cross_relation(ablation, k, language)
    return Findings(store.manifest, k, language, table, noncritical, critical, in_sets, cross, cells,
                    relation_overlap(store, k, language), store.null_seeds)


def read_findings(run_dir: Path, language: str = "en", k: int | None = None) -> Findings:
    store = RunStore(run_dir)
    try:
        return findings(store, language, k)
    finally:
        store.close()


# The embedded models' design targets (README "The embedded demo model"): what a run must show for its model
# to be the explorer's default.
MIN_MEAN_OWN_DROP = 30.0  # accuracy points, own top-k off, mean over relations
MIN_BEATS_WORST_SHARE = 10 / 12  # relations whose own drop exceeds their worst random set's
MIN_LOGPROB_RATIO = 10.0  # own top-k's first-token log-probability drop over the random sets' (mean over sets)


@dataclass(frozen=True)
class Target:
    name: str
    required: str
    achieved: str
    met: bool


def target_checks(f: Findings) -> list[Target]:
    """The design targets against this run's figures (the same ones the table and the lines below it quote)."""
    t = f.table
    relations = len(t)
    needed = math.ceil(MIN_BEATS_WORST_SHARE * relations - 1e-9)
    beats = int(t.beats_worst_random.sum())
    ratio = _times(t.own_first_lp_drop.mean(), t.random_first_lp_drop.mean())
    return [
        Target("mean own drop", f">= {MIN_MEAN_OWN_DROP:g}p", f"{t.own_drop.mean():.1f}p",
               t.own_drop.mean() >= MIN_MEAN_OWN_DROP),
        Target("own drop beats the worst random set", f"in >= {needed} of {relations}", f"{beats} of {relations}",
               beats >= needed),
        Target("log-probability drop over random (mean over sets)", f">= {MIN_LOGPROB_RATIO:g}x", f"{ratio:.1f}x",
               ratio >= MIN_LOGPROB_RATIO),
    ]


def _times(own: float, random: float) -> float:
    """How many times the random sets' log-probability drop the own top-k's is (the README's and the targets')."""
    return own / max(random, 1e-12)


def _targets_text(f: Findings) -> str:
    checks = target_checks(f)
    return "; ".join(f"{c.name} {c.required}: {c.achieved}, {'met' if c.met else 'not met'}" for c in checks)


def _drop(points: float) -> str:
    """A drop in points as the README writes it: -12.3p, and 0.0p rather than -0.0p."""
    return f"{_neg(points)}p"


def _neg(points: float) -> str:
    """-points to one decimal, never "-0.0"."""
    value = round(-points, 1)
    return f"{value if value != 0 else 0.0:.1f}"


def _p(p: float) -> str:
    return "n/a" if p != p else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def _critical_lines(f: Findings) -> list[str]:
    c = f.critical
    if not len(c):
        return []
    threshold = float(f.manifest.options.get("critical_threshold", 20.0))
    neurons = c.drop_duplicates("neuron")
    lines = [f"- **Critical neurons**: {len(neurons)} single neurons each cost a relation at least {threshold:g} "
             "points when switched off alone: " + "; ".join(
                 f"{neuron_label(r.layer, r.module, r['index'], r.neuron)} {r.relation} {_drop(r.drop_points)}"
                 for _, r in c.iterrows()) + "."]
    where = f.critical_in_sets
    if len(where):
        grouped = where.groupby(["set"]).apply(lambda g: ", ".join(sorted({f"#{n}" for n in g.neuron})),
                                               include_groups=False)
        lines.append("  They sit in: " + "; ".join(f"{s} ({n})" for s, n in grouped.items()) + ".")
    return lines


def markdown_summary(run_dir: Path, language: str = "en") -> str:
    """The README's 'What the demo model shows' section: every figure it quotes."""
    f = read_findings(run_dir, language)
    t, m, k = f.table, f.manifest, f.k
    n = m.neurons["total"]
    seeds = int(t.seeds.max())
    lines = [
        f"k = {k:,} of {n:,} neurons ({k / n:.1%}), '{m.neurons['definition']}' definition, "
        f"{m.options['pooling']} pooling; evaluation prompts in {language}, trained templates "
        f"({int(t.prompts.min())}–{int(t.prompts.max())} per relation); drops in accuracy points (p). Own top-k: "
        "95% percentile bootstrap over prompts. Random: "
        f"{seeds} uniform random sets of {k:,} neurons, as median [min, max] and the mean with a 95% percentile "
        "bootstrap over the sets. p: two-sided exact McNemar test of own top-k against each random set on the same "
        "prompts; the largest over the sets (own must beat every one), Holm-adjusted over the relations.",
        "",
        "| relation | baseline | own top-k off [95% CI] | random: median [min, max] | random mean [95% CI] | "
        "beats the worst random set | p (Holm) | largest drop caused in another |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in t.itertuples():
        lines.append(
            f"| {r.relation} | {r.baseline:.1%} | {_drop(r.own_drop)} [{_neg(r.own_high)}, {_neg(r.own_low)}] | "
            f"{_drop(r.random_median)} [{_neg(r.random_max)}, {_neg(r.random_min)}] | "
            f"{_drop(r.random_drop)} [{_neg(r.random_high)}, {_neg(r.random_low)}] | "
            f"{'yes' if r.beats_worst_random else '**no**'} (seed {r.worst_seed}: {_drop(r.random_max)}) | "
            f"{_p(r.p_holm)} | {r.largest_other} {_drop(r.largest_other_drop)} |")
    lines.append(
        f"| **mean** | {t.baseline.mean():.1%} | **{_drop(t.own_drop.mean())}** | median of medians "
        f"{_drop(t.random_median.median())} | **{_drop(t.random_drop.mean())}** | {int(t.beats_worst_random.sum())} of "
        f"{len(t)} | {int(t.significant.sum())} of {len(t)} | |")
    lines.append("")
    lines.append(f"- **Significance**: own top-k off breaks more answers than every random set in "
                 f"{int(t.significant.sum())} of {len(t)} relations at α = {ALPHA} after Holm correction; its drop "
                 f"exceeds the worst random set's in {int(t.beats_worst_random.sum())} of {len(t)}.")
    worst = t.loc[t.random_max.idxmax()]
    lines.append(f"- **Spread of the random sets**: the largest single random-set drop is {_drop(worst.random_max)} "
                 f"({worst.relation}, seed {worst.worst_seed}); its mean over the {seeds} sets is "
                 f"{_drop(worst.random_drop)}, the median {_drop(worst.random_median)}.")
    lines += _critical_lines(f)
    if len(f.noncritical):
        nc = f.noncritical
        lines.append(f"- **Random sets without critical neurons** ({int(nc.seeds.max())} sets of {k:,} drawn from "
                     f"the non-critical neurons): mean {_drop(nc.random_drop.mean())}, largest single drop "
                     f"{_drop(nc.random_max.max())} ({nc.loc[nc.random_max.idxmax(), 'relation']}).")
    own_lp, rnd_lp = t.own_first_lp_drop.mean(), t.random_first_lp_drop.mean()
    rnd_lp_median = t.random_first_lp_drop_median.mean()
    lines.append(
        f"- **Gold object's first-token log-probability**: own top-k off lowers it by {own_lp:.3f} nats on average; "
        f"random sets by {rnd_lp:.4f} nats (mean over sets; **{_times(own_lp, rnd_lp):.0f}x**), or "
        f"{rnd_lp_median:.4f} nats taking each relation's median set "
        f"(**{_times(own_lp, rnd_lp_median):.0f}x**)"
        + (f"; random sets without critical neurons {f.noncritical.random_first_lp_drop.mean():.4f} nats "
           f"(**{_times(own_lp, f.noncritical.random_first_lp_drop.mean()):.0f}x**)" if len(f.noncritical) else "")
        + ".")
    c, cells = f.cross, f.cross_cells
    lines.append(
        f"- **Other relations** ({c['cells']} cells: one relation's top-k off, another evaluated): median "
        f"{_drop(c['median'])}, mean {_drop(c['mean'])}, max {_drop(c['max'])}; {c['zero']} cells lose nothing; "
        f"{c['above']} cells lose {CROSS_THRESHOLD:g} points or more"
        + (": " + ", ".join(f"{r.ablated} → {r.relation} {_drop(r.drop_points)}" for r in cells.itertuples())
           if len(cells) else "") + ".")
    lines += _overlap_lines(f)
    lines.append(f"- **Design targets**: {_targets_text(f)}.")
    return "\n".join(lines)


def _overlap_lines(f: Findings) -> list[str]:
    pairs, k = f.pairs, f.k
    if not len(pairs):
        return []
    close = {frozenset(p) for p in CLOSE_PAIRS}
    is_close = [frozenset((a, b)) in close for a, b in zip(pairs.relation_a, pairs.relation_b)]
    near, far = pairs[is_close], pairs[[not x for x in is_close]]
    has_null = "p_null_holm" in pairs
    def pair_text(r) -> str:
        text = f"{r.relation_a}/{r.relation_b} {int(r.shared)} (hypergeometric p = {_p(r.p_more)}"
        return text + (f", permutation p (Holm) = {_p(r.p_null_holm)})" if has_null else ")")
    lines = [
        f"- **Overlap of top-{k:,} sets** ({f.language}): two independent random sets would share "
        f"{pairs.expected.mean():.1f} (hypergeometric mean)"
        + (f"; with relation labels permuted among the identification prompts ({f.null_seeds} permutations), top-k "
           f"sets share {pairs.null_mean.iloc[0]:.1f} on average" if has_null else "")
        + ". Closely related pairs: " + "; ".join(pair_text(r) for r in near.itertuples()) + ".",
        f"  The other {len(far)} pairs: mean {far.shared.mean():.1f}, max {int(far.shared.max())}; "
        f"{int((far.shared == 0).sum())} share none, which two random sets would do with probability "
        f"{far.p_less[far.shared == 0].mean():.3f} each: the hypergeometric null does not fit sets that the "
        "construction pushes apart.",
    ]
    if has_null:
        values = len(pairs) * f.null_seeds
        above = pairs[pairs.shared > pairs.null_max]
        lines.append(f"  Pairs sharing more than any pair in any permutation (max {int(pairs.null_max.iloc[0])} of "
                     f"{values:,} null overlaps: p = 1/{values + 1:,} each, family-wise at most "
                     f"{len(pairs)}/{values + 1:,} = {len(pairs) / (values + 1):.3f} over the {len(pairs)} pairs): "
                     + (", ".join(f"{r.relation_a}/{r.relation_b} ({int(r.shared)})" for r in above.itertuples())
                        or "none") + ".")
    return lines


def print_summary(run_dir: Path, language: str = "en") -> None:
    f = read_findings(run_dir, language)
    t, m, k = f.table, f.manifest, f.k
    n = m.neurons["total"]
    print(f"\nRun {run_dir}: {m.model['source']} ({n:,} neurons, '{m.neurons['definition']}'), "
          f"k = {k:,} ({k / n:.2%}), evaluation prompts in {language}, training templates")
    print(f"{'relation':32s} {'base':>6s} {'own drop [95% CI]':>22s} {'random median [min,max]':>25s} "
          f"{'p (Holm)':>9s} {'largest other':>32s}")
    for r in t.itertuples():
        print(f"{r.relation:32s} {r.baseline:6.1%} {r.own_drop:6.1f}p [{r.own_low:5.1f},{r.own_high:5.1f}] "
              f"{r.random_median:6.1f}p [{r.random_min:5.1f},{r.random_max:5.1f}] {_p(r.p_holm):>9s} "
              f"{r.largest_other:>24s} {r.largest_other_drop:5.1f}p")
    print(f"significant in {int(t.significant.sum())} of {len(t)} relations at alpha = {ALPHA} after Holm; own drop "
          f"beats the worst random set in {int(t.beats_worst_random.sum())} of {len(t)}")
    print(f"mean own drop {t.own_drop.mean():.1f}p, random mean {t.random_drop.mean():.1f}p "
          f"(median of medians {t.random_median.median():.1f}p); other relations median {f.cross['median']:.1f}p, "
          f"max {f.cross['max']:.1f}p, {f.cross['above']} cells >= {CROSS_THRESHOLD:g}p")
    if len(f.critical):
        print(f"critical neurons: {', '.join(sorted({f'#{i}' for i in f.critical.neuron}))}")
    print(f"design targets: {_targets_text(f)}")
