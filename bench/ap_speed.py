"""AP over all neurons of a run: the vectorised torch scorer vs a per-neuron sklearn loop, on the same data.

    python -m bench.ap_speed [--run data/runs/demo] [--sample 300]

Scores every neuron of one relation (English) with core.scoring and a sample of
neurons with sklearn.metrics.average_precision_score (the loop's per-neuron cost
times the neuron count gives its full time); prints both, the ratio and max |dAP|.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


from core.run_layout import capture_paths
from core.scoring import average_precision
from core.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=Path("data/runs/demo"))
    parser.add_argument("--sample", type=int, default=300, help="neurons timed with sklearn")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from sklearn.metrics import average_precision_score

    activations, prompt_ids = capture_paths(args.run, "en")
    acts = np.load(activations)
    row = {int(p): i for i, p in enumerate(np.load(prompt_ids))}
    store = RunStore(args.run)
    rel = sorted(store.relations)[0]
    g = store.identification_rows(rel, "en")
    store.close()
    x = np.ascontiguousarray(acts[[row[int(p)] for p in g.prompt_id]])
    y = g.positive.to_numpy()
    n = x.shape[1]

    t0 = time.perf_counter()
    ours = average_precision(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    ours_s = time.perf_counter() - t0

    sample = np.random.default_rng(0).choice(n, min(args.sample, n), replace=False)
    t0 = time.perf_counter()
    ref = np.array([average_precision_score(y, x[:, j]) for j in sample])
    per_neuron = (time.perf_counter() - t0) / len(sample)
    sklearn_s = per_neuron * n
    print(f"relation {rel}: {x.shape[0]} prompts x {n:,} neurons")
    print(f"vectorised torch AP, all neurons:      {ours_s * 1000:9.1f} ms")
    print(f"sklearn loop ({per_neuron * 1000:.2f} ms/neuron) x {n:,}: {sklearn_s * 1000:9.1f} ms (timed on {len(sample)})")
    print(f"speed-up: {sklearn_s / ours_s:.0f}x   max |dAP| on the sample: {np.abs(ours[sample] - ref).max():.2e}")


if __name__ == "__main__":
    main()
