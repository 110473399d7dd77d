"""AP of every relation over all neurons: the pooled scorer vs one sort (the floor), the per-relation scorer and
a per-neuron sklearn loop, on the same synthetic capture in one process.

    python -m bench.ap_speed [--rows 3600] [--neurons 3584] [--relations 12] [--positives 300]
                             [--negatives-ratio 4] [--repeats 5] [--sample 100] [--threads 2] [--ties]
    python -m bench.ap_speed --neurons 256 --rows 400        # toy size (the test suite's smoke test)

The data is built here, so the script runs on a fresh clone: float32 activations with the demo's shape (3,600
captured prompts x 3,584 neurons), 12 relations of rows/relations prompts each; a relation's identification set
is its first `positives` prompts and 4x as many negatives drawn from the other relations' prompts (all of them
from the same pooled rows, as in the pipeline), and a few neurons per relation are shifted up on its prompts.
`--ties` rounds the activations to quarters (many tied values); `--neurons` sets the width.

Timed, after one warm-up of each, the median of `repeats` rounds (each round times all three, so load on the
machine falls on each alike):
  floor    one torch.sort of every neuron's values over the pooled rows ([neurons, rows], contiguous, prepared
           outside the timing): what any exact AP needs at least once per neuron;
  pooled   core.scoring.PooledSets: layout plus AP of every relation for every neuron, from the [rows, neurons]
           matrix as core.score_stream holds it (one sort per neuron, shared by every relation);
  old      core.scoring.average_precision per relation (the previous score_stream's loop: each relation's rows
           gathered, its positives and negatives sorted per neuron).
sklearn.metrics.average_precision_score is timed on `sample` neurons for every relation, and its per-call cost
times neurons x relations gives the loop's full time (an extrapolation, said so in the output).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from core.scoring import PooledSets, average_precision


def build(args) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """acts [rows, neurons] float32 and the identification sets [(rows, positive)], drawn from all rows."""
    rng = np.random.default_rng(args.seed)
    acts = rng.standard_normal((args.rows, args.neurons), dtype=np.float32)
    per_relation = args.rows // args.relations
    if per_relation < 2:
        raise SystemExit(f"{args.rows} rows are too few for {args.relations} relations")
    positives = min(args.positives, per_relation)
    sets = []
    planted = max(1, args.neurons // (4 * args.relations))
    for r in range(args.relations):
        own = np.arange(r * per_relation, (r + 1) * per_relation)
        others = np.setdiff1d(np.arange(args.rows), own)
        negatives = rng.choice(others, min(len(others), args.negatives_ratio * positives), replace=False)
        rows = np.concatenate([own[:positives], negatives])
        sets.append((rows, np.arange(len(rows)) < positives))
        acts[np.ix_(own, np.arange(r * planted, (r + 1) * planted) % args.neurons)] += 1.5
    if args.ties:
        acts = np.round(acts * 4) / 4
    return acts, sets


def old_scorer(acts: np.ndarray, sets) -> np.ndarray:
    return np.stack([average_precision(torch.from_numpy(acts[rows]), torch.from_numpy(positive)).numpy()
                     for rows, positive in sets])


def pooled_scorer(acts: np.ndarray, sets) -> np.ndarray:
    return PooledSets(sets, acts.shape[0]).average_precision(torch.from_numpy(acts))[0].numpy()


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3600, help="pooled captured prompts")
    parser.add_argument("--neurons", type=int, default=3584)
    parser.add_argument("--relations", type=int, default=12)
    parser.add_argument("--positives", type=int, default=300, help="per relation (at most rows / relations)")
    parser.add_argument("--negatives-ratio", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; the median is printed")
    parser.add_argument("--sample", type=int, default=100, help="neurons timed with sklearn, for every relation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ties", action="store_true", help="activations rounded to quarters: many tied values")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from sklearn.metrics import average_precision_score

    acts, sets = build(args)
    rows, neurons = acts.shape
    pooled_rows = np.unique(np.concatenate([r for r, _ in sets]))
    assert len(pooled_rows) == rows  # every row is some relation's positive or negative: the pool is all rows
    pooled_t = torch.from_numpy(np.ascontiguousarray(acts.T))  # [neurons, rows], for the floor only
    floor_fn = lambda: torch.sort(pooled_t, dim=1)  # noqa: E731
    pooled_fn = lambda: pooled_scorer(acts, sets)  # noqa: E731
    old_fn = lambda: old_scorer(acts, sets)  # noqa: E731
    either_fn = lambda: PooledSets(sets, rows).average_precision(torch.from_numpy(acts), negated=True)  # noqa: E731

    for fn in (floor_fn, pooled_fn, old_fn, either_fn):  # warm-up: allocator, thread pools, caches
        fn()
    times: dict[str, list[float]] = {"floor": [], "pooled": [], "old": [], "either": []}
    for _ in range(max(1, args.repeats)):
        times["floor"].append(timed(floor_fn)[0])
        s, pooled = timed(pooled_fn)
        times["pooled"].append(s)
        s, old = timed(old_fn)
        times["old"].append(s)
        times["either"].append(timed(either_fn)[0])
    med = {k: statistics.median(v) for k, v in times.items()}

    sample = np.sort(np.random.default_rng(args.seed + 1).choice(neurons, min(args.sample, neurons), replace=False))
    ref = np.empty((len(sets), len(sample)))
    t0 = time.perf_counter()
    for i, (r, positive) in enumerate(sets):
        x = acts[r]
        for j, col in enumerate(sample):
            ref[i, j] = average_precision_score(positive, x[:, col])
    per_call = (time.perf_counter() - t0) / ref.size
    sklearn_s = per_call * neurons * len(sets)

    floor = med["floor"]
    positives = int(sets[0][1].sum())
    print(f"synthetic capture: {rows:,} pooled rows x {neurons:,} neurons, float32{', ties (quarters)' if args.ties else ''}; "
          f"{len(sets)} relations x ({positives} positives + {len(sets[0][0]) - positives:,} negatives) from the pool; "
          f"torch threads {torch.get_num_threads()}; median of {max(1, args.repeats)} rounds after a warm-up")
    n_rel = len(sets)
    lines = [(f"floor, one torch.sort of every neuron's pooled values", floor, ""),
             (f"pooled scorer, all {n_rel} relations", med["pooled"], ""),
             (f"old per-relation scorer, all {n_rel} relations", med["old"], ""),
             (f"sklearn loop, all {n_rel} relations (extrapolated)", sklearn_s,
              f" ({per_call * 1000:.3f} ms per neuron and relation x {neurons * n_rel:,}, timed on {ref.size:,})"),
             (f"pooled scorer, either direction (AP of x and of -x)", med["either"], "")]
    for label, seconds, note in lines:
        ratio = "" if label.startswith("floor") else f"  {seconds / floor:.2f}x the floor"
        print(f"{label + ':':<55}{seconds * 1000:11.1f} ms{ratio}{note}")
    print(f"speed-up of the pooled scorer: {med['old'] / med['pooled']:.2f}x the old scorer, "
          f"{sklearn_s / med['pooled']:.0f}x the sklearn loop")
    d_old = float(np.abs(pooled - old).max())
    d_sklearn = float(np.abs(pooled[:, sample] - ref).max())
    print(f"max |dAP|: pooled vs old {d_old:.2e} (all {pooled.size:,} neuron-relations), "
          f"pooled vs sklearn {d_sklearn:.2e} (the {ref.size:,} sampled)")
    met = med["pooled"] <= 2 * floor and max(d_old, d_sklearn) <= 1e-9
    print(f"target (pooled within 2x of the floor, max |dAP| <= 1e-9): {'met' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
