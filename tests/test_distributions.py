"""Activation distributions (core/distributions.py, precompute/stages/distributions.py, RunStore.activation_quantiles,
the neuron page's section): values on planted captures, the stored neuron set and its sample, resuming, the
committed demo run against its own scores, and the page with and without the table."""
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from apptest_helpers import assert_clean, chart_frames, chart_specs, has_tooltips, run_page, texts
from core.distributions import (COLUMNS, DISTRIBUTION_SAMPLE, QUANTILE_COLUMNS, QUANTILES, SIDES, activation_boxes,
                                distribution_stream, stored_neurons)
from core.parquet_io import write_parquet_atomic
from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR, DEMO_RUN_DIR
from core.run_layout import capture_paths, distributions_path, identification_path, scores_path, top_prompts_path
from core.score_stream import LabelledRows
from core.store import RunStore
from precompute.processes import ProcessGroup
from precompute.stages import distributions as stage

DEMO = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


# ----- a run folder with only what the stage reads: captures, identification sets, scores' ranks ---------------
def make_run(tmp_path: Path, acts: dict[str, np.ndarray], sets: dict[tuple[str, str], tuple[list[int], list[int]]],
             ranks: dict[tuple[str, str], np.ndarray], k_sweep=(2, 3), seed=0, memory_mib=1024) -> SimpleNamespace:
    """`acts`: per language a [prompts, neurons] capture whose prompt ids are 1000 + 7 x row (so rows and ids
    differ); `sets`: per (relation, language) the capture rows of its positives and negatives; `ranks`: per
    (relation, language) every neuron's rank."""
    out = tmp_path / "run"
    for lang, a in acts.items():
        a_path, ids_path = capture_paths(out, lang)
        a_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(a_path, a.astype(np.float32))
        np.save(ids_path, (1000 + 7 * np.arange(a.shape[0])).astype(np.int32))
    for (rel, lang), (pos, neg) in sets.items():
        ids = 1000 + 7 * np.array(pos + neg)
        write_parquet_atomic(pd.DataFrame({"prompt_id": ids.astype(np.int32),
                                           "positive": np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]}),
                             identification_path(out, rel, lang))
        rank = ranks[(rel, lang)]
        write_parquet_atomic(pd.DataFrame({"neuron": np.arange(len(rank), dtype=np.int32),
                                           "rank": np.asarray(rank, dtype=np.int32)}), scores_path(out, rel, lang))
    relations = sorted({r for r, _ in sets})
    total = next(iter(acts.values())).shape[1]
    return SimpleNamespace(options=SimpleNamespace(out=str(out), seed=seed, score_memory_mib=memory_mib), out=out,
                           workers=ProcessGroup(), relations=relations, languages=list(acts), k=k_sweep[0],
                           k_sweep=list(k_sweep), space=SimpleNamespace(total=total))


def read(ctx, rel: str, lang: str) -> pd.DataFrame:
    return pq.read_table(distributions_path(ctx.out, rel, lang)).to_pandas()


def test_a_planted_neuron_reads_one_on_positives_and_zero_on_negatives(tmp_path):
    """Neuron 3 is 1.0 on relation a's prompts and 0.0 on every other: a's positives give 1 at every quantile,
    its negatives 0; relation b (whose negatives include a's prompts) sees the mirror image's mixture."""
    acts = np.zeros((20, 10))
    acts[:10, 3] = 1.0  # rows 0-9: relation a's prompts; rows 10-19: relation b's
    sets = {("a", "en"): ([0, 1, 2, 3, 4], [10, 11, 12, 13, 14, 15, 16, 17]),
            ("b", "en"): ([10, 11, 12, 13, 14], [0, 1, 2, 3, 5, 6, 7, 8])}
    ranks = {key: np.r_[4, 5, 6, 1, 7, 8, 9, 10, 2, 3] for key in sets}  # top-3: neurons 3, 8, 9
    ctx = make_run(tmp_path, {"en": acts}, sets, ranks)
    assert stage.run(ctx) is True
    a = read(ctx, "a", "en")
    assert list(a.columns) == list(COLUMNS)
    assert a.neuron.dtype == np.int32 and a.n.dtype == np.int32
    assert all(a[c].dtype == np.float32 for c in ("mean", *QUANTILE_COLUMNS))
    assert set(a.neuron) == set(range(10))  # 3 in the top-k union, the other 7 all drawn (fewer than the sample)
    assert list(a[~a.sampled].neuron.unique()) == [3, 8, 9]
    row = a[a.neuron == 3].set_index("side")
    assert list(row.index) == list(SIDES)  # positive first
    assert row.loc["positive", "n"] == 5 and row.loc["negative", "n"] == 8
    assert (row.loc["positive", ["mean", *QUANTILE_COLUMNS]] == 1.0).all()
    assert (row.loc["negative", ["mean", *QUANTILE_COLUMNS]] == 0.0).all()
    other = a[a.neuron == 0]
    assert (other[["mean", *QUANTILE_COLUMNS]].to_numpy() == 0.0).all()
    b = read(ctx, "b", "en").query("neuron == 3").set_index("side")
    assert (b.loc["positive", ["mean", *QUANTILE_COLUMNS]] == 0.0).all()
    neg = b.loc["negative"]  # 8 negatives, all of them a's prompts: all 1
    assert neg.n == 8 and neg.q00 == neg.q100 == neg["mean"] == 1.0


def test_quantiles_equal_numpy_on_a_random_capture_in_small_chunks_and_passes(tmp_path):
    """A random capture of 700 neurons read 256 columns at a time (the smallest chunk) and one relation per
    pass (a zero memory budget): every stored row equals numpy's own quantile and mean of that set's values."""
    rng = np.random.default_rng(3)
    acts = {lang: rng.normal(size=(30, 700)).astype(np.float32) * rng.gamma(2.0, 1.0, 700).astype(np.float32)
            for lang in ("en", "de")}
    sets, ranks = {}, {}
    for i, rel in enumerate(["a", "b", "c"]):
        for lang in acts:
            rows = rng.permutation(30)
            sets[(rel, lang)] = (sorted(rows[:7].tolist()), sorted(rows[7:7 + 11 + i].tolist()))
            ranks[(rel, lang)] = rng.permutation(700) + 1
    ctx = make_run(tmp_path, acts, sets, ranks, k_sweep=(5, 40), seed=11, memory_mib=0)
    assert stage.relation_groups(["a", "b", "c"], 700, 0) == [["a"], ["b"], ["c"]]
    stage.run(ctx)
    expected_top = set()
    for rank in ranks.values():
        expected_top |= set(np.nonzero(rank <= 40)[0])
    for (rel, lang), (pos, neg) in sets.items():
        got = read(ctx, rel, lang)
        assert set(got[~got.sampled].neuron) == expected_top
        assert got.sampled.sum() == 2 * DISTRIBUTION_SAMPLE
        for side, rows in (("positive", pos), ("negative", neg)):
            part = got[got.side == side].set_index("neuron")
            x = acts[lang][rows][:, part.index].astype(np.float64)
            want = np.quantile(x, QUANTILES, axis=0)  # numpy's default method
            for name, values in zip(QUANTILE_COLUMNS, want):
                np.testing.assert_allclose(part[name].to_numpy(), values, rtol=1e-6, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(part["mean"].to_numpy(), x.mean(0), rtol=1e-6, atol=1e-6)
            assert (part.n == len(rows)).all()


def test_the_stream_matches_one_pass_over_the_whole_array():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(12, 600)).astype(np.float32)
    sets = {"r": LabelledRows(np.array([0, 2, 4, 6, 8, 10, 11]), np.array([1, 1, 1, 0, 0, 0, 0], bool))}
    neurons = np.array([0, 5, 255, 256, 257, 511, 512, 599])  # either side of the 256-column chunk edges
    small = distribution_stream(acts, sets, neurons, memory_budget=0)
    whole = distribution_stream(acts, sets, neurons, memory_budget=1 << 30)
    for side in SIDES:
        for name, values in small["r"][side].items():
            np.testing.assert_array_equal(values, whole["r"][side][name])
    np.testing.assert_array_equal(small["r"]["positive"]["q100"], acts[[0, 2, 4]][:, neurons].max(0))


def test_the_sample_is_seeded_uniform_and_outside_the_top_sets():
    top = np.array([5, 9, 9, 100, 3000])
    neurons, sampled = stored_neurons(top, 3584, seed=0)
    again, sampled_again = stored_neurons(top, 3584, seed=0)
    assert np.array_equal(neurons, again) and np.array_equal(sampled, sampled_again)
    assert np.array_equal(neurons, np.sort(neurons)) and len(neurons) == len(np.unique(neurons))
    assert sampled.sum() == DISTRIBUTION_SAMPLE and set(neurons[~sampled]) == {5, 9, 100, 3000}
    assert not set(neurons[sampled]) & set(top)
    other, other_sampled = stored_neurons(top, 3584, seed=1)
    assert set(other[other_sampled]) != set(neurons[sampled])  # the run's seed moves the sample
    small, small_sampled = stored_neurons(np.array([1]), 10, seed=0)  # fewer others than the sample: all of them
    assert list(small) == list(range(10)) and small_sampled.sum() == 9


def test_a_finished_stage_is_skipped_and_a_missing_file_rebuilt_alike(tmp_path):
    rng = np.random.default_rng(1)
    sets = {("a", "en"): ([0, 1, 2], [3, 4, 5, 6]), ("b", "en"): ([3, 4, 5], [0, 1, 2, 7])}
    ctx = make_run(tmp_path, {"en": rng.normal(size=(8, 20))}, sets,
                   {key: rng.permutation(20) + 1 for key in sets})
    assert stage.run(ctx) is True
    first = {rel: distributions_path(ctx.out, rel, "en").read_bytes() for rel in ("a", "b")}
    stamp = distributions_path(ctx.out, "a", "en").stat().st_mtime_ns
    assert stage.run(ctx) is False
    distributions_path(ctx.out, "b", "en").unlink()
    assert stage.distributions_missing(ctx, "en")
    assert stage.run(ctx) is True
    assert distributions_path(ctx.out, "a", "en").stat().st_mtime_ns == stamp  # the finished file untouched
    assert {rel: distributions_path(ctx.out, rel, "en").read_bytes() for rel in ("a", "b")} == first
    assert not list(ctx.out.rglob("*.tmp"))


def test_a_missing_table_makes_the_capture_run_again(tmp_path):
    """A finished run without the table: the capture (not kept) is taken again for exactly the languages whose
    distributions are missing, and not at all once they are there."""
    from precompute.stages.capture import capture_todo

    rng = np.random.default_rng(2)
    sets = {(r, l): ([0, 1], [2, 3]) for r in ("a", "b") for l in ("en", "de")}
    ctx = make_run(tmp_path, {l: rng.normal(size=(4, 6)) for l in ("en", "de")}, sets,
                   {key: np.arange(1, 7) for key in sets})
    # no language here is the identification language: only scores and distributions can ask for a capture
    ctx.options.identification_language, ctx.options.null_seeds = "xx", 0
    for lang in ("en", "de"):
        write_parquet_atomic(pd.DataFrame({"neuron": [0]}), top_prompts_path(ctx.out, lang))
    stage.run(ctx)
    shutil.rmtree(ctx.out / "work")
    assert capture_todo(ctx) == []
    distributions_path(ctx.out, "b", "de").unlink()
    todo = capture_todo(ctx)
    assert [lang for lang, _ in todo] == ["de"]
    assert list(todo[0][1]) == sorted({1000 + 7 * row for row in (0, 1, 2, 3)})


def test_the_stage_runs_after_scoring_and_before_the_checks():
    from precompute.stages import STAGES

    names = [name for name, _ in STAGES]
    assert names.index("capture") < names.index("scoring") < names.index("distributions") < names.index("null")


def test_activation_boxes_keep_one_language_and_join_its_ap():
    quantiles = pd.DataFrame({"relation": ["r", "r", "r", "s", "s"], "language": ["en", "en", "de", "en", "en"],
                              "side": ["negative", "positive", "positive", "positive", "negative"],
                              "n": [8, 2, 2, 3, 9], "q50": [0.0, 1.0, 5.0, 0.5, 0.1]})
    profile = pd.DataFrame({"relation": ["r", "r", "s"], "language": ["en", "de", "en"], "ap": [0.9, 0.2, 0.4],
                            "rank": [1, 50, 7]})
    boxes = activation_boxes(quantiles, profile, "en")
    assert boxes[["relation", "side", "q50", "ap", "rank"]].values.tolist() == [
        ["r", "positive", 1.0, 0.9, 1], ["r", "negative", 0.0, 0.9, 1],
        ["s", "positive", 0.5, 0.4, 7], ["s", "negative", 0.1, 0.4, 7]]


# ----- the committed demo run -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_store():
    store = RunStore(DEMO_RUN_DIR)
    yield store
    store.close()


@DEMO
def test_the_demo_runs_stored_means_are_its_scores_means(demo_store):
    """For a top neuron of every relation: n is the identification set's size, the positives' mean and median
    are the scores table's mean_pos and median_pos, the negatives' mean its mean_neg (float32 rounding)."""
    store = demo_store
    for rel in store.relations[:4]:
        neuron = int(store.top_neurons(rel, "en", 1).neuron.iloc[0])
        got = store.activation_quantiles(neuron)
        assert len(got) == len(store.relations) * len(store.languages) * 2 and not got.sampled.any()
        profile = store.neuron_profile(neuron).set_index(["relation", "language"])
        for r in got.itertuples():
            ident = store.identification_rows(r.relation, r.language)
            assert r.n == int((ident.positive == (r.side == "positive")).sum())
            p = profile.loc[(r.relation, r.language)]
            if r.side == "positive":
                assert r.mean == pytest.approx(p.mean_pos, rel=1e-4, abs=1e-5)
                assert r.q50 == pytest.approx(p.median_pos, rel=1e-4, abs=1e-5)
            else:
                assert r.mean == pytest.approx(p.mean_neg, rel=1e-4, abs=1e-5)
            assert r.q00 <= r.q05 <= r.q25 <= r.q50 <= r.q75 <= r.q95 <= r.q100


@DEMO
def test_the_demo_run_stores_its_top_union_and_its_sample(demo_store):
    store = demo_store
    table = store.table("distributions")
    top = store.query("SELECT DISTINCT neuron FROM scores WHERE rank <= ?", [store.top_limit]).neuron
    assert set(table[~table.sampled].neuron) == set(top)
    assert table[table.sampled].neuron.nunique() == min(DISTRIBUTION_SAMPLE, store.total_neurons - len(top))
    units = len(store.relations) * len(store.languages)
    assert len(table) == table.neuron.nunique() * units * 2
    unknown = sorted(set(range(store.total_neurons)) - set(table.neuron))
    if unknown:
        assert store.activation_quantiles(unknown[0]).empty
    assert store.activation_quantiles(-1).empty and store.activation_quantiles(store.total_neurons).empty


# ----- the neuron page ------------------------------------------------------------------------------------------
@DEMO
def test_the_neuron_page_draws_the_boxes_for_its_language():
    store = RunStore(DEMO_RUN_DIR)
    neuron = int(store.top_neurons("person_father", "en", 1).neuron.iloc[0])
    store.close()
    at = run_page("neuron", {"neuron": str(neuron), "lang": "de"})
    assert_clean(at)
    assert "Activation on positives and negatives (de)" in texts(at.subheader)
    assert any("whiskers: 5th to 95th percentile" in c and "quantiles stored by precompute" in c
               for c in texts(at.caption))
    frames = [f for f in chart_frames(at) if {"q05", "q25", "q50", "q75", "q95", "side"} <= set(f.columns)]
    assert len(frames) == 1
    boxes = frames[0]
    assert set(boxes.language) == {"de"} and len(boxes) == 2 * 12
    assert list(boxes.side[:2]) == ["positive", "negative"] and boxes.ap.notna().all()
    spec = next(s for s in chart_specs(at) if '"q95"' in json.dumps(s))
    assert has_tooltips(spec)


@DEMO
def test_the_neuron_page_says_which_neurons_are_stored(monkeypatch):
    """The demo's top-358 sets and sample hold every one of its 3,584 neurons, so an unstored neuron is played
    by a store that returns no rows, as it does for a neuron outside the stored set."""
    monkeypatch.setattr(RunStore, "activation_quantiles",
                        lambda self, neuron: pd.DataFrame(columns=["relation", "language", "side", "sampled"]))
    at = run_page("neuron", {"neuron": "2.up_proj.5"})
    assert_clean(at)
    assert any("stored for every neuron ranked in the top 358 (the run's largest k)" in c
               and f"uniform sample of {DISTRIBUTION_SAMPLE} other neurons; L2.up_proj[5] is neither" in c
               for c in texts(at.caption)), texts(at.caption)


@DEMO
def test_a_run_without_the_table_says_how_to_add_it(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(DEMO_RUN_DIR, runs / "old", ignore=shutil.ignore_patterns("work", ".store-*", "distributions"))
    monkeypatch.setenv("RELATION_NEURONS_RUNS_DIR", str(runs))
    at = run_page("neuron", {"run": "old"})
    assert_clean(at)
    assert any("predates the activation-distributions table" in c and "python -m precompute run" in c
               for c in texts(at.caption))


# ----- the real pipeline: a finished run made before the stage gets it by running again ----------------------------
@pytest.mark.slow
@pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
def test_rerunning_a_finished_run_adds_only_the_table(tmp_path, monkeypatch):
    """A run of two relations in English, finished; its distributions and capture removed (a run made before the
    stage, as committed); `precompute run` again with the same options writes only distributions/, byte for byte
    what the first run wrote, and its means are the scores' own."""
    import dataclasses

    from core.facts import FactCorpus, load_corpus, save_corpus
    from precompute.options import RunOptions
    from precompute.run import run_precompute

    demo = load_corpus(DEMO_CORPUS_DIR)
    relations = {}
    for name in ("person_father", "star_constellation"):
        r = demo.relations[name]
        facts = [f for f in r.facts if f.split == "identification"][:28] + [f for f in r.facts if f.split == "evaluation"][:12]
        relations[name] = dataclasses.replace(r, facts=facts)
    save_corpus(FactCorpus(relations, ["en"], "", "distributions test"), tmp_path / "corpus")
    run = tmp_path / "run"
    options = RunOptions(model=str(DEMO_MODEL_DIR), facts=str(tmp_path / "corpus"), out=str(run), k="20",
                         k_sweep=["5", "20"], random_seeds=1, effect_templates=1, batch_size=32, threads=1,
                         critical_neurons=100, null_seeds=1)
    run_precompute(options, log=lambda *_: None)
    made = {p: p.read_bytes() for p in (run / "distributions").rglob("*.parquet")}
    assert len(made) == 2
    shutil.rmtree(run / "distributions")
    shutil.rmtree(run / "work")
    others = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*.parquet")}
    manifest = run_precompute(options, log=lambda *_: None)
    assert manifest.status == "complete" and "distributions" in manifest.timings
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in others} == others  # nothing else rewritten
    now = {p: p.read_bytes() for p in run.rglob("*.parquet") if p not in others}
    assert now == made
    store = RunStore(run)
    try:
        table, scores = store.table("distributions"), store.table("scores")
        assert set(table[~table.sampled].neuron) == set(scores[scores["rank"] <= 20].neuron)
        pos = table[table.side == "positive"].merge(scores, on=["relation", "language", "neuron"])
        neg = table[table.side == "negative"].merge(scores, on=["relation", "language", "neuron"])
        assert len(pos) == len(neg) == len(table) // 2
        np.testing.assert_allclose(pos["mean"], pos.mean_pos, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(pos.q50, pos.median_pos, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(neg["mean"], neg.mean_neg, rtol=1e-4, atol=1e-5)
    finally:
        store.close()
