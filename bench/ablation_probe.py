"""How strong a model's relation neurons are, measured by the real pipeline (used to choose the demo model's design).

    python -m bench.ablation_probe --model data/models/demo [--definition paper] [--pooling mean] \
        [--fractions 1%,3%] [--out DIR] [--facts data/facts/demo] [--threads 2] [-- extra precompute run options]

Runs `python -m precompute run` in English, with the fractions as the k sweep, 3 random sets per k and every
template of the evaluation split, into --out (a temporary folder unless given; rerun with the same --out to
resume). Then prints, for each k, what `precompute summary` and the explorer compute from that run
(RunStore.ablation_summary, core.metrics.summarise_relations), averaged over relations: the drop of the
relation itself with its own top-k off (trained and held-out templates), of the other relations, of random
sets of the same size, and of the gold object's first-token log-probability, with its ratio to random sets'.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from core.metrics import summarise_relations
from core.store import RunStore


def run_pipeline(args, out: Path) -> None:
    cmd = [sys.executable, "-m", "precompute", "run", "--model", args.model, "--facts", args.facts, "--out", str(out),
           "--languages", "en", "--definition", args.definition, "--pooling", args.pooling, "--k-sweep", args.fractions,
           "--k", args.fractions.split(",")[-1], "--random-seeds", "3", "--threads", str(args.threads), *args.extra]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def report(out: Path) -> None:
    store = RunStore(out)
    try:
        m = store.manifest
        train, heldout = store.ablation_summary("train"), store.ablation_summary("heldout")
    finally:
        store.close()
    n = m.neurons["total"]
    print(f"{n:,} neurons ('{m.neurons['definition']}'), {m.options['pooling']} pooling; drops in accuracy points, "
          "English, evaluation split; random: 3 sets")
    for k in m.k_sweep:
        t = summarise_relations(train, k, "en")
        h = summarise_relations(heldout, k, "en")
        ratio = t.own_first_lp_drop.mean() / max(t.random_first_lp_drop.mean(), 1e-9)
        print(f"k={k:,} ({k / n:.1%}): own {-t.own_drop.mean():.1f} (per relation "
              f"{[round(-d) for d in t.own_drop]}), held-out templates {-h.own_drop.mean():.1f}, other relations "
              f"{-t.others_mean_drop.mean():.1f}, random {-t.random_drop.mean():.1f}; gold first-token log-prob drop "
              f"own {t.own_first_lp_drop.mean():.3f} vs random {t.random_first_lp_drop.mean():.4f} ({ratio:.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="data/models/demo")
    parser.add_argument("--facts", default="data/facts/demo")
    parser.add_argument("--definition", default="paper")
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--fractions", default="1%,3%", help="the k sweep: counts, fractions or percentages")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("extra", nargs="*", help="precompute run options after --, appended (a later option wins)")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "probe"
        run_pipeline(args, out)
        report(out)
    print(f"[{time.time() - started:.0f} s]")


if __name__ == "__main__":
    main()
