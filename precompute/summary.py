"""The end-of-run summary: the README's 'What the model shows' table, computed from a run folder."""
from __future__ import annotations

from pathlib import Path

from core.manifest import read_manifest
from core.metrics import relation_summary
from core.results import read_table


def summary_table(run_dir: Path, language: str = "en", k: int | None = None):
    manifest = read_manifest(run_dir)
    k = k or manifest.k
    return relation_summary(read_table(run_dir, "baseline"), read_table(run_dir, "effects"), k, language), manifest, k


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


def markdown_summary(run_dir: Path, language: str = "en") -> str:
    """The README's 'What the demo model shows' section: per-relation table, targets, overlap of related pairs."""
    from core.metrics import overlap_matrix, top_sets

    table, manifest, k = summary_table(run_dir, language)
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
    scores = read_table(run_dir, "scores")
    sets = top_sets(scores[scores.language == language], k)
    counts = overlap_matrix(sets, "count")
    chance = k * k / n
    close = [(a, b, int(counts.loc[a, b])) for a, b in CLOSE_PAIRS if a in counts.index and b in counts.index]
    close_set = {frozenset(p[:2]) for p in close}
    others = [int(counts.loc[a, b]) for i, a in enumerate(counts.index) for b in counts.index[i + 1:]
              if frozenset((a, b)) not in close_set]
    lines.append(
        f"- Overlap of top-{k:,} sets (chance for two random sets: {chance:.1f}): closely related pairs "
        + ", ".join(f"{a}/{b} {c}" for a, b, c in close)
        + f" (mean {sum(c for *_, c in close) / max(len(close), 1):.1f}); the other {len(others)} pairs mean "
        f"{sum(others) / max(len(others), 1):.1f}, max {max(others) if others else 0}.")
    return "\n".join(lines)
