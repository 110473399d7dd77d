"""The pooled AP (one sort per neuron shared by every relation) equals sklearn and the per-relation scorer, ties
included, and score_stream / ap_stream built on it give what the per-relation loop gave."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

import core.scoring as scoring
import core.score_stream as score_stream_module
from core.score_stream import LabelledRows, ap_stream, score_stream
from core.scoring import PooledSets, average_precision, pooled_average_precision

ROOT = Path(__file__).resolve().parent.parent


def tied_capture(rng, rows: int = 150, neurons: int = 48, infinities: bool = True) -> np.ndarray:
    """Integer-valued activations (ties everywhere), a constant column, a column with -0.0 and +0.0, one with +-inf."""
    acts = rng.integers(-2, 3, (rows, neurons)).astype(np.float32)
    acts[:, 5] = 1.0
    acts[:, 6] = np.where(rng.random(rows) < 0.5, -0.0, 0.0)
    acts[:, 6][: rows // 3] = 1.0
    if infinities:
        acts[:, 7][rng.random(rows) < 0.2] = np.inf
        acts[:, 7][rng.random(rows) < 0.2] = -np.inf
    return acts


def overlapping_sets(rng, rows: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sets drawn from the same pool, overlapping each other; one of 6 rows (a small subset of the pool); one
    whose positives are all some earlier set's positives too; one with a row repeated."""
    sets = []
    for size in (rows * 3 // 5, rows * 2 // 5, rows * 4 // 5, 6):
        chosen = rng.choice(rows, size, replace=False)
        positive = rng.random(size) < 0.3
        positive[:2] = [True, False]
        sets.append((chosen, positive))
    first_rows, first_pos = sets[0]
    sets.append((np.r_[first_rows[first_pos], rng.choice(rows, 20, replace=False)],
                 np.r_[np.ones(first_pos.sum(), bool), np.zeros(20, bool)]))
    sets.append((np.r_[first_rows[:10], first_rows[:3]], np.r_[first_pos[:10], first_pos[:3]]))
    return sets


def sklearn_ap(acts: np.ndarray, rows: np.ndarray, positive: np.ndarray) -> np.ndarray:
    x = acts[rows].astype(np.float64)
    return np.array([average_precision_score(positive, x[:, j]) for j in range(x.shape[1])])


@pytest.mark.parametrize("cpu_kernel", [True, False], ids=["numpy-parts", "torch"])
def test_pooled_ap_equals_sklearn_and_the_per_relation_scorer_with_ties(cpu_kernel, monkeypatch):
    monkeypatch.setattr(scoring, "CPU_PART_BYTES", 150 * 64 * 5)  # parts of a few neurons, in threads
    rng = np.random.default_rng(11)
    acts = tied_capture(rng)
    sets = overlapping_sets(rng, len(acts))
    layout = PooledSets(sets, len(acts))
    assert layout.part_neurons(scoring.CPU_PART_BYTES, negated=True) <= 8  # the parts path really splits
    assert any(f.span for f in layout.fields) and not all(f.span for f in layout.fields)  # slices and gathers
    ap, reverse = layout.average_precision(torch.from_numpy(acts), negated=True, cpu_kernel=cpu_kernel)
    assert ap.dtype == torch.float64 and ap.shape == (len(sets), acts.shape[1])
    finite = np.isfinite(acts).all(0)  # sklearn refuses infinities; the per-relation scorer takes them
    for i, (rows, positive) in enumerate(sets):
        old = average_precision(torch.from_numpy(acts[rows]), torch.from_numpy(positive)).numpy()
        old_reverse = average_precision(torch.from_numpy(-acts[rows]), torch.from_numpy(positive)).numpy()
        assert np.abs(ap[i].numpy() - old).max() <= 1e-9, i
        assert np.abs(reverse[i].numpy() - old_reverse).max() <= 1e-9, i
        assert np.abs(ap[i].numpy()[finite] - sklearn_ap(acts[:, finite], rows, positive)).max() <= 1e-9, i
        assert np.abs(reverse[i].numpy()[finite] - sklearn_ap(-acts[:, finite], rows, positive)).max() <= 1e-9, i
    # the constant column: every sample tied, so AP is the positives' share, both ways
    share = np.array([p.mean() for _, p in sets])
    np.testing.assert_allclose(ap[:, 5].numpy(), share, rtol=0, atol=1e-12)
    np.testing.assert_allclose(reverse[:, 5].numpy(), share, rtol=0, atol=1e-12)


def test_float64_and_continuous_scores_and_the_one_call_helper():
    rng = np.random.default_rng(5)
    acts = rng.normal(size=(80, 30))
    sets = overlapping_sets(rng, 80)[:3]
    for dtype in (torch.float64, torch.float32, torch.bfloat16):
        scores = torch.from_numpy(acts).to(dtype)
        ap, reverse = pooled_average_precision(scores, sets)
        assert reverse is None
        for i, (rows, positive) in enumerate(sets):
            expected = sklearn_ap(scores.to(torch.float64).numpy(), rows, positive)
            assert np.abs(ap[i].numpy() - expected).max() <= 1e-9, (dtype, i)


def test_a_broken_order_is_caught():
    """The comparison above can fail: a scorer that drops the tie handling (reads each positive at its own
    sorted position) differs from sklearn on tied data."""
    rng = np.random.default_rng(2)
    acts = rng.integers(0, 3, (60, 8)).astype(np.float32)
    rows, positive = np.arange(60), rng.random(60) < 0.4
    expected = sklearn_ap(acts, rows, positive)
    ap = pooled_average_precision(torch.from_numpy(acts), [(rows, positive)])[0][0].numpy()
    assert np.abs(ap - expected).max() <= 1e-9
    order = np.argsort(-acts, axis=0, kind="stable")
    hits = np.cumsum(positive[order], axis=0)
    untied = (np.where(positive[order], hits / np.arange(1, 61)[:, None], 0).sum(0)) / positive.sum()
    assert np.abs(untied - expected).max() > 1e-3


def test_bad_sets_are_refused():
    with pytest.raises(ValueError, match="both positive and negative"):
        PooledSets([(np.arange(4), np.ones(4, bool))], 10)
    with pytest.raises(ValueError, match="outside the pool"):
        PooledSets([(np.array([0, 10]), np.array([True, False]))], 10)
    with pytest.raises(ValueError, match="pool of 10"):
        PooledSets([(np.arange(4), np.arange(4) < 2)], 10).average_precision(torch.zeros(9, 3))


def reference_stream(acts, sets, either_direction):
    """What score_stream computed before: each relation's rows sorted on their own."""
    out = {}
    for rel, s in sets.items():
        x = acts[s.rows]
        ap = average_precision(torch.from_numpy(x), torch.from_numpy(s.positive)).numpy()
        reverse = average_precision(torch.from_numpy(-x), torch.from_numpy(s.positive)).numpy()
        out[rel] = dict(ap=ap, reverse=reverse, mean_pos=x[s.positive].mean(0),
                        median_pos=np.median(x[s.positive], axis=0), mean_neg=x[~s.positive].mean(0))
    return out


@pytest.mark.parametrize("either_direction", [False, True])
def test_score_stream_and_ap_stream_keep_their_outputs(either_direction, monkeypatch):
    monkeypatch.setattr(score_stream_module, "STATISTICS_PART", 70)  # several column parts per chunk, in threads
    rng = np.random.default_rng(7)
    acts = tied_capture(rng, rows=140, neurons=600, infinities=False)
    acts[:, 300:] = rng.normal(size=(140, 300)).astype(np.float32)  # continuous columns beside the tied ones
    raw = overlapping_sets(rng, 130)  # rows 130..139 are in no set: the pool is a subset of the capture
    sets = {f"rel{i}": LabelledRows(rows, positive) for i, (rows, positive) in enumerate(raw)}
    ids = np.arange(5000, 5140, dtype=np.int32)
    progress = []
    got = score_stream(acts, sets, ids, top_places=4, memory_budget=140 * 16 * 256,
                       on_progress=progress.append, either_direction=either_direction)  # 3 chunks of columns
    assert sum(progress) == 600 * len(sets) and len(progress) == 3 * len(sets)
    ref = reference_stream(acts, sets, either_direction)
    fast = ap_stream(acts, sets, memory_budget=140 * 16 * 256, either_direction=either_direction)
    for rel in sets:
        r, e = got.stats[rel], ref[rel]
        for stat in ("mean_pos", "median_pos", "mean_neg"):
            np.testing.assert_array_equal(r[stat], e[stat])
        expected = np.maximum(e["ap"], e["reverse"]) if either_direction else e["ap"]
        assert np.abs(r["ap"] - expected).max() <= 1e-9, rel
        assert np.abs(fast[rel] - expected).max() <= 1e-9, rel
        clear = np.abs(e["ap"] - e["reverse"]) > 1e-12  # where the two sides are not (numerically) tied
        expected_sign = np.where(e["reverse"] > e["ap"], -1.0, 1.0) if either_direction else np.ones(600)
        np.testing.assert_array_equal(r["sign"][clear], expected_sign[clear])
        assert set(np.unique(r["sign"])) <= ({-1.0, 1.0} if either_direction else {1.0})
    best = np.argsort(-acts, axis=0, kind="stable")[:4].T
    np.testing.assert_array_equal(got.top_prompt, ids[best])
    np.testing.assert_array_equal(got.top_value, np.take_along_axis(acts.T, best, axis=1))


def test_score_stream_names_a_relation_without_negatives():
    acts = np.ones((10, 4), np.float32)
    sets = {"ok": LabelledRows(np.arange(6), np.arange(6) < 2), "lonely": LabelledRows(np.arange(5), np.ones(5, bool))}
    with pytest.raises(ValueError, match="lonely has no positives or no negatives"):
        score_stream(acts, sets, np.arange(10, dtype=np.int32))


def test_ap_speed_benchmark_runs_at_a_toy_size():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bench.ap_speed", "--neurons", "256", "--rows", "400",
                           "--repeats", "1", "--sample", "4"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"^floor, one torch\.sort of every neuron's pooled values: +[\d.]+ ms$", out, re.M), out
    ratios = {}
    for name in ("pooled scorer, all 12 relations", "old per-relation scorer, all 12 relations",
                 r"sklearn loop, all 12 relations \(extrapolated\)", r"pooled scorer, either direction \(AP of x and of -x\)"):
        line = re.search(rf"^{name}: +([\d.]+) ms  ([\d.]+)x the floor", out, re.M)
        assert line, (name, out)
        ratios[name] = float(line[2])
        assert float(line[1]) > 0 and ratios[name] > 0
    d = re.search(r"^max \|dAP\|: pooled vs old ([\d.e+-]+) .*pooled vs sklearn ([\d.e+-]+) ", out, re.M)
    assert d and float(d[1]) <= 1e-9 and float(d[2]) <= 1e-9, out
    assert re.search(r"^target \(pooled within 2x of the floor, max \|dAP\| <= 1e-9\): (met|NOT MET)$", out, re.M)
