"""Statistics behind the numbers the app reports: ablation drops and neuron-set overlaps.

Every distribution comes from scipy.stats; this module only wires them to the
project's questions:
- how far seeds spread (`spread`) and how sure we are of their mean (`mean_interval`);
- how far accuracy drops when a neuron set is switched off, with a paired
  interval over prompts (`paired_drop_interval`) and an exact McNemar test
  (`mcnemar_exact`, `mcnemar_paired`);
- whether two neuron sets share more (or fewer) neurons than chance
  (`hypergeom_overlap`, `permutation_null`);
- multiple-comparison control across many pairs (`holm`, `significant_count`).

Intervals are percentile bootstraps: they never leave the range the statistic
can take, which a mean +- 1.96 SE interval does for skewed or bounded data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class _LazyStats:
    """scipy.stats, imported at first use: it takes most of a second, and pages that draw no statistic (the
    overview, the layers) should not wait for it on a fresh server's first render."""

    def __getattr__(self, name: str):
        from scipy import stats as scipy_stats

        return getattr(scipy_stats, name)


stats = _LazyStats()

ArrayLike = Any  # anything np.asarray accepts: list, tuple, ndarray, pandas Series


@dataclass(frozen=True)
class Spread:
    """Summary of a handful of values (e.g. one number per seed); low/high are min/max."""
    n: int
    mean: float
    median: float
    low: float
    high: float


def _flat(values: ArrayLike) -> np.ndarray:
    return np.asarray(values, dtype=float).ravel()


def spread(values: ArrayLike) -> Spread:
    """n, mean, median, min and max of `values`; every float field is NaN when there are none."""
    x = _flat(values)
    if x.size == 0:
        nan = float("nan")
        return Spread(0, nan, nan, nan, nan)
    return Spread(int(x.size), float(np.mean(x)), float(np.median(x)), float(np.min(x)), float(np.max(x)))


def mean_interval(values: ArrayLike, confidence: float = 0.95, n_resamples: int = 9999,
                  seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of `values`.

    (nan, nan) with fewer than 2 values; (v, v) when all values equal v. The
    interval always lies within [min(values), max(values)].
    """
    x = _flat(values)
    if x.size < 2:
        return float("nan"), float("nan")
    if np.all(x == x[0]):
        # Every resample has the same mean: the interval is a point, and asking
        # scipy for it only invites degenerate-data warnings.
        v = float(x[0])
        return v, v
    res = stats.bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    # Percentiles of resampled means cannot leave [min, max]; the clip only
    # absorbs last-bit rounding in np.mean so callers can rely on the bound.
    lo, hi = float(np.min(x)), float(np.max(x))
    return min(max(low, lo), hi), min(max(high, lo), hi)


def _bools(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values).ravel()
    if arr.dtype != bool:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (or 0/1)")
        arr = arr.astype(bool)
    return arr


def _paired(a: ArrayLike, b: ArrayLike, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _bools(a, names[0]), _bools(b, names[1])
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} and {names[1]} must cover the same prompts "
                         f"(lengths {x.size} and {y.size})")
    return x, y


def _drop_points(base: np.ndarray, after: np.ndarray, axis: int = -1) -> np.ndarray:
    return 100.0 * (np.mean(base, axis=axis) - np.mean(after, axis=axis))


def paired_drop_interval(base_correct: ArrayLike, after_correct: ArrayLike, confidence: float = 0.95,
                         n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the accuracy drop in points, 100 * (mean(base) - mean(after)).

    `base_correct[i]` and `after_correct[i]` are the same prompt before and
    after the ablation, so prompts are resampled jointly: the interval reflects
    the per-prompt pairing rather than two independent accuracies. (nan, nan)
    with fewer than 2 prompts; (d, d) when every prompt changes the same way.
    The interval stays within the drops attainable on these prompts (e.g.
    [0, 100] when every base answer is right).
    """
    base, after = _paired(base_correct, after_correct, ("base_correct", "after_correct"))
    if base.size < 2:
        return float("nan"), float("nan")
    base, after = base.astype(float), after.astype(float)
    diff = base - after
    if np.all(diff == diff[0]):
        d = float(_drop_points(base, after))
        return d, d
    res = stats.bootstrap((base, after), _drop_points, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", paired=True, vectorized=True,
                          rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    # A resampled drop is a mean of per-prompt differences, so it cannot leave
    # [min diff, max diff]; the clip only absorbs floating-point rounding.
    lo, hi = 100.0 * float(diff.min()), 100.0 * float(diff.max())
    return min(max(low, lo), hi), min(max(high, lo), hi)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` and `c` discordant pairs.

    Under the null each discordant pair falls either way with probability 1/2,
    so this is the two-sided binomial test of b successes in b + c trials.
    1.0 when there are no discordant pairs (no evidence either way).
    """
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def mcnemar_paired(a_correct: ArrayLike, b_correct: ArrayLike) -> tuple[int, int, float]:
    """Exact McNemar test of two systems (or conditions) answering the same prompts.

    Returns (only_a, only_b, p): `only_a` = prompts a gets right and b gets
    wrong, `only_b` = prompts b gets right and a gets wrong, `p` =
    `mcnemar_exact(only_a, only_b)`. Prompts both get right or both get wrong
    carry no information about which is better and are ignored.
    """
    a, b = _paired(a_correct, b_correct, ("a_correct", "b_correct"))
    only_a = int(np.count_nonzero(a & ~b))
    only_b = int(np.count_nonzero(b & ~a))
    return only_a, only_b, mcnemar_exact(only_a, only_b)


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in input order.

    NaN entries (tests that were not run) stay NaN and do not count towards
    the number of tests m.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    flat_p, flat_out = p.ravel(), out.ravel()
    tested = np.flatnonzero(~np.isnan(flat_p))
    m = tested.size
    if m == 0:
        return out
    order = tested[np.argsort(flat_p[tested], kind="stable")]
    scaled = flat_p[order] * (m - np.arange(m))
    # The running maximum keeps adjusted p-values in the same order as the raw
    # ones: a larger raw p can never be declared more significant.
    flat_out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return flat_out.reshape(p.shape)


def significant_count(pvalues: ArrayLike, alpha: float = 0.01) -> int:
    """How many of `pvalues` stay below `alpha` after Holm adjustment (NaNs never count)."""
    return int(np.count_nonzero(holm(pvalues) < alpha))


def hypergeom_overlap(shared: ArrayLike, size_a: ArrayLike, size_b: ArrayLike,
                      total: ArrayLike) -> dict[str, np.ndarray]:
    """How surprising an overlap of `shared` neurons is between sets of `size_a` and `size_b` out of `total`.

    The null is set b drawn uniformly at random from `total` neurons, so the
    overlap X is hypergeometric. Arguments broadcast. Returns arrays:
    `expected` = E[X] = size_a * size_b / total, `p_more` = P(X >= shared),
    `p_less` = P(X <= shared), `z` = (shared - expected) / SD(X), NaN where
    SD(X) is 0 (the overlap is forced).
    """
    k, a, b, n = np.broadcast_arrays(*(np.asarray(v) for v in (shared, size_a, size_b, total)))
    # scipy's hypergeom(M, n, N): population M, n marked items, N draws.
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = a * b / n.astype(float)
    p_more = stats.hypergeom.sf(k - 1, n, a, b)
    p_less = stats.hypergeom.cdf(k, n, a, b)
    # scipy's std also computes kurtosis, which divides by zero for tiny or
    # forced cases (total < 4, size_b == total); that part is never used.
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = stats.hypergeom.std(n, a, b)
        z = np.where(sd > 0, (k - expected) / sd, np.nan)
    return {"expected": np.asarray(expected, dtype=float), "p_more": np.asarray(p_more, dtype=float),
            "p_less": np.asarray(p_less, dtype=float), "z": np.asarray(z, dtype=float)}


def permutation_null(observed: float, null_values: ArrayLike) -> dict[str, float]:
    """Compare an observed overlap with its overlaps under S permutations.

    Returns mean and sd (sample SD, ddof=1) of the null, z = (observed - mean)
    / sd (NaN when sd is 0), ratio = observed / mean (NaN when mean is 0),
    one-sided p-values p_more and p_less, and n = S. With no permutations
    the summaries are NaN and both p-values are 1 (no evidence).
    """
    null = _flat(null_values)
    s = int(null.size)
    obs = float(observed)
    nan = float("nan")
    mean = float(np.mean(null)) if s else nan
    sd = float(np.std(null, ddof=1)) if s > 1 else nan
    # Counting the observed value as one more permutation (Phipson & Smyth
    # 2010) gives an exact, never-zero p-value; b/S would be anti-conservative.
    p_more = (1 + int(np.count_nonzero(null >= obs))) / (1 + s)
    p_less = (1 + int(np.count_nonzero(null <= obs))) / (1 + s)
    return {
        "mean": mean,
        "sd": sd,
        "z": (obs - mean) / sd if sd > 0 else nan,
        "ratio": obs / mean if mean != 0 and not np.isnan(mean) else nan,
        "p_more": p_more,
        "p_less": p_less,
        "n": s,
    }
