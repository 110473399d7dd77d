"""Two runs compared (core/compare.py, pages/compare.py): the branch a pair of runs takes, the second run picked
from a link, top-k intersections, Jaccard and the hypergeometric null against Python sets and scipy, the
effects against the independent pandas oracle, and the page under AppTest."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats

from apptest_helpers import assert_clean, chart_frames, chart_specs, has_tooltips, run_page, texts
from core.adapters import neuron_space_for
from core.compare import (ZERO, Difference, compare_effects, compare_overlap, default_k, effect_k, effect_ks,
                          overlap_table, pair_runs, pick_second_run, second_run_choices)
from core.manifest import MANIFEST, read_manifest
from core.metrics import significance
from core.paths import DEMO_RUN_DIR
from core.run_layout import TABLES
from core.runs import RUNS_DIR_ENV
from core.statistics import paired_drop_interval
from core.share_state import Notices
from core.store import STORE_PREFIX, RunStore
from run_oracle import read_parquet_table, relation_summary

LRE_RUN_DIR = DEMO_RUN_DIR.parent / "lre12"
RELATIONS = ["company_ceo", "person_father", "person_mother"]
LANGUAGES = ["en", "de"]
SMALL_TOTAL = 1792  # the small synthetic shape: 4 layers x (192 + 192 + 64)


# ----- runs for the tests -----------------------------------------------------------------------------------------
def small_run(out: Path, seed: int, definition: str = "paper") -> Path:
    """A synthetic small-shaped run with 3 relations, 2 languages and 3 random seeds (about 4 s). With another
    neuron definition the same drawn structure lives in that definition's neuron space."""
    from precompute.synthetic_run import SyntheticRun, llama_config

    run = SyntheticRun("small", out, relations=RELATIONS, languages=LANGUAGES, facts_per_relation=60,
                       evaluation_facts=20, random_seeds=3, seed=seed)
    if definition != "paper":
        run.space = neuron_space_for(llama_config(run.shape), definition)
        run.options = dataclasses.replace(run.options, definition=definition)
    run.write()
    return out


def altered_copy(source: Path, out: Path, seed: int = 1, flip: float = 0.15) -> Path:
    """A copy of a run as if it had been identified again with another seed: every AP jittered and the ranks
    recomputed, a share `flip` of the prompts each relation's own top-k kept right now answered wrong, and the
    manifest's seed changed. The same model, so the Compare page intersects its top-k sets with the source's."""
    shutil.copytree(source, out, ignore=shutil.ignore_patterns(f"{STORE_PREFIX}*", "work"))
    rng = np.random.default_rng(seed)
    for path in sorted((out / "scores").rglob("*.parquet")):
        table = pq.read_table(path)
        frame = table.to_pandas()
        frame["ap"] = (frame.ap + rng.normal(0, 0.03, len(frame))).astype(np.float32)
        frame["rank"] = frame.ap.rank(ascending=False, method="first").astype(np.int32)
        pq.write_table(pa_table(frame.sort_values("rank"), table.schema), path)
    for path in sorted((out / "effects").glob("ablated=*/k=*/top-0.parquet")):
        table = pq.read_table(path)
        frame = table.to_pandas()
        ablated = path.parent.parent.name.split("=", 1)[1]
        flip_here = (frame.relation == ablated) & frame.correct & (rng.random(len(frame)) < flip)
        frame.loc[flip_here, "correct"] = False
        pq.write_table(pa_table(frame, table.schema), path)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["options"]["seed"] = seed
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return out


def pa_table(frame: pd.DataFrame, schema):
    import pyarrow as pa

    return pa.Table.from_pandas(frame.reset_index(drop=True), schema=schema, preserve_index=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """syn-a and syn-b: the same (synthetic) model, seeds 0 and 1; syn-c: the same model with the paper+attention
    neuron definition, whose flat ids number another space."""
    base = tmp_path_factory.mktemp("compare-runs")
    small_run(base / "syn-a", 0)
    small_run(base / "syn-b", 1)
    small_run(base / "syn-c", 2, "paper+attention")
    return base


@pytest.fixture(scope="module")
def stores(runs):
    return {name: RunStore(runs / name) for name in ("syn-a", "syn-b", "syn-c")}


def oracle_sets(run: Path, k: int, language: str, key: str = "neuron", modules=None) -> dict[str, set]:
    """relation -> top-k members read by pyarrow: flat ids, or (layer, module, index) inside `modules`."""
    scores = read_parquet_table(run, "scores")
    top = scores[(scores.language == language) & (scores["rank"] <= k)]
    if modules is not None:
        top = top[top.module.isin(modules)]
    if key == "neuron":
        return {rel: set(g.neuron.astype(int)) for rel, g in top.groupby("relation")}
    return {rel: set(zip(g.layer.astype(int), g.module.astype(str), g["index"].astype(int)))
            for rel, g in top.groupby("relation")}


def expected_rows(sets_a: dict, sets_b: dict, total: int) -> pd.DataFrame:
    rows = []
    for rel in RELATIONS:
        a, b = sets_a.get(rel, set()), sets_b.get(rel, set())
        shared = len(a & b)
        rows.append(dict(relation=rel, size_a=len(a), size_b=len(b), shared=shared, jaccard=shared / len(a | b),
                         expected=len(a) * len(b) / total,
                         p_more=stats.hypergeom(total, len(a), len(b)).sf(shared - 1)))
    return pd.DataFrame(rows)


# ----- the second run from a link ---------------------------------------------------------------------------------
NAMES = ["demo", "lre12", "seed-1"]


@pytest.mark.parametrize("raw, chosen, note", [
    (None, "lre12", None), ("", "lre12", None), ("seed-1", "seed-1", None), ("lre12", "lre12", None),
    ("demo", "lre12", "is the sidebar's run"), ("nope", "lre12", "Unknown second run 'nope'"),
    ("../../etc/passwd", "lre12", "Unknown second run '../../etc/passwd'"),
    ("x" * 500, "lre12", "Unknown second run 'xxx"), ("LRE12", "lre12", "Unknown second run 'LRE12'"),
])
def test_second_run_from_the_link(raw, chosen, note):
    parsed = Notices()
    params = {} if raw is None else {"vs": raw}
    assert pick_second_run(params, "demo", NAMES, parsed) == chosen
    if note is None:
        assert parsed.notices == []
    else:
        assert len(parsed.notices) == 1 and note in parsed.notices[0] and "comparing with lre12" in parsed.notices[0]
        assert len(parsed.notices[0]) < 140  # a long value is clipped, not repeated


def test_second_run_needs_another_run():
    assert second_run_choices(["demo"], "demo") == []
    assert pick_second_run({"vs": "demo"}, "demo", ["demo"], Notices()) is None
    assert second_run_choices(NAMES, "lre12") == ["demo", "seed-1"]


# ----- which branch ---------------------------------------------------------------------------------------------
def test_branch_same_model_needs_the_same_fingerprint():
    demo, lre = read_manifest(DEMO_RUN_DIR), read_manifest(LRE_RUN_DIR)
    different = pair_runs(demo, lre)
    assert not different.same_model and not different.comparable and different.total == 0
    assert Difference("facts corpus", "data/facts/demo", "data/facts/lre12") in different.differences
    reseeded = dataclasses.replace(demo, options={**demo.options, "seed": 7, "pooling": "max"})
    same = pair_runs(demo, reseeded)
    assert same.same_model and same.same_space and same.comparable and same.total == 3584
    assert same.differences == (Difference("pooling", "mean", "max"), Difference("seed", "0", "7"))
    assert same.k_values == (10, 36, 108, 358) and same.k_limit == 358 and default_k(demo, same) == 108
    assert effect_k(100, same) == 108 and effect_k(23, same) == 10 and effect_k(5000, same) == 358
    # The same weights under another fingerprint are another model to the comparison; synthetic runs of
    # different shapes share the fingerprint "synthetic" and are told apart by their source.
    refit = dataclasses.replace(demo, model={**demo.model, "fingerprint": "0" * 64})
    assert not pair_runs(demo, refit).same_model
    synthetic = dataclasses.replace(demo, synthetic=True, model={**demo.model, "fingerprint": "synthetic",
                                                                 "source": "synthetic:small"})
    other_shape = dataclasses.replace(synthetic, model={**synthetic.model, "source": "synthetic:llama-2-7b"})
    assert pair_runs(synthetic, synthetic).same_model and not pair_runs(synthetic, other_shape).same_model


def test_branch_other_definition_compares_by_position(stores):
    a, c = stores["syn-a"].manifest, stores["syn-c"].manifest
    pairing = pair_runs(a, c)
    assert pairing.same_model and not pairing.same_space and pairing.comparable
    assert pairing.common_modules == ("gate_proj", "up_proj", "down_proj")
    assert pairing.skipped_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert pairing.total == SMALL_TOTAL
    assert Difference("neuron definition", "paper", "paper+attention") in pairing.differences
    # Flat ids do name other neurons in the two spaces (past layer 0's FFN modules).
    assert c.neurons["per_layer"] != a.neurons["per_layer"]
    intermediate = dataclasses.replace(a, neurons={**a.neurons, "definition": "intermediate", "modules": {"act": 192},
                                                   "module_order": ["act"], "per_layer": 192, "total": 768})
    none_shared = pair_runs(a, intermediate)
    assert none_shared.same_model and not none_shared.comparable and none_shared.common_modules == ()


# ----- overlap values -------------------------------------------------------------------------------------------
def test_overlap_of_small_sets_by_hand():
    """A = {1, 2, 3, 4}, B = {3, 4, 5} of N = 10: shared 2, Jaccard 2/5, expected 4*3/10 = 1.2, and
    P(X >= 2) = 1 - (C(6,3) + 4*C(6,2)) / C(10,3) = 1 - (20 + 60)/120 = 1/3."""
    demo = read_manifest(DEMO_RUN_DIR)
    pairing = dataclasses.replace(pair_runs(demo, demo), total=10, relations=("r",))
    a = pd.DataFrame({"relation": "r", "neuron": [1, 2, 3, 4], "layer": 0, "module": "gate_proj", "index": 0})
    b = pd.DataFrame({"relation": "r", "neuron": [3, 4, 5], "layer": 0, "module": "gate_proj", "index": 0})
    row = overlap_table(a, b, pairing, ["r"]).iloc[0]
    assert (row.size_a, row.size_b, row.shared) == (4, 3, 2)
    assert row.jaccard == pytest.approx(0.4) and row.expected == pytest.approx(1.2)
    assert row.ratio == pytest.approx(2 / 1.2) and row.p_more == pytest.approx(1 / 3)
    empty = overlap_table(a, b.assign(relation="s"), pairing, ["r"]).iloc[0]
    assert (empty.size_b, empty.shared, empty.p_more) == (0, 0, 1.0)


@pytest.mark.parametrize("k, language", [(10, "en"), (90, "de"), (200, "en"), (1000, "de")])
def test_overlap_matches_python_sets_and_scipy(runs, stores, k, language):
    pairing = pair_runs(stores["syn-a"].manifest, stores["syn-b"].manifest)
    assert pairing.same_model and pairing.same_space and pairing.differences == (Difference("seed", "0", "1"),)
    result = compare_overlap(stores["syn-a"], stores["syn-b"], pairing, k, language)
    expected = expected_rows(oracle_sets(runs / "syn-a", k, language), oracle_sets(runs / "syn-b", k, language),
                             SMALL_TOTAL)
    got = result.table
    assert list(got.relation) == RELATIONS and not result.by_position and result.total == SMALL_TOTAL
    assert (got.size_a == k).all() and (got.size_b == k).all()
    pd.testing.assert_frame_equal(got[["relation", "size_a", "size_b", "shared"]], expected[
        ["relation", "size_a", "size_b", "shared"]], check_dtype=False)
    np.testing.assert_allclose(got.jaccard, expected.jaccard)
    np.testing.assert_allclose(got.expected, expected.expected)
    np.testing.assert_allclose(got.p_more, expected.p_more, rtol=1e-9)
    # A run against itself shares everything: Jaccard 1, far above chance.
    itself = compare_overlap(stores["syn-a"], stores["syn-a"], pair_runs(stores["syn-a"].manifest,
                                                                          stores["syn-a"].manifest), k, language)
    assert (itself.table.shared == k).all() and (itself.table.jaccard == 1).all()
    np.testing.assert_allclose(itself.table.p_more, stats.hypergeom(SMALL_TOTAL, k, k).pmf(k), rtol=1e-9)


def test_overlap_across_definitions_by_layer_module_index(runs, stores):
    k, language = 90, "en"
    pairing = pair_runs(stores["syn-a"].manifest, stores["syn-c"].manifest)
    result = compare_overlap(stores["syn-a"], stores["syn-c"], pairing, k, language)
    ffn = ["gate_proj", "up_proj", "down_proj"]
    expected = expected_rows(oracle_sets(runs / "syn-a", k, language, "position", ffn),
                             oracle_sets(runs / "syn-c", k, language, "position", ffn), SMALL_TOTAL)
    assert result.by_position
    pd.testing.assert_frame_equal(result.table[["relation", "size_a", "size_b", "shared"]],
                                  expected[["relation", "size_a", "size_b", "shared"]], check_dtype=False)
    np.testing.assert_allclose(result.table.p_more, expected.p_more, rtol=1e-9)
    # syn-c's top-k reaches into the attention projections, left out of the comparison: |B| < k there.
    scores = read_parquet_table(runs / "syn-c", "scores")
    in_attention = scores[(scores.language == language) & (scores["rank"] <= k) & ~scores.module.isin(ffn)]
    assert len(in_attention) > 0
    assert (result.table.size_b == k - in_attention.groupby("relation").size().reindex(RELATIONS, fill_value=0)
            .to_numpy()).all()


# ----- effects --------------------------------------------------------------------------------------------------
def test_effects_match_the_oracle(runs, stores):
    k = 90
    result = compare_effects(stores["syn-a"], stores["syn-b"], k, k, "en", "en")
    table = result.table.set_index("relation")
    assert list(table.index) == RELATIONS
    for name, suffix in (("syn-a", "_a"), ("syn-b", "_b")):
        oracle = relation_summary(read_parquet_table(runs / name, "baseline"),
                                  read_parquet_table(runs / name, "effects"), k, "en").set_index("relation")
        np.testing.assert_allclose(table["own_drop" + suffix], oracle.own_drop.reindex(RELATIONS))
        np.testing.assert_allclose(table["baseline" + suffix], oracle.baseline.reindex(RELATIONS))
        np.testing.assert_allclose(table["random_drop" + suffix], oracle.random_drop.reindex(RELATIONS))
        intervals = significance(stores[name].paired_outcomes(k, "en")).set_index("relation")
        np.testing.assert_allclose(table["own_low" + suffix], intervals.own_low.reindex(RELATIONS))
        assert (table["own_low" + suffix] <= table["own_drop" + suffix]).all()
        assert (table["own_drop" + suffix] <= table["own_high" + suffix]).all()
    np.testing.assert_allclose(table.own_difference, table.own_drop_b - table.own_drop_a)
    # A k the runs have no effects for gives empty columns, not an error.
    assert compare_effects(stores["syn-a"], stores["syn-b"], 91, 91, "en", "en").table.empty


def test_effects_side_by_side_for_different_models():
    demo, lre = RunStore(DEMO_RUN_DIR), RunStore(LRE_RUN_DIR)
    result = compare_effects(demo, lre, demo.manifest.k, lre.manifest.k, "en", "en")
    table = result.table.set_index("relation")
    assert list(table.index) == demo.relations
    oracle = relation_summary(read_parquet_table(LRE_RUN_DIR, "baseline"), read_parquet_table(LRE_RUN_DIR, "effects"),
                              lre.manifest.k, "en").set_index("relation")
    np.testing.assert_allclose(table.own_drop_b, oracle.own_drop.reindex(demo.relations))
    np.testing.assert_allclose(table.others_mean_drop_b, oracle.others_mean_drop.reindex(demo.relations))


# ----- the page -------------------------------------------------------------------------------------------------
def test_page_different_models_side_by_side():
    at = run_page("compare", {"run": "demo", "vs": "lre12", "k": "36", "lang": "de"})
    assert_clean(at)
    assert at.query_params["vs"] == "lre12" and at.query_params["lang"] == "de" and at.query_params["k"] == "36"
    assert any("Different models" in t for t in texts(at.info))
    assert [s.value for s in at.subheader] == ["Effect tables side by side (de; each run at its main k)"]
    assert not at.number_input  # no k control: the runs' neurons are not comparable
    specs = chart_specs(at)
    assert len(specs) == 1 and has_tooltips(specs[0])
    drawn = chart_frames(at)[0]
    assert set(drawn.run) == {"demo (data/models/demo)", "lre12 (data/models/lre12)"} and set(drawn.k) == {108}
    table = at.dataframe[-1].value
    assert "A demo: own drop [95% CI]" in table.columns and "B lre12: own drop [95% CI]" in table.columns
    expected = compare_effects(RunStore(DEMO_RUN_DIR), RunStore(LRE_RUN_DIR), 108, 108, "de", "de").table
    np.testing.assert_allclose(table["own drop, B − A"], expected.own_difference.round(1))


def test_page_same_model_overlap_and_effects(runs, stores, monkeypatch):
    monkeypatch.setenv(RUNS_DIR_ENV, str(runs))
    at = run_page("compare", {"run": "syn-a", "vs": "syn-b", "k": "50", "lang": "de"})
    assert_clean(at)
    assert any("Same model" in t and "seed" in t for t in texts(at.success))
    assert [s.value for s in at.subheader][:2] == ["Top-50 agreement per relation (de)",
                                                  "Effects: each relation's own top-50 off, in both runs (de)"]
    specs = chart_specs(at)
    assert len(specs) == 2 and all(has_tooltips(s) for s in specs)
    drawn = chart_frames(at)[0]
    pairing = pair_runs(stores["syn-a"].manifest, stores["syn-b"].manifest)
    expected = compare_overlap(stores["syn-a"], stores["syn-b"], pairing, 50, "de").table
    np.testing.assert_array_equal(drawn.shared, expected.shared)
    np.testing.assert_allclose(drawn.expected, expected.expected)
    # k 60 is no precomputed k: the top-k sets at 60, the effects at the nearest precomputed k both have (50).
    at = run_page("compare", {"run": "syn-a", "vs": "syn-b", "k": "60"})
    assert_clean(at)
    assert "Top-60 agreement per relation (en)" in [s.value for s in at.subheader]
    assert any("shown at the nearest, k = 50" in c.value for c in at.caption)
    # Another neuron definition: compared by (layer, module, index), and the page says so.
    at = run_page("compare", {"run": "syn-a", "vs": "syn-c"})
    assert_clean(at)
    assert any("flat ids are not comparable" in t.replace("\\", "") for t in texts(at.warning))


@pytest.mark.parametrize("vs, note", [("nope", "Unknown second run"), ("syn-a", "is the sidebar's run"),
                                      ("<script>", "Unknown second run")])
def test_page_link_fallback(runs, monkeypatch, vs, note):
    monkeypatch.setenv(RUNS_DIR_ENV, str(runs))
    at = run_page("compare", {"run": "syn-a", "vs": vs, "k": "abc", "lang": "xx"})
    assert_clean(at)
    warnings = [t.replace("\\", "") for t in texts(at.warning)]
    assert any(note in t and "comparing with syn-b" in t for t in warnings), warnings
    assert any("k 'abc' in the link is not a whole number" in t for t in warnings)
    assert any("Unknown language 'xx'" in t for t in warnings)
    assert at.query_params["vs"] == "syn-b" and at.query_params["lang"] == "en" and at.query_params["k"] == "90"


def test_page_with_one_run(tmp_path, monkeypatch, runs):
    (tmp_path / "only").symlink_to(runs / "syn-a", target_is_directory=True)
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    at = run_page("compare", {"vs": "syn-b"})
    assert_clean(at)
    assert any("Only one run (only)" in t.replace("\\", "") for t in texts(at.info))


def test_page_second_run_unreadable(tmp_path, monkeypatch, runs):
    (tmp_path / "syn-a").symlink_to(runs / "syn-a", target_is_directory=True)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / MANIFEST).write_text("{not json")
    monkeypatch.setenv(RUNS_DIR_ENV, str(tmp_path))
    at = run_page("compare", {"run": "syn-a", "vs": "broken"})
    assert not at.exception, [e.value for e in at.exception]
    errors = [t.replace("\\", "") for t in texts(at.error)]
    assert len(errors) == 1 and "The run broken cannot be opened" in errors[0] and "not valid JSON" in errors[0]


# ----- another ablation than zero (effects of a run's mode_effects, main k only) ------------------------------------
def with_mean_ablation(source: Path, out: Path, k: int, flip: float = 0.3, seed: int = 5) -> Path:
    """A copy of `source` that also holds "mean" ablation effects at k (mode_effects, as precompute writes them
    for --ablation mean): its zero effects at k with a share `flip` of each relation's own answers broken more."""
    shutil.copytree(source, out, ignore=shutil.ignore_patterns(f"{STORE_PREFIX}*"))
    rng = np.random.default_rng(seed)
    for path in sorted((source / "effects").glob(f"ablated=*/k={k}/*.parquet")):
        if path.name.startswith("range"):
            continue
        table = pq.read_table(path)
        frame = table.to_pandas()
        ablated = path.parent.parent.name.split("=", 1)[1]
        frame.loc[(frame.relation == ablated) & (rng.random(len(frame)) < flip), "correct"] = False
        target = out / "mode_effects" / "ablation=mean" / path.parent.parent.name / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa_table(frame, table.schema), target)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["ablations"] = ["zero", "mean"]
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return out


@pytest.fixture(scope="module")
def mean_run(runs, tmp_path_factory):
    """A runs folder of its own: syn-a (a link) and syn-a-mean, its copy that also holds mean ablation effects."""
    if "mode_effects" not in TABLES:
        pytest.skip("this version of the store reads no effects of other ablations")
    base = tmp_path_factory.mktemp("mean-runs")
    (base / "syn-a").symlink_to(runs / "syn-a", target_is_directory=True)
    path = with_mean_ablation(runs / "syn-a", base / "syn-a-mean", 90)
    try:
        store = RunStore(path)
    except Exception as exc:  # a manifest schema without `ablations`
        pytest.skip(f"this version of the app reads no run with other ablations: {exc}")
    return path, store


def test_effects_of_another_ablation(runs, stores, mean_run):
    path, store = mean_run
    assert stores["syn-a"].ablations() == [ZERO] and store.ablations() == [ZERO, "mean"]
    pairing = pair_runs(stores["syn-a"].manifest, store.manifest)
    assert pairing.same_model and Difference("ablations stored", "zero", "zero, mean") in pairing.differences
    # Another ablation than zero exists at the main k only: each run is read there, whatever k was asked.
    assert effect_ks(200, pairing, stores["syn-a"].manifest, store.manifest, ZERO, "mean") == (90, 90)
    assert effect_ks(200, pairing, stores["syn-a"].manifest, store.manifest) == (200, 200)
    result = compare_effects(stores["syn-a"], store, 90, 90, "en", "en", ZERO, "mean")
    table = result.table.set_index("relation")
    mode = read_parquet_table(path, "mode_effects")
    mode = mode[mode.ablation.astype(str) == "mean"].drop(columns="ablation")
    mode["ablated"], mode["k"] = mode.ablated.astype(str), mode.k.astype(int)
    baseline = read_parquet_table(path, "baseline")
    oracle = relation_summary(baseline, mode, 90, "en").set_index("relation").reindex(RELATIONS)
    np.testing.assert_allclose(table.own_drop_b, oracle.own_drop)
    np.testing.assert_allclose(table.random_drop_b, oracle.random_drop)
    zero = relation_summary(read_parquet_table(runs / "syn-a", "baseline"), read_parquet_table(runs / "syn-a", "effects"),
                            90, "en").set_index("relation").reindex(RELATIONS)
    np.testing.assert_allclose(table.own_drop_a, zero.own_drop)
    assert (table.own_difference > 0).all()  # the mean run's copy breaks more of each relation's answers
    # The own drop's interval over prompts, recomputed from the oracle's rows.
    own = mode[(mode.kind == "top") & (mode.ablated == mode.relation) & (mode.language == "en")
               & (mode.template_kind == "train")].merge(baseline[["prompt_id", "correct"]].rename(
                   columns={"correct": "base"}), on="prompt_id")
    for rel, g in own.sort_values("prompt_id").groupby("relation"):
        low, high = paired_drop_interval(g.base.to_numpy(bool), g.correct.to_numpy(bool))
        assert (table.own_low_b[rel], table.own_high_b[rel]) == pytest.approx((low, high))


def test_page_with_another_ablation(runs, mean_run, monkeypatch):
    path, _ = mean_run
    monkeypatch.setenv(RUNS_DIR_ENV, str(path.parent))
    at = run_page("compare", {"run": "syn-a", "vs": "syn-a-mean", "vs_abl": "mean", "k": "200", "abl": "nope"})
    assert not at.exception, [e.value for e in at.exception]
    assert any("Unknown ablation 'nope'" in t.replace("\\", "") for t in texts(at.warning))
    assert [s.value for s in at.subheader] == [
        "Top-200 agreement per relation (en)",
        "Effects: each relation's own top-90 off, in both runs (en; ablation: zero in syn-a, mean in syn-a-mean)"]
    assert at.query_params["vs_abl"] == "mean" and "abl" not in at.query_params
