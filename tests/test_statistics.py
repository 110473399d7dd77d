"""core.statistics against known answers: exact enumeration, hand-worked examples, coverage by simulation."""
from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from core.statistics import (
    Spread,
    holm,
    hypergeom_overlap,
    mcnemar_exact,
    mcnemar_paired,
    mean_interval,
    paired_drop_interval,
    permutation_null,
    significant_count,
    spread,
)

# The project's real case: nine seeds with small drops, one seed with a huge one.
SEED_DROPS = [0.1, 0.3, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 69.0]


# --- spread -----------------------------------------------------------------

def test_spread_known_list():
    assert spread([3, 1, 4, 1, 5, 9, 2, 6]) == Spread(n=8, mean=31 / 8, median=3.5, low=1.0, high=9.0)


def test_spread_empty_is_nan():
    s = spread([])
    assert s.n == 0
    assert all(math.isnan(v) for v in (s.mean, s.median, s.low, s.high))


# --- mean_interval ----------------------------------------------------------

def test_mean_interval_small_and_degenerate_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(math.isnan(v) for v in mean_interval([]))
        assert all(math.isnan(v) for v in mean_interval([4.2]))
        assert mean_interval([2.5] * 7) == (2.5, 2.5)
        mean_interval(SEED_DROPS, n_resamples=999)  # no deprecation or degenerate-data warning


def test_mean_interval_is_seeded():
    assert mean_interval(SEED_DROPS, n_resamples=999, seed=3) == mean_interval(SEED_DROPS, n_resamples=999, seed=3)
    assert mean_interval(SEED_DROPS, n_resamples=999, seed=3) != mean_interval(SEED_DROPS, n_resamples=999, seed=4)


def test_mean_interval_covers_skewed_mean():
    # Exponential(1), n=30: the percentile bootstrap slightly under-covers a
    # skewed mean (about 0.92-0.93 at nominal 0.95), never wildly.
    rng = np.random.default_rng(20250101)
    sims, hits = 300, 0
    for i in range(sims):
        x = rng.exponential(1.0, size=30)
        low, high = mean_interval(x, n_resamples=999, seed=i)
        assert low <= high
        hits += low <= 1.0 <= high
    assert 0.88 <= hits / sims <= 0.985


def test_mean_interval_never_leaves_min_max_with_rare_outliers():
    # n=10 from a population with a rare huge value: the interval is skewed
    # towards the outlier but stays inside the observed range.
    rng = np.random.default_rng(7)
    for i in range(200):
        x = np.where(rng.random(10) < 0.08, 70.0, rng.uniform(0.0, 2.0, 10))
        low, high = mean_interval(x, n_resamples=999, seed=i)
        assert x.min() <= low <= high <= x.max()


def test_naive_interval_goes_negative_where_bootstrap_does_not():
    x = np.array(SEED_DROPS)
    mean, se = x.mean(), x.std(ddof=1) / math.sqrt(x.size)
    assert mean - 1.96 * se < 0  # a drop below zero: impossible here, every seed dropped
    low, high = mean_interval(x)
    assert 0.1 <= low < mean < high <= 69.0
    # Most resamples of 19 zeros and a one are all zeros: the low end is the minimum itself.
    assert mean_interval([0.0] * 19 + [1.0])[0] == 0.0


# --- paired_drop_interval ---------------------------------------------------

def test_paired_drop_small_degenerate_and_mismatch():
    assert all(math.isnan(v) for v in paired_drop_interval([True], [False]))
    # Every prompt goes from right to wrong: the drop is exactly 100 points.
    assert paired_drop_interval([1] * 12, [0] * 12) == (100.0, 100.0)
    # No prompt changes, although accuracy itself varies: drop is exactly 0.
    assert paired_drop_interval([1, 0, 1, 0], [1, 0, 1, 0]) == (0.0, 0.0)
    with pytest.raises(ValueError):
        paired_drop_interval([1, 0, 1], [1, 0])


def test_paired_drop_stays_in_attainable_range_where_wald_does_not():
    # All base answers right, 1 of 20 right after: drop 95, attainable [0, 100].
    base, after = np.ones(20, bool), np.zeros(20, bool)
    after[0] = True
    diff = base.astype(float) - after
    wald_high = 100 * (diff.mean() + 1.96 * diff.std(ddof=1) / math.sqrt(diff.size))
    assert wald_high > 100
    low, high = paired_drop_interval(base, after)
    assert 0.0 <= low < 95.0 < high <= 100.0
    # Over a third of resamples miss the one prompt still right: the upper end
    # sits exactly on the bound. Mirror case: only one prompt was right before.
    assert high == 100.0
    assert paired_drop_interval(after, np.zeros(20, bool))[0] == 0.0


def test_paired_drop_uses_pairing():
    # Identical marginals (accuracy 50% -> 40%) but perfectly nested answers:
    # only the pairing knows no prompt improved, so the drop can't go below 0.
    base = np.array([1] * 50 + [0] * 50, bool)
    after = np.array([1] * 40 + [0] * 60, bool)
    low, high = paired_drop_interval(base, after, n_resamples=999)
    assert 0.0 < low < 10.0 < high < 20.0


def test_paired_drop_covers_true_drop():
    # Correlated pairs via one latent uniform per prompt: right before if u < 0.9,
    # right after if u < 0.6; the true drop is 30 points.
    rng = np.random.default_rng(12345)
    sims, hits = 300, 0
    for i in range(sims):
        u = rng.random(100)
        low, high = paired_drop_interval(u < 0.9, u < 0.6, n_resamples=999, seed=i)
        assert 0.0 <= low <= high <= 100.0
        hits += low <= 30.0 <= high
    assert 0.90 <= hits / sims <= 0.985


# --- McNemar ----------------------------------------------------------------

def exact_two_sided(b: int, c: int) -> Fraction:
    """Sum of Binomial(b + c, 1/2) outcomes no more likely than the observed one."""
    n = b + c
    observed = math.comb(n, b)
    return Fraction(sum(math.comb(n, k) for k in range(n + 1) if math.comb(n, k) <= observed), 2 ** n)


def test_mcnemar_worked_example():
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024, rel=1e-12)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32, rel=1e-12)


@pytest.mark.parametrize("b,c", [(0, 1), (0, 12), (2, 8), (3, 3), (4, 7), (10, 25), (17, 40), (60, 41)])
def test_mcnemar_matches_enumeration(b, c):
    assert mcnemar_exact(b, c) == pytest.approx(float(exact_two_sided(b, c)), rel=1e-10, abs=0)


def test_mcnemar_no_discordant_pairs():
    assert mcnemar_exact(0, 0) == 1.0


def test_mcnemar_paired_counts():
    a = [1, 1, 1, 0, 0, 1, 1, 0]
    b = [0, 0, 1, 1, 0, 0, 1, 0]
    # only a right: prompts 0, 1, 5; only b right: prompt 3.
    assert mcnemar_paired(a, b) == (3, 1, pytest.approx(float(exact_two_sided(3, 1))))
    assert mcnemar_paired(b, a)[:2] == (1, 3)


# --- Holm -------------------------------------------------------------------

def test_holm_worked_example():
    # Sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)


def test_holm_clips_and_ignores_nan():
    out = holm([0.4, np.nan, 0.3, 0.01])
    # m = 3: 0.01*3=0.03, 0.3*2=0.6, 0.4*1=0.4 -> running max 0.6.
    np.testing.assert_allclose(out, [0.6, np.nan, 0.6, 0.03], rtol=1e-12)
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert np.isnan(holm([np.nan, np.nan])).all()
    assert holm([]).shape == (0,)


def test_significant_count():
    assert significant_count([0.01, 0.04, 0.03, 0.005], alpha=0.05) == 2  # 0.03 and 0.02
    assert significant_count([0.01, 0.04, 0.03, 0.005], alpha=0.01) == 0
    assert significant_count([0.001, np.nan, 0.002], alpha=0.01) == 2  # m = 2, not 3


# --- hypergeometric overlap -------------------------------------------------

def enumerated_overlaps(total: int, size_a: int, size_b: int) -> dict[int, int]:
    """How many size_b subsets of range(total) share each count with range(size_a)."""
    counts: dict[int, int] = {}
    for subset in itertools.combinations(range(total), size_b):
        shared = sum(1 for i in subset if i < size_a)
        counts[shared] = counts.get(shared, 0) + 1
    return counts


def test_hypergeom_overlap_matches_enumeration():
    checked = 0
    for total in range(1, 11):
        for size_a in range(total + 1):
            for size_b in range(total + 1):
                counts = enumerated_overlaps(total, size_a, size_b)
                weight = math.comb(total, size_b)
                shared = np.arange(size_b + 1)
                got = hypergeom_overlap(shared, size_a, size_b, total)
                more = [sum(v for k, v in counts.items() if k >= s) / weight for s in shared]
                less = [sum(v for k, v in counts.items() if k <= s) / weight for s in shared]
                np.testing.assert_allclose(got["p_more"], more, rtol=0, atol=1e-12)
                np.testing.assert_allclose(got["p_less"], less, rtol=0, atol=1e-12)
                mean = sum(k * v for k, v in counts.items()) / weight
                np.testing.assert_allclose(got["expected"], mean, rtol=0, atol=1e-12)
                var = sum((k - mean) ** 2 * v for k, v in counts.items()) / weight
                if var > 0:
                    np.testing.assert_allclose(got["z"], (shared - mean) / math.sqrt(var), rtol=1e-9)
                else:
                    assert np.isnan(got["z"]).all()
                checked += 1
    assert checked == sum((t + 1) ** 2 for t in range(1, 11))


def test_hypergeom_overlap_broadcasts():
    got = hypergeom_overlap(np.array([[0], [3]]), np.array([3, 4, 5]), 3, 10)
    assert all(v.shape == (2, 3) for v in got.values())
    np.testing.assert_allclose(got["expected"][0], [0.9, 1.2, 1.5])
    # Three shared out of a 3-set and a 3-set: the sets coincide, 1 / C(10, 3).
    assert got["p_more"][1, 0] == pytest.approx(1 / 120, rel=1e-12)


# --- permutation null -------------------------------------------------------

def test_permutation_null_hand_built():
    null = np.array([2, 3, 3, 4, 5, 5, 6, 7, 8, 7], float)
    got = permutation_null(7, null)
    assert got["n"] == 10
    assert got["mean"] == pytest.approx(5.0)
    assert got["sd"] == pytest.approx(np.std(null, ddof=1))
    assert got["z"] == pytest.approx((7 - 5.0) / np.std(null, ddof=1))
    assert got["ratio"] == pytest.approx(7 / 5)
    assert got["p_more"] == pytest.approx((1 + 3) / 11)  # 7, 8, 7
    assert got["p_less"] == pytest.approx((1 + 9) / 11)  # all but the 8


def test_permutation_null_p_never_zero():
    got = permutation_null(1000, np.arange(999))
    assert got["p_more"] == pytest.approx(1 / 1000)
    assert got["p_less"] == pytest.approx(1.0)
    assert permutation_null(-1, np.arange(999))["p_less"] == pytest.approx(1 / 1000)


def test_permutation_null_degenerate():
    got = permutation_null(3, np.zeros(50))
    assert got["sd"] == 0.0
    assert math.isnan(got["z"]) and math.isnan(got["ratio"])
    assert got["p_more"] == pytest.approx(1 / 51)
