"""core.metrics' reviewer checks on hand-built tables with known answers: the random sets' spread and
interval, the paired McNemar test with Holm, cross-relation effects as a distribution, critical members."""
import math

import numpy as np
import pandas as pd
import pytest

from core.metrics import (critical_members, cross_relation, finish_ablation_table, paired_tests, random_summary,
                          significance, summarise_relations)

SEEDS = [0.1, 0.2, 0.3, 0.5, 0.6, 0.8, 1.0, 1.2, 1.6, 69.0]  # drops in points; seed 9 holds a critical neuron


def ablation_rows() -> pd.DataFrame:
    """Two relations at k=10 in en: own top-k and ten random seeds (hq's seed 9 is the outlier)."""
    rows = []
    for rel, own_after in (("hq", 0.1), ("ceo", 0.4)):
        for other, after in (("hq", 1.0), ("ceo", 1.0)):
            rows.append(dict(ablated=rel, kind="top", k_from=0, k=10, seed=-1, relation=other, language="en",
                             base_accuracy=1.0, accuracy=own_after if other == rel else after, prompts=100,
                             first_lp_drop=2.0 if other == rel else 0.0, lp_drop=0.0))
        for seed, drop in enumerate(SEEDS):
            d = drop if rel == "hq" else 0.5
            rows.append(dict(ablated="random", kind="random", k_from=0, k=10, seed=seed, relation=rel, language="en",
                             base_accuracy=1.0, accuracy=1 - d / 100, prompts=100, first_lp_drop=d / 100, lp_drop=0.0))
        rows.append(dict(ablated="random_noncritical", kind="random", k_from=0, k=10, seed=0, relation=rel,
                         language="en", base_accuracy=1.0, accuracy=0.999, prompts=100, first_lp_drop=0.0, lp_drop=0.0))
    return finish_ablation_table(pd.DataFrame(rows))


def test_random_summary_shows_every_seed_and_an_interval_inside_their_range():
    r = random_summary(ablation_rows(), 10, "en").set_index("relation").loc["hq"]
    assert r.seeds == 10 and r.worst_seed == 9
    assert r.random_drop == pytest.approx(np.mean(SEEDS))
    assert r.random_median == pytest.approx(0.7) and r.random_min == pytest.approx(0.1)
    assert r.random_max == pytest.approx(69.0)
    # the old mean +- 1.96 SD/sqrt(n) interval leaves the attainable range (a drop below 0 from 100%)
    assert np.mean(SEEDS) - 1.96 * np.std(SEEDS, ddof=1) / math.sqrt(10) < 0
    assert 0.1 <= r.random_low < r.random_drop < r.random_high <= 69.0
    # the non-critical family is its own summary, not mixed into the plain one
    assert random_summary(ablation_rows(), 10, "en", "random_noncritical").seeds.tolist() == [1, 1]


def test_summary_compares_own_drop_with_the_worst_random_set():
    t = summarise_relations(ablation_rows(), 10, "en").set_index("relation")
    assert t.own_drop["hq"] == pytest.approx(90.0) and t.random_max["hq"] == pytest.approx(69.0)
    assert bool(t.beats_worst_random["hq"]) and bool(t.beats_worst_random["ceo"])
    assert t.others_mean_drop["hq"] == pytest.approx(0.0)


def paired_frame(relation: str, base, own, randoms) -> pd.DataFrame:
    frames = [pd.DataFrame({"relation": relation, "prompt_id": np.arange(len(base)), "base_correct": base,
                            "own_correct": own, "family": "random", "seed": s, "random_correct": r})
              for s, r in enumerate(randoms)]
    return pd.concat(frames, ignore_index=True)


def test_mcnemar_per_seed_and_holm_over_relations():
    n = 40
    base = np.ones(n, bool)
    own = np.r_[np.zeros(30, bool), np.ones(10, bool)]  # own top-k breaks 30 of 40
    keep = np.ones(n, bool)
    one_broken = keep.copy(); one_broken[35] = False  # a random set breaking one answer own top-k keeps
    weak_own = np.r_[np.zeros(3, bool), np.ones(37, bool)]  # a relation where own top-k breaks only 3
    paired = pd.concat([paired_frame("strong", base, own, [keep, one_broken]),
                        paired_frame("weak", base, weak_own, [keep, keep])], ignore_index=True)
    tests = paired_tests(paired).set_index(["relation", "seed"])
    assert tests.loc[("strong", 0)].random_only == 30 and tests.loc[("strong", 0)].own_only == 0
    assert tests.loc[("strong", 1)].random_only == 30 and tests.loc[("strong", 1)].own_only == 1
    # exact two-sided McNemar: 2 * P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2)
    assert tests.loc[("strong", 1)].p == pytest.approx(2 * (1 + 31) / 2**31)
    assert tests.loc[("weak", 0)].p == pytest.approx(2 / 2**3)  # 3 discordant pairs, all one way: 0.25
    s = significance(paired).set_index("relation")
    assert s.p_worst_seed["strong"] == pytest.approx(tests.loc[("strong", 1)].p)  # the least significant seed
    assert s.p_holm["strong"] == pytest.approx(2 * s.p_worst_seed["strong"])  # smallest of 2: times 2
    assert s.p_holm["weak"] == pytest.approx(max(s.p_worst_seed["weak"], s.p_holm["strong"]))
    assert bool(s.significant["strong"]) and not bool(s.significant["weak"])
    # the own drop's interval: inside [0, 100] (baseline 100%), around the observed 75 points
    assert 0 <= s.own_low["strong"] < 75 < s.own_high["strong"] <= 100


def test_cross_relation_effects_are_a_distribution_with_the_large_cells_named():
    rows = [dict(ablated=a, kind="top", k_from=0, k=10, seed=-1, relation=e, language="en", base_accuracy=1.0,
                 accuracy=acc, prompts=10, first_lp_drop=0.0, lp_drop=0.0)
            for a, e, acc in [("x", "x", 0.1), ("x", "y", 0.2), ("x", "z", 1.0), ("y", "x", 1.0), ("y", "y", 0.3),
                              ("y", "z", 0.9), ("z", "x", 1.0), ("z", "y", 1.0), ("z", "z", 0.5)]]
    stats, cells = cross_relation(finish_ablation_table(pd.DataFrame(rows)), 10, "en", threshold=50)
    assert stats["cells"] == 6 and stats["zero"] == 4 and stats["above"] == 1
    assert stats["median"] == pytest.approx(0.0) and stats["max"] == pytest.approx(80.0)
    assert stats["mean"] == pytest.approx(90 / 6)
    assert cells[["ablated", "relation"]].values.tolist() == [["x", "y"]]


def test_critical_members_names_the_sets_holding_a_critical_neuron():
    members = pd.DataFrame({"set": ["seed 3", "seed 3", "seed 4", "top of a"], "neuron": [445, 7, 8, 445]})
    critical = pd.DataFrame({"neuron": [445], "layer": [0], "module": ["up_proj"], "index": [61],
                             "relation": ["company_hq"], "drop_points": [74.5]})
    got = critical_members(members, critical)
    assert sorted(got.set) == ["seed 3", "top of a"] and set(got.breaks) == {"company_hq"}
