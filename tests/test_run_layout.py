"""core/run_layout: the run folder's paths, effect conditions and manifest, without a model."""
from pathlib import Path

import pytest

from core.paths import DEMO_RUN_DIR
from core.manifest import neuron_space, read_manifest
from core.run_layout import (TABLES, ablations_on_disk, Condition, CorpusFacts, ModelFacts, baseline_path, build_manifest, capture_paths,
                             conditions, distributions_path, effect_path, identification_path, mode_effect_path,
                             neuron_means_path, null_top_path, random_sets_path, single_neuron_path, run_files,
                             scores_path, top_prompts_path)

RUN = Path("runs/x")


def test_table_paths_are_the_readme_schema():
    assert TABLES == ("baseline", "identification", "scores", "effects", "top_prompts", "random_sets",
                      "single_neuron", "null_top", "distributions", "neuron_means", "mode_effects")
    assert neuron_means_path(RUN, "en") == RUN / "neuron_means/language=en/part-0.parquet"
    assert mode_effect_path(RUN, "scale-0.5", Condition("a", "top", 0, 30)) == (
        RUN / "mode_effects/ablation=scale-0.5/ablated=a/k=30/top-0.parquet")
    assert distributions_path(RUN, "a", "es") == RUN / "distributions/relation=a/language=es/part-0.parquet"
    assert random_sets_path(RUN) == RUN / "random_sets/part-0.parquet"
    assert single_neuron_path(RUN) == RUN / "single_neuron/part-0.parquet"
    assert null_top_path(RUN, 3) == RUN / "null_top/seed=3/part-0.parquet"
    assert baseline_path(RUN, "person_father", "en") == RUN / "baseline/relation=person_father/language=en/part-0.parquet"
    assert identification_path(RUN, "a", "de") == RUN / "identification/relation=a/language=de/part-0.parquet"
    assert scores_path(RUN, "a", "de") == RUN / "scores/relation=a/language=de/part-0.parquet"
    assert top_prompts_path(RUN, "fr") == RUN / "top_prompts/language=fr/part-0.parquet"
    assert capture_paths(RUN, "en") == (RUN / "work/language=en/activations.npy", RUN / "work/language=en/prompt_ids.npy")
    with pytest.raises(ValueError, match="outside"):  # nothing escapes the run folder
        baseline_path(RUN, "../etc", "en")


def test_effect_file_names():
    assert Condition("person_father", "top", 0, 30).file_name == "top-0.parquet"
    assert Condition("person_father", "range", 10, 30).file_name == "range-10.parquet"
    assert Condition("random", "random", 0, 30, 3).file_name == "random-0-seed3.parquet"
    assert effect_path(RUN, Condition("random", "random", 0, 30, 3)) == RUN / "effects/ablated=random/k=30/random-0-seed3.parquet"
    assert effect_path(RUN, Condition("random_noncritical", "random", 0, 30, 1)) == (
        RUN / "effects/ablated=random_noncritical/k=30/random-0-seed1.parquet")
    assert effect_path(RUN, Condition("a", "range", 10, 60)) == RUN / "effects/ablated=a/k=60/range-10.parquet"


def test_conditions_of_a_sweep():
    got = conditions(["a", "b"], [10, 30, 60], 2)
    # per relation: 3 top-k and 2 ranges between consecutive k; then 2 random sets per k
    assert len(got) == 2 * (3 + 2) + 3 * 2
    assert [(c.ablated, c.kind, c.k_from, c.k, c.seed) for c in got] == [
        ("a", "top", 0, 10, -1), ("a", "top", 0, 30, -1), ("a", "range", 10, 30, -1), ("a", "top", 0, 60, -1),
        ("a", "range", 30, 60, -1),
        ("b", "top", 0, 10, -1), ("b", "top", 0, 30, -1), ("b", "range", 10, 30, -1), ("b", "top", 0, 60, -1),
        ("b", "range", 30, 60, -1),
        ("random", "random", 0, 10, 0), ("random", "random", 0, 10, 1), ("random", "random", 0, 30, 0),
        ("random", "random", 0, 30, 1), ("random", "random", 0, 60, 0), ("random", "random", 0, 60, 1)]
    assert len({effect_path(RUN, c) for c in got}) == len(got)  # one file each
    assert [c.kind for c in conditions(["a"], [20], 0)] == ["top"]  # one k: no range, no random set
    extra = conditions(["a", "b"], [10, 30, 60], 2, noncritical_k=30)[len(got):]
    assert [(c.ablated, c.kind, c.k, c.seed) for c in extra] == [("random_noncritical", "random", 30, 0),
                                                              ("random_noncritical", "random", 30, 1)]


@pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")
def test_the_layout_names_exactly_the_committed_demo_runs_files():
    m = read_manifest(DEMO_RUN_DIR)
    o = m.options
    expected = run_files(DEMO_RUN_DIR, m.corpus["relations"], m.corpus["languages"], m.k_sweep, o["random_seeds"],
                         m.k if o["random_exclude_critical"] else None, o["null_seeds"], o["critical"],
                         o["identification_language"], m.k, m.ablations)
    on_disk = {p for t in TABLES for p in (DEMO_RUN_DIR / t).rglob("*.parquet")}
    assert len(expected) == len(set(expected)) == len(on_disk) and set(expected) == on_disk


@pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")
def test_build_manifest_rebuilds_the_demo_manifest_from_its_facts():
    m = read_manifest(DEMO_RUN_DIR)
    model = ModelFacts(m.model["source"], m.model["fingerprint"], m.model["model_type"], m.model["hidden_size"],
                       m.model["intermediate_size"], m.model["vocab_size"], m.model["dtype"])
    c = m.corpus
    corpus = CorpusFacts(c["path"], c["fingerprint"], c["relations"], c["languages"], c["prompt_suffix"], c["prompts"])
    built = build_manifest(m.status, model, neuron_space(m), corpus, m.options, m.k, m.k_sweep, m.packages,
                           m.timings, m.resources, ablations=ablations_on_disk(DEMO_RUN_DIR))
    assert built == m and m.ablations == ["zero", "mean"]
    assert build_manifest("running", model, neuron_space(m), corpus, {}, 1, [1], {}).timings == {}
