"""The lab page against direct core calls, and share links that round-trip."""
import pytest

import numpy as np

from apptest_helpers import PAGES, assert_clean, chart_frames, run_page, texts
from core.adapters import neuron_space_for
from core.paths import DEMO_RUN_DIR
from core.hooks import neuron_hooks
from core.lab import read_prompt, read_prompt_ablated
from core.loading import load_causal_lm
from core.prompt_links import MAX_URL_PROMPT
from core.store import RunStore

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


@pytest.fixture(scope="module")
def store():
    return RunStore(DEMO_RUN_DIR)


def test_lab_ablation_equals_core(store, tmp_path, monkeypatch):
    prompt = store.query("SELECT text FROM baseline WHERE relation = 'person_father' AND language = 'en' "
                         "AND split = 'evaluation' AND template_kind = 'train' ORDER BY prompt_id LIMIT 1").text[0]
    at = run_page("lab", {"prompt": prompt, "off": "person_father", "k": str(store.manifest.k), "tokens": "8"})
    assert_clean(at)
    codes = [c.value for c in at.code]
    lm = load_causal_lm(DEMO_RUN_DIR.parent.parent / "models" / "demo")
    space = neuron_space_for(lm.config)
    hooks = neuron_hooks(lm.model, space)
    top = store.top_neurons("person_father", "en", store.manifest.k)
    base = read_prompt(lm, prompt, new_tokens=8)
    ablated = read_prompt_ablated(lm, hooks, prompt, [space.neuron(int(i)) for i in top.neuron], new_tokens=8)
    assert base.continuation in codes and ablated.continuation in codes  # the answers, apart from the prompt
    assert prompt not in codes
    ranked_after = at.dataframe[0].value  # the top 10 with the neurons off
    assert len(ranked_after) == 10
    assert ranked_after.token_id.tolist() == ablated.top(10)
    np.testing.assert_allclose(ranked_after.baseline, base.probs[ablated.top(10)], rtol=1e-6)
    np.testing.assert_allclose(ranked_after.ablated, ablated.probs[ablated.top(10)], rtol=1e-6)
    drawn = chart_frames(at)[0]  # the baseline's top 10, each with both probabilities
    assert sorted(set(drawn.token_id)) == sorted(base.top(10))


@pytest.mark.parametrize("mode, factor", [("scale", "-2"), ("mean", None)])
def test_lab_modes_from_a_link_equal_core(store, mode, factor):
    """A link with mode (and factor) shows what core.lab computes with that ablation of the same neurons."""
    from core.ablation import Ablation

    means = store.neuron_means()
    if mode == "mean" and means is None:
        pytest.skip("this demo run predates the neuron means table")
    prompt = store.query("SELECT text FROM baseline WHERE relation = 'person_mother' AND language = 'en' "
                         "AND split = 'evaluation' AND template_kind = 'train' ORDER BY prompt_id LIMIT 1").text[0]
    query = {"prompt": prompt, "off": "person_mother", "k": "40", "tokens": "6", "mode": mode}
    if factor is not None:
        query["factor"] = factor
    at = run_page("lab", query)
    assert_clean(at)
    assert dict(at.query_params)["mode"] == [mode] or dict(at.query_params)["mode"] == mode
    lm = load_causal_lm(DEMO_RUN_DIR.parent.parent / "models" / "demo")
    space = neuron_space_for(lm.config)
    hooks = neuron_hooks(lm.model, space)
    ablation = Ablation("mean", means=means) if mode == "mean" else Ablation("scale", float(factor))
    neurons = [space.neuron(int(i)) for i in store.top_neurons("person_mother", "en", 40).neuron]
    expected = read_prompt_ablated(lm, hooks, prompt, neurons, new_tokens=6, ablation=ablation)
    zeroed = read_prompt_ablated(lm, hooks, prompt, neurons, new_tokens=6)
    assert at.dataframe[0].value.token_id.tolist() == expected.top(10)
    # rtol as tests/test_batched_lab.py: the page's request may share a batch with its baseline
    np.testing.assert_allclose(at.dataframe[0].value.ablated, expected.probs[expected.top(10)], rtol=1e-4, atol=1e-6)
    assert not np.allclose(expected.probs, zeroed.probs)  # the mode changes the answer's distribution
    markdown = " ".join(m.value for m in at.markdown)
    assert f"Answer with the neurons {ablation.effect}" in markdown


def test_lab_refuses_an_absurd_factor_in_a_link():
    at = run_page("lab", {"mode": "scale", "factor": "1e9"})
    assert_clean(at)
    assert dict(at.query_params)["factor"] in ("10", ["10"])
    at = run_page("lab", {"mode": "scale", "factor": "nan"})
    assert_clean(at)
    assert any("not a number" in w for w in texts(at.warning))


def test_lab_explains_an_empty_prompt():
    at = run_page("lab", {"prompt": "   "})
    assert_clean(at)
    assert any("empty" in t for t in texts(at.info))


@pytest.mark.parametrize("page, query", [
    ("overlap", {"k": "77", "metric": "jaccard", "mode": "languages", "rel": "person_mother", "layers": "1-2"}),
    ("layers", {"k": "99", "lang": "fr", "unit": "share"}),
    ("neuron", {"neuron": "2.up_proj.5", "lang": "es"}),
    ("effects", {"lang": "de", "rel": "company_hq"}),
    ("lab", {"prompt": "Der Vater von Bouzei Hulir ist", "off": "person_father,person_mother", "k": "20",
             "add": "1.gate_proj.3", "tokens": "5"}),
    ("lab", {"prompt": "The father of", "off": "person_father", "mode": "scale", "factor": "-1.5"}),
    ("effects", {"tab": "modes", "lang": "fr"}),
])
def test_link_round_trip(page, query):
    first = run_page(page, query)
    assert_clean(first)
    url_state = dict(first.query_params)
    for key, value in query.items():
        assert url_state.get(key) == value, (key, url_state)
    second = run_page(page, {k: (v[0] if isinstance(v, list) else v) for k, v in url_state.items()})
    assert_clean(second)
    assert dict(second.query_params) == url_state
    assert not second.warning


def test_long_prompt_travels_in_the_link_itself(tmp_path, monkeypatch):
    long_prompt = "The father of Bouzei Hulir is " * 20
    assert len(long_prompt) > MAX_URL_PROMPT
    import ui.run as common
    monkeypatch.setattr(common, "SNAPSHOT_DIR", tmp_path)
    first = run_page("lab", {"prompt": long_prompt})
    assert_clean(first)
    state = {k: (v[0] if isinstance(v, list) else v) for k, v in dict(first.query_params).items()}
    assert "prompt" not in state and "snap" not in state and state["pz"]
    assert not list(tmp_path.iterdir())  # no server state: the link alone carries the prompt
    second = run_page("lab", {"pz": state["pz"]})
    assert_clean(second)
    assert second.text_area[0].value == long_prompt


def test_pages_listed_match_the_app():
    from ui.page_index import PAGE_PATHS

    assert set(PAGES) == set(PAGE_PATHS)
