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
