"""Every page under AppTest, with and without query parameters; what is drawn equals the core queries."""
import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from apptest_helpers import PAGES, assert_clean, chart_frames, chart_specs, has_tooltips, run_page, texts
from core.paths import DEMO_RUN_DIR
from core.manifest import module_sizes
from core.metrics import intra_relation
from core.overlap import complete_grid, filtered_total, overlap_long
from core.store import RunStore
from core.text import escape_markdown

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


@pytest.fixture(scope="module")
def store():
    return RunStore(DEMO_RUN_DIR)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_params(page):
    at = run_page(page)
    assert_clean(at)
    specs = chart_specs(at)
    assert specs, f"{page} drew no chart"
    assert all(has_tooltips(s) for s in specs)
    assert at.get("download_button") or page == "lab"


def test_overview_chart_is_the_baseline_query(store):
    at = run_page("overview", {"tk": "heldout"})
    assert_clean(at)
    drawn = chart_frames(at)[0]
    expected = store.baseline_accuracy(template_kind="heldout")
    pd.testing.assert_frame_equal(drawn[expected.columns].reset_index(drop=True), expected, check_dtype=False)


def test_the_link_to_a_view_holds_its_state_and_the_sidebar_lists_the_options(store):
    at = run_page("overview", {"tk": "heldout"})
    assert_clean(at)
    text = next(m.value for m in at.markdown if "Open this view" in m.value)
    target, shown = re.search(r"\[Open this view\]\((.*?)\).*`(.*?)`", text, re.S).groups()
    assert target == shown and parse_qs(urlsplit(target).query) == {"run": ["demo"], "tk": ["heldout"]}
    options = next(m.value for m in at.sidebar.markdown if m.value.startswith("**options**"))
    assert all(escape_markdown(f"{key}: {value}") in options for key, value in store.manifest.options.items())


def test_overlap_chart_matches_core(store):
    m = store.manifest
    k = 50
    at = run_page("overlap", {"k": str(k), "metric": "chance_ratio", "mode": "relations", "lang": "en"})
    assert_clean(at)
    drawn = chart_frames(at)[0].sort_values(["row", "col"]).reset_index(drop=True)
    modules = [name for name, _ in module_sizes(m)]
    layers = (0, m.neurons["num_layers"] - 1)
    shared, sizes = store.overlap_counts(k, sorted(store.languages), layers, modules)
    rows = [(r, lang) for r in store.relations for lang in store.languages]
    long = overlap_long(complete_grid(shared, rows), sizes, "chance_ratio", filtered_total(dict(module_sizes(m)), modules, layers))
    long = long[(long.language_a == "en") & (long.language_b == "en")].sort_values(["relation_a", "relation_b"])
    np.testing.assert_allclose(drawn.value.to_numpy(), long.value.to_numpy())
    diag = drawn[drawn.row == drawn.col]
    assert (diag.shared == k).all()


def test_layers_chart_counts_k_per_relation(store):
    at = run_page("layers", {"k": "40", "lang": "de", "unit": "share"})
    assert_clean(at)
    per_layer = chart_frames(at)[0]
    assert (per_layer.groupby("relation").neurons.sum() == 40).all()
    dist = store.layer_distribution(40, "de")
    assert per_layer.neurons.sum() == dist.neurons.sum()


def test_neuron_page_shows_the_profile(store):
    top = store.top_neurons(store.relations[0], "en", 1)
    row = top.iloc[0]
    at = run_page("neuron", {"neuron": f"{row.layer}.{row.module}.{row['index']}"})
    assert_clean(at)
    drawn = chart_frames(at)[0]
    profile = store.neuron_profile(int(row.neuron))
    np.testing.assert_allclose(drawn.sort_values(["relation", "language"]).ap.to_numpy(), profile.ap.to_numpy(), rtol=1e-6)
    assert int(drawn[(drawn.relation == store.relations[0]) & (drawn.language == "en")]["rank"].iloc[0]) == 1


def test_effects_intra_chart_matches_core(store):
    k = store.manifest.k
    at = run_page("effects", {"k": str(k), "lang": "en"})
    assert_clean(at)
    drawn = chart_frames(at)[0]
    expected = intra_relation(store.ablation_summary("train"), k, "en")
    got = drawn.pivot(index="relation", columns="condition", values="accuracy")
    np.testing.assert_allclose(got.loc[expected.relation, "relation_off"].to_numpy(), expected.relation_off.to_numpy())
    np.testing.assert_allclose(got.loc[expected.relation, "random"].to_numpy(), expected.random.to_numpy())


@pytest.mark.parametrize("page, query, expected", [
    ("overlap", {"k": "999999999", "metric": "nonsense", "rel": "no_such_relation"}, ["outside", "Unknown metric"]),
    ("layers", {"k": "abc", "lang": "xx"}, ["not a whole number", "Unknown language"]),
    ("neuron", {"neuron": "99.gate_proj.1"}, ["does not exist"]),
    ("effects", {"k": "20"}, ["not precomputed"]),
    ("effects", {"k": "7"}, ["outside"]),
    ("lab", {"off": "no_such_relation", "add": "1.nope.3", "snap": "0123456789abcdef"},
     ["Ignored unknown relation", "Ignored 1 neuron", "snapshot"]),
    ("overview", {"run": "gone_run"}, ["Unknown run"]),
])
def test_invalid_links_are_corrected_with_a_notice(page, query, expected):
    at = run_page(page, query)
    assert_clean(at)
    notices = " ".join(texts(at.warning))
    for text in expected:
        assert text in notices, (text, notices)


def test_effects_modes_tab_shows_every_mode_of_the_run(store):
    """The demo run holds zero and mean ablation: the tab's table is core's ablation_comparison of the two."""
    from core.metrics import ablation_comparison

    assert store.ablations() == ["zero", "mean"]
    at = run_page("effects", {"tab": "modes", "lang": "de"})
    assert_clean(at)
    drawn = at.dataframe[0].value
    m = store.manifest
    expected = ablation_comparison({a: store.ablation_summary("train", a) for a in store.ablations()}, m.k, "de")
    assert list(drawn.ablation) == list(expected.ablation) and list(drawn.relation) == list(expected.relation)
    np.testing.assert_allclose(drawn.own_drop, expected.own_drop)
    np.testing.assert_allclose(drawn.random_drop, expected.random_drop)
    assert set(drawn.ablation) == {"zero", "mean"}
