"""Quick measure of how strong a model's relation neurons are (used to choose the demo model's design).

    python bench/ablation_probe.py --model data/models/demo [--definition paper] [--pooling mean] [--fractions 0.01,0.03]

English only, all templates of the evaluation split: identifies each relation's
neurons (AP, validated English identification prompts, 4x negatives) and prints,
for each fraction of all neurons switched off, the mean drop in accuracy of the
relation itself (training and held-out templates), of the other relations, and
of random sets of the same size (3 seeds), plus the drop of the gold object's
first-token log-probability and its ratio to the random sets'.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.adapters import neuron_space_for  # noqa: E402
from core.capture import capture_pooled  # noqa: E402
from core.effects import evaluate_prompts  # noqa: E402
from core.facts import load_corpus  # noqa: E402
from core.hooks import neuron_hooks  # noqa: E402
from core.loading import load_causal_lm  # noqa: E402
from core.scoring import average_precision, top_k  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="data/models/demo")
    parser.add_argument("--facts", default="data/facts/demo")
    parser.add_argument("--definition", default="paper")
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--fractions", default="0.01,0.03")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    corpus = load_corpus(Path(args.facts))
    lm = load_causal_lm(args.model)
    space = neuron_space_for(lm.config, args.definition)
    hooks = neuron_hooks(lm.model, space)
    started = time.time()
    rels = corpus.relation_names
    ev = (corpus.prompts(split="evaluation", template_kind="train", language="en")
          + corpus.prompts(split="evaluation", template_kind="heldout", language="en"))
    rel_ev = np.array([p.relation for p in ev])
    held = np.array([p.template_kind == "heldout" for p in ev])

    def run():
        out = evaluate_prompts(lm.model, lm.tokenizer, ev, batch_size=512)
        return np.array([o.correct for o in out], float), np.array([o.gold_first_logprob for o in out])

    base_c, base_lp = run()
    print(f"baseline (en, evaluation split): trained templates {base_c[~held].mean():.3f}, "
          f"held-out {base_c[held].mean():.3f}")
    ident = corpus.prompts(split="identification", template_kind="train", language="en")
    valid = [p for p, o in zip(ident, evaluate_prompts(lm.model, lm.tokenizer, ident, batch_size=512)) if o.correct]
    acts = capture_pooled(hooks, lm.tokenizer, [p.text for p in valid], args.pooling, batch_size=256)
    rel_of = np.array([p.relation for p in valid])
    rng = np.random.default_rng(0)
    aps = {}
    for r in rels:
        pos = np.where(rel_of == r)[0]
        pool = np.where(rel_of != r)[0]
        neg = rng.choice(pool, min(4 * len(pos), len(pool)), replace=False)
        rows = np.concatenate([pos, neg])
        labels = np.zeros(len(rows), bool)
        labels[: len(pos)] = True
        aps[r] = average_precision(torch.tensor(acts[rows]), torch.tensor(labels)).numpy()
    print(f"{space.describe()}; pooling {args.pooling}")

    def drops(mask, c, lp):
        return 100 * (base_c[mask].mean() - c[mask].mean()), (base_lp[mask] - lp[mask]).mean()

    for frac in [float(x) for x in args.fractions.split(",")]:
        k = int(round(frac * space.total))
        intra, intra_held, other, lp_intra, per = [], [], [], [], []
        for r in rels:
            with hooks.ablate([space.neuron(i) for i in top_k(aps[r], k)]):
                c, lp = run()
            d, l = drops((rel_ev == r) & ~held, c, lp)
            intra.append(d)
            lp_intra.append(l)
            per.append(round(d))
            intra_held.append(drops((rel_ev == r) & held, c, lp)[0])
            other.append(drops((rel_ev != r) & ~held, c, lp)[0])
        rnd, lp_rnd = [], []
        for seed in range(3):
            ids = np.random.default_rng(100 + seed).choice(space.total, k, replace=False)
            with hooks.ablate([space.neuron(i) for i in ids]):
                c, lp = run()
            d, l = drops(~held, c, lp)
            rnd.append(d)
            lp_rnd.append(l)
        print(f"k={k} ({frac:.1%}): intra {np.mean(intra):.1f} pts (per relation {per}), held-out intra "
              f"{np.mean(intra_held):.1f}, other relations {np.mean(other):.1f}, random {np.mean(rnd):.1f}; "
              f"gold first-token log-prob drop intra {np.mean(lp_intra):.3f} vs random {np.mean(lp_rnd):.4f} "
              f"({np.mean(lp_intra) / max(np.mean(lp_rnd), 1e-9):.0f}x)  [{time.time() - started:.0f} s]")


if __name__ == "__main__":
    main()
