"""The reviewer's statistics on the pages (AppTest, demo run): every random set of the effects page with the one
that holds a critical neuron marked and named, the per-relation intervals and p-values, the cross-relation
distribution, the overlap's two nulls, and a neuron's single-ablation effect. What is drawn is checked against the
core functions the pages call."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from apptest_helpers import assert_clean, chart_frames, chart_specs, run_page, texts
from core.manifest import module_sizes
from core.metrics import cross_relation, random_seed_accuracies, significance, summarise_relations
from core.overlap import NULL_METRICS, OverlapView, filtered_total
from core.paths import DEMO_RUN_DIR
from core.store import RunStore
from ui.statistics import CRITICAL_HERE, p_text

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")
K = 108
OUTLIER = "company_hq"  # the relation whose random sets include one holding neuron #445
CRITICAL = 445  # L0 up_proj 61: alone it breaks company_hq
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@pytest.fixture(scope="module")
def store():
    return RunStore(DEMO_RUN_DIR)


@pytest.fixture(scope="module")
def ablation(store):
    return store.ablation_summary("train")


@pytest.fixture(scope="module")
def effects_page():
    at = run_page("effects", {"k": str(K), "lang": "en"})
    assert_clean(at)
    return at


def frame_with(at, column: str) -> pd.DataFrame:
    """The one chart dataset that has `column`."""
    frames = [f for f in chart_frames(at) if column in f.columns]
    assert len(frames) == 1, [list(f.columns) for f in chart_frames(at)]
    return frames[0]


def table_with(at, column: str) -> pd.DataFrame:
    tables = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(tables) == 1, [list(d.value.columns) for d in at.dataframe]
    return tables[0]


def numbers(text: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(text)]


def test_every_random_set_is_a_dot_and_the_outlier_names_its_critical_neuron(effects_page, ablation):
    seeds = frame_with(effects_page, "random_set")
    mine = seeds[(seeds.relation == OUTLIER) & (seeds.family == "random")].sort_values("seed")
    expected = random_seed_accuracies(ablation, K, "en")
    expected = expected[expected.relation == OUTLIER].sort_values("seed")
    assert len(mine) == 10
    np.testing.assert_allclose(mine.accuracy.to_numpy(), expected.accuracy.to_numpy())
    outlier = mine.loc[mine.accuracy.idxmin()]
    assert outlier.accuracy <= 0.5  # a drop of at least 50 points from a baseline of 100%
    assert outlier.random_set == CRITICAL_HERE
    assert f"#{CRITICAL} (L0 up_proj 61): {OUTLIER} -" in outlier.critical_neurons
    # The other seeds of the relation hold no neuron that breaks it alone, and are drawn plainly.
    assert (mine.drop(outlier.name).random_set != CRITICAL_HERE).all()
    assert any(f"seed {int(outlier.seed)}: #{CRITICAL} (L0 up_proj 61)" in c for c in texts(effects_page.caption))


def test_every_drawn_shape_has_a_tooltip_and_the_own_bar_carries_p(effects_page):
    spec = json.dumps(chart_specs(effects_page)[0])
    for field in ("critical_neurons", "seed", "p_holm"):
        assert f'"field": "{field}"' in spec, field
    bars = frame_with(effects_page, "p_holm")
    own = bars[bars.condition == "relation_off"]
    assert (own.p_holm != "").all() and (bars[bars.condition != "relation_off"].p_holm == "").all()


def test_summary_table_intervals_and_p_values_are_the_core_figures(effects_page, store, ablation):
    table = table_with(effects_page, "own top-k off [95% CI]").set_index("relation")
    core = summarise_relations(ablation, K, "en").merge(significance(store.paired_outcomes(K, "en")),
                                                        on="relation").set_index("relation")
    assert list(table.index) == list(core.index) and len(table) == len(store.relations)
    for rel, row in table.iterrows():
        own, own_low, own_high = numbers(row["own top-k off [95% CI]"])
        median, low, high = numbers(row["random median [min, max]"])
        mean, mean_low, mean_high = numbers(row["random mean [95% CI]"])
        assert own_low <= own <= own_high and low <= median <= high and mean_low <= mean <= mean_high, rel
        assert low <= mean_low <= mean_high <= high, rel  # a bootstrap of the mean stays inside the sets' range
        if row.baseline == "100.0%":  # nothing to gain: every drop and bound lies in [0, 100] points
            assert all(0 <= x <= 100 for x in (own, own_low, own_high, median, low, high, mean, mean_low, mean_high))
        c = core.loc[rel]
        assert (own, own_low, own_high) == tuple(round(x, 1) for x in (c.own_drop, c.own_low, c.own_high)), rel
        assert (mean_low, mean_high) == (round(c.random_low, 1), round(c.random_high, 1)), rel
        assert row["p (Holm)"] == p_text(c.p_holm), rel
        assert row["significant"] == ("yes" if c.significant else "no"), rel
    # The outlier set shows in its relation's range and as its worst set.
    assert numbers(table.loc[OUTLIER, "random median [min, max]"])[2] >= 50
    assert table.loc[OUTLIER, "worst random set"].startswith("seed ")
    captions = " ".join(texts(effects_page.caption))
    assert "own: 95% percentile bootstrap over prompts" in captions
    assert "two-sided exact McNemar test" in captions and "Holm-adjusted over relations" in captions


def test_cross_relation_distribution_is_the_core_one(effects_page, ablation, store):
    spread, large = cross_relation(ablation, K, "en")
    caption = next(c for c in texts(effects_page.caption) if "off-diagonal cells" in c)
    assert f"The {spread['cells']} off-diagonal cells" in caption
    assert f"median {spread['median']:.1f}, mean {spread['mean']:.1f}, max {spread['max']:.1f}" in caption
    assert spread["cells"] == len(store.relations) * (len(store.relations) - 1)
    if len(large):
        shown = table_with(effects_page, "drop (points)")
        assert list(zip(shown["neurons off"], shown["evaluated"])) == list(zip(large.ablated, large.relation))
    heat = frame_with(effects_page, "relative_drop")
    assert "critical_neurons" in heat and (heat.critical_neurons != "").all()


def test_random_sets_without_critical_neurons_beside_the_paper_draw(ablation):
    present = ablation[(ablation.kind == "random") & (ablation.ablated == "random_noncritical") & (ablation.k == K)]
    at = run_page("effects", {"k": str(K), "lang": "en", "random": "noncritical"})
    assert_clean(at)
    bars = frame_with(at, "p_holm")
    if present.empty:  # a run made without --random-exclude-critical: the paper's draw, with a caption
        assert "random_noncritical" not in set(bars.condition)
        assert any("no random sets drawn without critical neurons" in c for c in texts(at.caption))
        return
    assert at.radio[0].value == "noncritical" and at.query_params["random"] == "noncritical"
    assert {"random", "random_noncritical"} <= set(bars.condition)
    seeds = frame_with(at, "random_set")
    assert not (seeds[seeds.family == "random_noncritical"].random_set == CRITICAL_HERE).any()
    assert "no-critical mean [95% CI]" in table_with(at, "own top-k off [95% CI]").columns


def overlap_cells(store: RunStore, metric: str) -> pd.DataFrame:
    m = store.manifest
    modules = [name for name, _ in module_sizes(m)]
    layers = (0, m.neurons["num_layers"] - 1)
    view = OverlapView("relations", "en", store.relations[0], "en")
    assert view.has_null(store, K)
    return view.cells(store, K, layers, modules, metric, filtered_total(dict(module_sizes(m)), modules, layers))


def test_overlap_permutation_z_is_drawn_with_both_nulls_in_the_tooltip(store):
    at = run_page("overlap", {"k": str(K), "metric": "null_z", "mode": "relations", "lang": "en"})
    assert_clean(at)
    assert not at.info  # the null exists for this view: no fallback
    drawn = chart_frames(at)[0].sort_values(["row", "col"]).reset_index(drop=True)
    expected = overlap_cells(store, "null_z").sort_values(["row", "col"]).reset_index(drop=True)
    off = ~drawn.diagonal
    np.testing.assert_allclose(drawn.value[off].to_numpy(), expected.null_z[off].to_numpy())
    assert drawn.value[~off].isna().all()  # a set against itself has no null
    for column in ("p_more", "p_null", "p_null_holm"):
        p = drawn.loc[off, column]
        assert p.notna().all() and ((p > 0) & (p <= 1)).all(), column
    np.testing.assert_allclose(drawn.p_null_holm[off].to_numpy(), expected.p_null_holm[off].to_numpy())
    spec = json.dumps(chart_specs(at)[0])
    for field in ("expected", "p_more", "null_mean", "null_max", "p_null", "p_null_holm"):
        assert f'"field": "{field}"' in spec, field
    assert any("Hypergeometric" in c and "Permutation" in c for c in texts(at.caption))


@pytest.mark.parametrize("metric", NULL_METRICS)
def test_overlap_null_metric_without_a_null_falls_back_to_counts(store, metric):
    beyond = store.top_limit + 1  # the permutation null keeps the ranks up to the run's largest k
    at = run_page("overlap", {"k": str(beyond), "metric": metric, "mode": "relations", "lang": "en"})
    assert_clean(at)
    assert "needs the permutation null" in " ".join(texts(at.info))
    drawn = chart_frames(at)[0]
    assert (drawn.value == drawn.shared).all() and "p_null" not in drawn
    assert (drawn[drawn.diagonal].shared == beyond).all()


def test_critical_neuron_page_warns_and_lists_every_critical_neuron(store):
    alone = store.single_neuron_effects(CRITICAL)
    breaks = alone[alone.critical]
    assert list(breaks.relation) == [OUTLIER]
    at = run_page("neuron", {"neuron": str(CRITICAL)})
    assert_clean(at)
    assert at.query_params["neuron"] == "0.up_proj.61"
    badge = " ".join(w.replace("\\", "") for w in texts(at.warning))
    assert "Critical neuron" in badge and f"{OUTLIER} {breaks.drop_points.iloc[0]:.1f} points" in badge
    assert "Switched off alone" in texts(at.subheader)
    shown = table_with(at, "flipped").set_index("relation")
    assert list(shown.index[shown.critical]) == [OUTLIER]
    assert shown.loc[OUTLIER, "exact drop"] == f"{breaks.drop_points.iloc[0]:.1f}"
    listed = table_with(at, "page")
    critical = store.critical_neurons()
    assert sorted(set(listed.neuron)) == sorted(set(critical.neuron)) and CRITICAL in set(listed.neuron)
    assert any(link.endswith("neuron=0.up_proj.61") for link in listed.page)


def test_a_neuron_that_breaks_nothing_has_no_badge(store):
    critical = set(store.critical_neurons().neuron)
    calm = next(n for n in range(store.total_neurons) if n not in critical and len(store.single_neuron_effects(n)))
    at = run_page("neuron", {"neuron": str(calm)})
    assert_clean(at)
    assert not any("Critical neuron" in w for w in texts(at.warning))
    assert not table_with(at, "flipped").critical.any()


def test_the_sweep_draws_every_random_set_of_every_k(ablation, store):
    at = run_page("effects", {"k": str(K), "lang": "en", "tab": "sweep", "rel": OUTLIER})
    assert_clean(at)
    dots = frame_with(at, "seed")
    assert len(dots) == len(store.manifest.k_sweep) * 10
    at_k = dots[dots.k == K].sort_values("seed")
    expected = random_seed_accuracies(ablation, K, "en")
    np.testing.assert_allclose(at_k.accuracy.to_numpy(), expected[expected.relation == OUTLIER].accuracy.to_numpy())
    assert at_k.accuracy.min() <= 0.5  # the set holding #445 stands apart from the mean line


def test_the_shared_neuron_list_names_a_critical_neuron(store):
    at = run_page("overlap", {"k": str(K), "a": "person_father", "b": "person_mother"})
    assert_clean(at)
    shared = table_with(at, "critical: alone it costs")
    row = shared[shared.neuron == 643]  # L0 up_proj 259: alone it breaks person_father and company_ceo
    assert len(row) == 1 and "person_father -" in row.iloc[0]["critical: alone it costs"]
    assert (shared[~shared.neuron.isin(store.critical_neurons().neuron)]["critical: alone it costs"] == "").all()


def test_effects_chart_is_drawn_before_its_statistics_are_computed(monkeypatch):
    """The accuracies chart goes out before the bootstrap and McNemar tests (first paint): when the tests fail, the
    chart is still on the page, its own bars saying the p-value is being computed, beside the failure's message."""
    import streamlit as st

    import core.metrics
    from core.store import RunDataError

    def failing(*args, **kwargs):
        raise RunDataError("the paired outcomes could not be read")

    st.cache_data.clear()  # a cached result would skip the tests,
    st.cache_resource.clear()  # and the record of computed views the early chart
    monkeypatch.setattr(core.metrics, "significance", failing)
    at = run_page("effects", {"k": str(K), "lang": "en"})
    st.cache_data.clear()
    assert not at.exception
    assert any("the paired outcomes could not be read" in e.value for e in at.error)
    bars = next(f for f in chart_frames(at) if "p_holm" in f)
    assert set(bars[bars.condition == "relation_off"].p_holm) == {"being computed"}
