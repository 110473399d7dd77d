"""Values of the analysis functions on small hand-built tables, every expected number worked out by hand here."""
import math

import numpy as np
import pandas as pd
import pytest

from core import lab
from core.lab import LabInputError, PromptReadout, compare_next_tokens, continuation_table, relation_activity, token_changes
from core.metrics import (cumulativity, cumulativity_from_table, cumulativity_summary, finish_ablation_table,
                          intra_relation, random_seed_accuracies, random_summary, summarise_relations, sweep_curves)
from core.overlap import complete_grid, filtered_total, heatmap_cells, overlap_long


# ----- ablation tables --------------------------------------------------------------------------------------
def row(ablated, relation, base, acc, kind="top", k=10, seed=-1, language="en", k_from=0, first_lp_drop=0.0):
    return dict(ablated=ablated, kind=kind, k_from=k_from, k=k, seed=seed, relation=relation, language=language,
                base_accuracy=base, accuracy=acc, prompts=4, first_lp_drop=first_lp_drop, lp_drop=0.0)


def table(rows) -> pd.DataFrame:
    return finish_ablation_table(pd.DataFrame(rows))


def test_drop_in_points_and_relative_drop_negative_is_an_improvement():
    t = table([row("A", "A", 1.0, 0.4), row("A", "B", 0.5, 0.75), row("A", "C", 0.0, 0.25), row("A", "D", 0.8, 0.8)])
    t = t.set_index("relation")
    assert t.loc["A", "drop_points"] == pytest.approx(60.0) and t.loc["A", "relative_drop"] == pytest.approx(0.6)
    assert t.loc["B", "drop_points"] == pytest.approx(-25.0)  # accuracy went up: a negative drop
    assert t.loc["B", "relative_drop"] == pytest.approx(-0.5)  # (0.5 - 0.75) / 0.5
    assert math.isnan(t.loc["C", "relative_drop"])  # nothing to lose
    assert t.loc["D", "drop_points"] == 0 and t.loc["D", "relative_drop"] == 0


def random_rows(relation, accuracies, k=10, base=1.0, language="en", first_lp_drops=None):
    drops = first_lp_drops or [0.0] * len(accuracies)
    return [row("random", relation, base, a, kind="random", k=k, seed=s, language=language, first_lp_drop=d)
            for s, (a, d) in enumerate(zip(accuracies, drops))]


def test_random_summary_spread_and_percentile_bootstrap_interval_of_the_mean():
    # drops in points 1, 2, 3, 6: mean 3, median 2.5, worst seed 3
    t = table(random_rows("A", [0.99, 0.98, 0.97, 0.94], first_lp_drops=[0.1, 0.2, 0.3, 0.4])
              + random_rows("B", [0.5])  # one seed: no interval
              + random_rows("A", [0.0, 0.0], k=20) + random_rows("A", [0.0], language="de"))  # other k, language
    out = random_summary(t, 10, "en").set_index("relation")
    a = out.loc["A"]
    assert a.seeds == 4 and a.random_drop == pytest.approx(3.0) and a.random_median == pytest.approx(2.5)
    assert (a.random_min, a.random_max, a.worst_seed) == (pytest.approx(1.0), pytest.approx(6.0), 3)
    # The exact bootstrap distribution of the mean: all 4**4 equally likely resamples of the four drops. The
    # percentile interval (9,999 resamples) lies at its 2.5% and 97.5% quantiles, within resampling error.
    drops = np.array([1.0, 2.0, 3.0, 6.0])
    means = np.sort(drops[np.array(np.meshgrid(*[range(4)] * 4)).reshape(4, -1)].mean(0))
    eps = 1e-9  # the mean of four floats, summed in another order
    assert np.quantile(means, 0.01) - eps <= a.random_low <= np.quantile(means, 0.05) + eps
    assert np.quantile(means, 0.95) - eps <= a.random_high <= np.quantile(means, 0.99) + eps
    assert 1.0 <= a.random_low and a.random_high <= 6.0  # never outside the seeds' own range
    assert a.random_first_lp_drop == pytest.approx(0.25)
    b = out.loc["B"]
    assert b.seeds == 1 and b.random_drop == pytest.approx(50.0)
    assert math.isnan(b.random_low) and math.isnan(b.random_high)


def test_summarise_relations_own_others_largest_and_most_improved():
    t = table([
        row("A", "A", 1.0, 0.2, first_lp_drop=3.0), row("A", "B", 0.8, 0.6, first_lp_drop=1.0),
        row("A", "C", 0.5, 0.6, first_lp_drop=-1.0),
        row("B", "A", 1.0, 1.0), row("B", "B", 0.8, 0.0, first_lp_drop=2.0), row("B", "C", 0.5, 0.4),
        row("C", "A", 1.0, 0.9), row("C", "B", 0.8, 0.8), row("C", "C", 0.5, 0.5),
        row("A", "A", 1.0, 0.0, k=20),  # another k: ignored
    ] + random_rows("A", [0.9, 1.0]) + random_rows("B", [0.8, 0.8], base=0.8) + random_rows("C", [0.5, 0.4], base=0.5))
    out = summarise_relations(t, 10, "en").set_index("relation")
    a = out.loc["A"]
    assert a.baseline == 1.0 and a.own_drop == pytest.approx(80.0) and a.own_first_lp_drop == 3.0
    assert a.others_mean_drop == pytest.approx((20.0 - 10.0) / 2) and a.others_first_lp_drop == pytest.approx(0.0)
    assert (a.largest_other, a.largest_other_drop) == ("B", pytest.approx(20.0))
    assert (a.most_improved, a.most_improved_drop) == ("C", pytest.approx(-10.0))  # C improved by 10 points
    assert a.random_drop == pytest.approx(5.0) and a.seeds == 2
    b = out.loc["B"]
    assert b.own_drop == pytest.approx(80.0) and b.others_mean_drop == pytest.approx(5.0)
    assert (b.largest_other, b.most_improved) == ("C", "A")
    assert out.loc["C"].own_drop == 0 and out.loc["C"].random_drop == pytest.approx(5.0)


def test_intra_relation_and_the_random_seeds_behind_it():
    t = table([row("A", "A", 1.0, 0.25), row("A", "B", 0.5, 0.5), row("B", "B", 0.5, 0.0), row("B", "A", 1.0, 1.0),
               row("A", "A", 1.0, 0.0, language="de")]
              + random_rows("A", [0.75, 1.0, 0.5]) + random_rows("B", [0.5, 0.25], base=0.5)
              + random_rows("A", [0.0], k=20))
    out = intra_relation(t, 10, "en")
    assert list(out.columns) == ["relation", "original", "random", "relation_off", "random_low", "random_high"]
    a, b = out.set_index("relation").loc["A"], out.set_index("relation").loc["B"]
    assert (a.original, a.relation_off) == (1.0, 0.25)
    assert (a.random, a.random_low, a.random_high) == (pytest.approx(0.75), 0.5, 1.0)
    assert (b.original, b.relation_off, b.random, b.random_low, b.random_high) == (0.5, 0.0, pytest.approx(0.375), 0.25, 0.5)
    seeds = random_seed_accuracies(t, 10, "en")
    assert seeds.to_dict("list") == {"relation": ["A", "A", "A", "B", "B"], "seed": [0, 1, 2, 0, 1],
                                     "accuracy": [0.75, 1.0, 0.5, 0.5, 0.25]}


def test_sweep_curves_own_relation_mean_of_others_and_random_sets():
    t = table([row("A", "A", 1.0, 0.8, k=10), row("A", "B", 1.0, 1.0, k=10), row("A", "C", 1.0, 0.6, k=10),
               row("A", "A", 1.0, 0.2, k=30), row("A", "B", 1.0, 0.9, k=30), row("A", "C", 1.0, 0.5, k=30),
               row("B", "A", 1.0, 0.0, k=10),  # B's neurons off: not part of A's curves
               row("A", "A", 1.0, 0.0, k=10, language="de")]
              + random_rows("A", [1.0, 0.9], k=10) + random_rows("A", [0.7, 0.8], k=30) + random_rows("B", [0.0], k=10))
    out = sweep_curves(t, "A", "en")
    got = {(s, k): acc for s, k, acc in zip(out.series, out.k, out.accuracy)}
    assert got == {("A", 10): 0.8, ("A", 30): 0.2,
                   ("other relations (mean)", 10): pytest.approx(0.8), ("other relations (mean)", 30): pytest.approx(0.7),
                   ("A, random sets", 10): pytest.approx(0.95), ("A, random sets", 30): pytest.approx(0.75)}
    assert list(out.series) == sorted(out.series) and len(out) == 6


# ----- cumulativity -----------------------------------------------------------------------------------------
def effect(pid, relation, correct, kind, k, k_from=0, ablated=None, language="en", template_kind="train"):
    return dict(prompt_id=pid, relation=relation, language=language, template_kind=template_kind, correct=correct,
                kind=kind, k_from=k_from, k=k, ablated=ablated or relation, seed=-1)


def prompt(pid, relation, small, large, diff, **kw):
    """The prompt's answer with top-10 off, top-30 off, and only ranks 10..30 off."""
    return [effect(pid, relation, small, "top", 10, **kw), effect(pid, relation, large, "top", 30, **kw),
            effect(pid, relation, diff, "range", 30, k_from=10, **kw)]


def effects_table() -> pd.DataFrame:
    rows = (prompt(1, "A", True, False, False)    # total (right at 10, wrong at 30), affected (the range alone breaks it)
            + prompt(2, "A", True, False, True)   # total, not affected
            + prompt(3, "A", True, True, False)   # still right at 30: not counted
            + prompt(4, "A", False, False, False)  # already wrong at 10: not counted
            + prompt(5, "A", True, False, True)   # total, not affected
            + prompt(6, "B", True, False, False)  # total, affected
            + prompt(7, "C", True, True, True)    # C has no total: cumulativity undefined
            + prompt(8, "A", True, False, False, ablated="B")  # another relation's neurons off: ignored
            + prompt(9, "A", True, False, False, template_kind="heldout")  # held-out templates: ignored
            + prompt(10, "A", True, False, False, language="de"))  # counted only without a language filter
    return pd.DataFrame(rows)


def test_cumulativity_counts_by_hand():
    per = cumulativity(effects_table(), 10, 30, "en").set_index("relation")
    assert per.loc["A", ["total", "affected"]].tolist() == [3, 1]
    assert per.loc["A", "cumulativity"] == pytest.approx(2 / 3)  # 1 - 1/3
    assert per.loc["B", ["total", "affected"]].tolist() == [1, 1] and per.loc["B", "cumulativity"] == 0
    assert per.loc["C", "total"] == 0 and math.isnan(per.loc["C", "cumulativity"])
    summary = cumulativity_summary(per.reset_index())
    assert summary == {"macro": pytest.approx((2 / 3 + 0) / 2), "micro": pytest.approx(1 - 2 / 4), "total": 4}
    every_language = cumulativity(effects_table(), 10, 30, None).set_index("relation")
    assert every_language.loc["A", ["total", "affected"]].tolist() == [4, 2]  # prompt 10 (de) joins


def test_cumulativity_from_table_per_consecutive_pair_and_a_missing_range():
    out = cumulativity_from_table(effects_table(), [10, 30], "en")
    assert out.to_dict("records") == [dict(k_from=10, k_to=30, macro=pytest.approx(1 / 3), micro=pytest.approx(0.5),
                                           total=4)]
    with pytest.raises(ValueError, match="no rank-range ablation 30..60"):
        cumulativity_from_table(effects_table(), [10, 30, 60], "en")


# ----- overlap ----------------------------------------------------------------------------------------------
def test_filtered_total_is_the_neurons_inside_the_filters():
    assert filtered_total({"gate": 10, "up": 10, "down": 5}, ["gate", "down"], (1, 3)) == 15 * 3
    assert filtered_total({"gate": 10}, [], (0, 0)) == 0


def overlap_input():
    shared = pd.DataFrame([("A", "en", "A", "en", 4), ("A", "en", "B", "en", 2), ("B", "en", "A", "en", 2),
                           ("B", "en", "B", "en", 6)],
                          columns=["relation_a", "language_a", "relation_b", "language_b", "shared"])
    sizes = pd.DataFrame([("A", "en", 4), ("B", "en", 6)], columns=["relation", "language", "size"])
    return complete_grid(shared, [("A", "en"), ("B", "en"), ("C", "en")]), sizes


def test_overlap_long_counts_jaccard_expected_and_chance_ratio():
    grid, sizes = overlap_input()
    assert len(grid) == 9 and grid[(grid.relation_a == "C") | (grid.relation_b == "C")].shared.eq(0).all()
    out = overlap_long(grid, sizes, "jaccard", total=100).set_index(["relation_a", "relation_b"])
    ab = out.loc[("A", "B")]
    assert (ab.size_a, ab.size_b, ab.shared) == (4, 6, 2)
    assert ab.expected == pytest.approx(4 * 6 / 100)           # |A||B|/N
    assert ab.jaccard == pytest.approx(2 / (4 + 6 - 2))        # shared / union
    assert ab.chance_ratio == pytest.approx(2 / 0.24)
    assert ab.value == ab.jaccard
    aa = out.loc[("A", "A")]
    assert aa.jaccard == 1 and aa.expected == pytest.approx(0.16) and aa.chance_ratio == pytest.approx(4 / 0.16)
    ac = out.loc[("A", "C")]  # an empty set: nothing expected, nothing shared, no ratio
    assert (ac.size_b, ac.expected, ac.jaccard) == (0, 0, 0) and math.isnan(ac.chance_ratio)
    cc = out.loc[("C", "C")]
    assert cc.jaccard == 0 and math.isnan(cc.chance_ratio)
    for metric, column in [("count", "shared"), ("chance_ratio", "chance_ratio")]:
        long = overlap_long(grid, sizes, metric, total=100)
        pd.testing.assert_series_equal(long.value, long[column].astype(float), check_names=False, check_dtype=False)
    with pytest.raises(ValueError, match="unknown overlap metric"):
        overlap_long(grid, sizes, "cosine", total=100)


def full_long() -> pd.DataFrame:
    sets = [(r, lang) for r in ("A", "B") for lang in ("de", "en")]
    return pd.DataFrame([dict(relation_a=a, language_a=la, relation_b=b, language_b=lb, shared=1)
                         for a, la in sets for b, lb in sets])


def cells(data) -> dict:
    return {(r, c): (d, s) for r, c, d, s in zip(data.row, data.col, data.diagonal, data.selected)}


def test_heatmap_cells_relations_mode():
    got = cells(heatmap_cells(full_long(), "relations", lang="en", relation="A", identification_language="en",
                              selected=("A", "B")))
    assert got == {("A", "A"): (True, False), ("A", "B"): (False, True), ("B", "A"): (False, False),
                   ("B", "B"): (True, False)}


def test_heatmap_cells_languages_mode():
    data = heatmap_cells(full_long(), "languages", lang="en", relation="B", identification_language="en",
                         selected=("de", "en"))
    assert (data.relation_a == "B").all() and (data.relation_b == "B").all()
    assert cells(data) == {("de", "de"): (True, False), ("de", "en"): (False, True), ("en", "de"): (False, False),
                           ("en", "en"): (True, False)}


def test_heatmap_cells_relation_language_mode():
    data = heatmap_cells(full_long(), "relation_language", lang="de", relation="A", identification_language="en")
    assert (data.language_b == "en").all() and (data.relation_a == data.relation_b).all()
    # row: the relation; column: the language its set was identified in, against the identification language
    assert cells(data) == {("A", "de"): (False, False), ("A", "en"): (True, False), ("B", "de"): (False, False),
                           ("B", "en"): (True, False)}
    with pytest.raises(ValueError, match="unknown overlap view"):
        heatmap_cells(full_long(), "neurons", lang="en", relation="A", identification_language="en")


# ----- lab ----------------------------------------------------------------------------------------------------
def test_relation_activity_is_0_at_the_negatives_mean_and_1_at_the_positives_mean(monkeypatch):
    acts = np.array([2.0, 1.0, 5.0, 7.0, 3.0])
    seen = {}

    def fake_capture(hooks, tokenizer, texts, pooling):
        seen.update(texts=texts, pooling=pooling)
        return acts[None, :]

    import core.capture

    monkeypatch.setattr(core.capture, "capture_pooled", fake_capture)  # core.lab imports it where it runs
    tops = {
        # neuron 0: (2 - 0) / (4 - 0) = 0.5; neuron 1: (1 - 1) / (3 - 1) = 0: mean 0.25
        "half": pd.DataFrame({"neuron": [0, 1], "mean_pos": [4.0, 3.0], "mean_neg": [0.0, 1.0]}),
        # at the positives' mean (1), and twice past it (2): mean 1.5; neuron 4 has no spread and is left out
        "above": pd.DataFrame({"neuron": [2, 3, 4], "mean_pos": [5.0, 5.0, 3.0], "mean_neg": [1.0, 3.0, 3.0]}),
        "below": pd.DataFrame({"neuron": [1], "mean_pos": [2.0], "mean_neg": [3.0]}),  # (1 - 3) / (2 - 3) = 2
        "empty": pd.DataFrame({"neuron": [], "mean_pos": [], "mean_neg": []}),
    }
    out = relation_activity(None, None, "The father of", tops, pooling="max").set_index("relation")
    assert seen == {"texts": ["The father of"], "pooling": "max"}
    assert out.activity.to_dict() == {"half": pytest.approx(0.25), "above": pytest.approx(1.5), "below": pytest.approx(2.0)}
    assert out.neurons.to_dict() == {"half": 2, "above": 3, "below": 1}
    with pytest.raises(LabInputError):
        relation_activity(None, None, "   ", tops)


class FakeTokenizer:
    def decode(self, ids):
        return "".join(f"<{i}>" for i in ids)


def readout(ids, probs=(0.0,)) -> PromptReadout:
    return PromptReadout(np.array(probs), list(ids), "")


def test_token_changes_per_ablated_position():
    assert token_changes([1, 2, 3], [1, 5, 3, 4]) == [False, True, False, True]  # changed, and one token more
    assert token_changes([1, 2, 3], [1]) == [False]
    assert token_changes([], [7]) == [True]
    assert token_changes([1], []) == []


def test_continuation_table_position_by_position():
    out = continuation_table(readout([1, 2, 3]), readout([1, 5]), FakeTokenizer())
    assert out.position.tolist() == [1, 2, 3]
    assert out.baseline.tolist() == ["'<1>'", "'<2>'", "'<3>'"]
    assert out["with neurons off"].tolist()[:2] == ["'<1>'", "'<5>'"] and pd.isna(out["with neurons off"].iloc[2])
    assert out.changed.tolist() == [False, True, True]  # a position the ablated answer lacks has changed
    assert out["baseline id"].tolist() == [1, 2, 3]
    assert out["ablated id"].tolist()[:2] == [1, 5] and pd.isna(out["ablated id"].iloc[2])


def test_compare_next_tokens_ranks_one_side_and_shows_both():
    base, ablated = readout([], [0.1, 0.6, 0.3]), readout([], [0.5, 0.2, 0.3])
    out = compare_next_tokens(base, ablated, FakeTokenizer(), "baseline", top=2)
    assert out.token_id.tolist() == [1, 2] and out["rank"].tolist() == [1, 2]
    assert out.baseline.tolist() == [0.6, 0.3] and out.ablated.tolist() == [0.2, 0.3]
    np.testing.assert_allclose(out.change, [-0.4, 0.0])
    assert compare_next_tokens(base, ablated, FakeTokenizer(), "ablated", top=2).token_id.tolist() == [0, 2]
    with pytest.raises(ValueError):
        compare_next_tokens(base, ablated, FakeTokenizer(), "neither")


def test_inter_relation_and_multilingual_select_the_right_cells():
    from core.metrics import inter_relation, multilingual

    rows = []
    for ablated in ("a", "b"):
        for relation in ("a", "b"):
            for language in ("en", "de"):
                for k in (10, 20):
                    rows.append(dict(kind="top", ablated=ablated, relation=relation, language=language, k=k, seed=0,
                                     base_accuracy=1.0, accuracy=0.5 if ablated == relation else 0.9))
    rows.append(dict(kind="random", ablated="random", relation="a", language="en", k=10, seed=1,
                     base_accuracy=1.0, accuracy=0.99))
    table = pd.DataFrame(rows)
    inter = inter_relation(table, 10, "en")
    assert len(inter) == 4 and set(inter.kind) == {"top"} and set(inter.language) == {"en"} and set(inter.k) == {10}
    long = multilingual(table, 20)
    assert len(long) == 2 * 2 * 2  # relations x languages x (original, off)
    off = long[long.condition == "relation's top-k off"]
    assert (off.accuracy == 0.5).all()  # only each relation's own top-k
    assert (long[long.condition == "original"].accuracy == 1.0).all()


def test_layer_distribution_sums_and_shares():
    from core.layer_distribution import module_mix, per_relation_layer

    dist = pd.DataFrame({"relation": ["a", "a", "a", "b"], "layer": [0, 0, 1, 1],
                         "module": ["gate_proj", "up_proj", "gate_proj", "gate_proj"], "neurons": [2, 1, 1, 4]})
    per = per_relation_layer(dist).set_index(["relation", "layer"])
    assert per.loc[("a", 0), "neurons"] == 3 and per.loc[("a", 0), "share"] == 0.75
    assert per.loc[("b", 1), "share"] == 1.0
    mix = module_mix(dist).set_index(["layer", "module"])
    assert mix.loc[(1, "gate_proj"), "neurons"] == 5 and mix.loc[(1, "gate_proj"), "share"] == 1.0
    assert mix.loc[(0, "up_proj"), "share"] == 1 / 3
