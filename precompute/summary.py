"""The end-of-run summary: the README's 'What the model shows' table, computed from a run folder.

Read through the explorer's store and computed by the explorer's own functions (RunStore.ablation_summary,
core.metrics.summarise_relations; RunStore.overlap_counts, core.overlap), so the README and the app agree.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.manifest import Manifest, module_sizes
from core.metrics import summarise_relations
from core.overlap import complete_grid, filtered_total, overlap_long
from core.store import RunStore


def _summary(store: RunStore, language: str, k: int | None) -> tuple[pd.DataFrame, Manifest, int]:
    k = k or store.manifest.k
    return summarise_relations(store.ablation_summary("train"), k, language), store.manifest, k


def summary_table(run_dir: Path, language: str = "en", k: int | None = None):
    store = RunStore(run_dir)
    try:
        return _summary(store, language, k)
    finally:
        store.close()


def print_summary(run_dir: Path, language: str = "en") -> None:
    table, manifest, k = summary_table(run_dir, language)
    n = manifest.neurons["total"]
    print(f"\nRun {run_dir}: {manifest.model['source']} ({n:,} neurons, '{manifest.neurons['definition']}'), "
          f"k = {k:,} ({k / n:.2%}), evaluation prompts in {language}, training templates")
    print(f"{'relation':32s} {'base':>6s} {'own drop':>9s} {'random drop [95% CI]':>22s} {'largest other':>32s} {'most improved':>32s}")
    for r in table.itertuples():
        print(f"{r.relation:32s} {r.baseline:6.1%} {r.own_drop:8.1f}p {r.random_drop:6.1f}p [{r.random_low:5.1f},{r.random_high:5.1f}]"
              f" {r.largest_other:>24s} {r.largest_other_drop:5.1f}p {r.most_improved:>24s} {r.most_improved_drop:5.1f}p")
    print(f"{'mean':32s} {table.baseline.mean():6.1%} {table.own_drop.mean():8.1f}p {table.random_drop.mean():6.1f}p"
          f"   others mean {table.others_mean_drop.mean():.1f}p")
    ratio = table.own_first_lp_drop.mean() / max(table.random_first_lp_drop.mean(), 1e-9)
    print(f"gold first-token log-prob drop: own {table.own_first_lp_drop.mean():.3f} nats, random "
          f"{table.random_first_lp_drop.mean():.4f} nats ({ratio:.0f}x)")


CLOSE_PAIRS = (("person_father", "person_mother"), ("person_plays_pro_sport", "person_plays_position_in_sport"),
               ("landmark_in_country", "landmark_on_continent"), ("company_ceo", "company_hq"))


def relation_overlap(store: RunStore, k: int, language: str) -> pd.DataFrame:
    """The overlap page's relation x relation view in one language, no layer or module filter: every pair of
    relations (zero-sharing pairs included) with shared, expected (two random sets) and the other metrics."""
    m = store.manifest
    sizes = dict(module_sizes(m))
    modules, layers = list(sizes), (0, int(m.neurons["num_layers"]) - 1)
    shared, set_sizes = store.overlap_counts(k, [language], layers, modules)
    long = overlap_long(complete_grid(shared, [(r, language) for r in store.relations]), set_sizes, "count",
                        filtered_total(sizes, modules, layers))
    return long[long.relation_a < long.relation_b].sort_values(["relation_a", "relation_b"], ignore_index=True)


def markdown_summary(run_dir: Path, language: str = "en") -> str:
    """The README's 'What the demo model shows' section: per-relation table, targets, overlap of related pairs."""
    store = RunStore(run_dir)
    try:
        table, manifest, k = _summary(store, language, None)
        pairs = relation_overlap(store, k, language)
    finally:
        store.close()
    n = manifest.neurons["total"]
    lines = [
        f"k = {k:,} of {n:,} neurons ({k / n:.1%}), '{manifest.neurons['definition']}' definition, "
        f"{manifest.options['pooling']} pooling; evaluation prompts in {language}, trained templates; "
        "drops in accuracy points (p); random: mean over "
        f"{int(table.seeds.max())} random sets of the same size with a 95% interval.",
        "",
        "| relation | baseline | own top-k off | random k off [95% CI] | largest drop caused in another | largest improvement caused |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        improvement = f"{r.most_improved} {-r.most_improved_drop:+.1f}p" if r.most_improved_drop < 0 else "none"
        lines.append(f"| {r.relation} | {r.baseline:.1%} | -{r.own_drop:.1f}p | -{r.random_drop:.1f}p "
                     f"[{-r.random_high:.1f}, {-r.random_low:.1f}] | {r.largest_other} -{r.largest_other_drop:.1f}p | {improvement} |")
    ratio = table.own_first_lp_drop.mean() / max(table.random_first_lp_drop.mean(), 1e-12)
    lines += [
        f"| **mean** | {table.baseline.mean():.1%} | **-{table.own_drop.mean():.1f}p** | **-{table.random_drop.mean():.1f}p** | "
        f"others on average -{table.others_mean_drop.mean():.1f}p | |",
        "",
        f"- Gold object's first-token log-probability: own top-k off lowers it by {table.own_first_lp_drop.mean():.3f} nats "
        f"on average, random sets by {table.random_first_lp_drop.mean():.4f} nats: **{ratio:.0f}x**.",
    ]
    count = {frozenset((a, b)): int(c) for a, b, c in zip(pairs.relation_a, pairs.relation_b, pairs.shared)}
    close = [(a, b, count[frozenset((a, b))]) for a, b in CLOSE_PAIRS if frozenset((a, b)) in count]
    close_set = {frozenset(p[:2]) for p in close}
    others = [int(c) for pair, c in zip(zip(pairs.relation_a, pairs.relation_b), pairs.shared) if frozenset(pair) not in close_set]
    chance = float(pairs.expected.mean()) if len(pairs) else k * k / n  # every set has k neurons: k*k/n
    lines.append(
        f"- Overlap of top-{k:,} sets (chance for two random sets: {chance:.1f}): closely related pairs "
        + ", ".join(f"{a}/{b} {c}" for a, b, c in close)
        + f" (mean {sum(c for *_, c in close) / max(len(close), 1):.1f}); the other {len(others)} pairs mean "
        f"{sum(others) / max(len(others), 1):.1f}, max {max(others) if others else 0}.")
    return "\n".join(lines)
