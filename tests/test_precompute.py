"""The precompute pipeline end to end on the embedded demo model and a slice of its corpus."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from core.parquet_io import parquet_digests
from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.facts import FactCorpus, load_corpus, save_corpus
from core.manifest import neuron_space, read_manifest
from core.neurons import NeuronId
from core.metrics import cumulativity, summarise_relations
from core.store import RunStore
from precompute.options import RunOptions, resolve_k
from precompute.run import run_precompute

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
RELATIONS = ["person_father", "person_mother", "star_constellation"]


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    demo = load_corpus(DEMO_CORPUS_DIR)
    corpus = FactCorpus({r: demo.relations[r] for r in RELATIONS}, ["de", "en"], "", "test slice")
    folder = tmp_path_factory.mktemp("corpus")
    save_corpus(corpus, folder)
    return folder


def options(corpus: Path, out: Path) -> RunOptions:
    return RunOptions(model=str(DEMO_MODEL_DIR), facts=str(corpus), out=str(out), k="30", k_sweep=["10", "30", "60"],
                      random_seeds=2, effect_templates=1, batch_size=64, threads=1, critical_neurons=200, null_seeds=2)


@pytest.fixture(scope="module")
def finished_run(small_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "full"
    run_precompute(options(small_corpus, out), log=lambda *_: None)
    return out


def test_resolve_k():
    assert resolve_k("3000", 835_584) == 3000
    assert resolve_k("0.36%", 835_584) == 3008
    assert resolve_k("0.0036", 835_584) == 3008
    assert resolve_k("4608", 4608) == resolve_k("100%", 4608) == 4608
    for bad in ["0", "abc", "-5", "10000000", "4609", "150%", "nan", "inf", "1.5"]:  # refused, never clamped
        with pytest.raises(ValueError):
            resolve_k(bad, 4608)


def test_run_writes_every_table_and_a_complete_manifest(finished_run):
    manifest = read_manifest(finished_run)
    assert manifest.status == "complete" and manifest.k == 30 and manifest.k_sweep == [10, 30, 60]
    config = json.loads((DEMO_MODEL_DIR / "config.json").read_text())  # the model's own dimensions
    per_layer = 2 * config["intermediate_size"] + config["hidden_size"]  # gate_proj, up_proj, down_proj outputs
    assert manifest.neurons["total"] == config["num_hidden_layers"] * per_layer == 3_584
    for table in ("baseline", "identification", "scores", "effects"):
        assert not RunStore(finished_run).table(table).empty
    scores = RunStore(finished_run).table("scores")
    assert set(scores.relation) == set(RELATIONS) and set(scores.language) == {"de", "en"}
    space = neuron_space(manifest)  # what the app rebuilds from the manifest must give the run's flat ids
    sample = scores.sample(200, random_state=0)
    for r in sample.itertuples():
        assert space.flat_id(NeuronId(int(r.layer), str(r.module), int(r.index))) == r.neuron
    assert (scores.groupby(["relation", "language"]).size() == manifest.neurons["total"]).all()


def test_negatives_are_four_times_the_positives_from_other_relations(finished_run):
    base = RunStore(finished_run).table("baseline").set_index("prompt_id")
    ident = RunStore(finished_run).table("identification")
    for (rel, lang), g in ident.groupby(["relation", "language"]):
        pos, neg = g[g.positive].prompt_id, g[~g.positive].prompt_id
        assert len(pos) > 0
        pool = base[(base.relation != rel) & (base.language == lang) & (base.split == "identification")
                    & (base.template_kind == "train") & base.correct]
        assert len(neg) == min(4 * len(pos), len(pool))
        assert set(neg) <= set(pool.index)
        assert base.loc[pos].correct.all() and (base.loc[pos].relation == rel).all()
        assert (base.loc[pos].split == "identification").all()


def test_scores_equal_sklearn_on_the_captured_activations(finished_run):
    acts = np.load(finished_run / "work" / "language=en" / "activations.npy")
    ids = np.load(finished_run / "work" / "language=en" / "prompt_ids.npy")
    row = {int(p): i for i, p in enumerate(ids)}
    ident = RunStore(finished_run).table("identification")
    scores = RunStore(finished_run).table("scores")
    rng = np.random.default_rng(0)
    for rel in RELATIONS:
        g = ident[(ident.relation == rel) & (ident.language == "en")]
        x = acts[[row[int(p)] for p in g.prompt_id]]
        s = scores[(scores.relation == rel) & (scores.language == "en")].set_index("neuron")
        for neuron in rng.choice(acts.shape[1], 40, replace=False):
            ref = average_precision_score(g.positive.to_numpy(), x[:, neuron])
            assert abs(s.loc[neuron, "ap"] - ref) < 1e-6
        assert sorted(s["rank"]) == list(range(1, len(s) + 1))
    top = RunStore(finished_run).table("top_prompts")
    top = top[top.language == "en"]
    for neuron in rng.choice(acts.shape[1], 20, replace=False):
        t = top[top.neuron == neuron].sort_values("place")
        assert t.value.iloc[0] == acts[:, neuron].max()
        assert acts[row[int(t.prompt_id.iloc[0])], neuron] == t.value.iloc[0]
        assert t.value.is_monotonic_decreasing
        assert s.sort_values("rank").ap.is_monotonic_decreasing


def test_effects_zero_the_selected_top_k(finished_run):
    from core.run_layout import Condition
    from precompute.stages.effects import neuron_set
    from precompute.stages.scoring import ranking as read_ranking

    ranking = read_ranking(finished_run, "person_father", "en")
    scores = RunStore(finished_run).table("scores")
    s = scores[(scores.relation == "person_father") & (scores.language == "en")].sort_values("rank")
    assert list(ranking[:30]) == list(s.neuron[:30])
    cond = Condition(ablated="person_father", kind="range", k_from=10, k=30, seed=-1)
    total = read_manifest(finished_run).neurons["total"]
    assert sorted(neuron_set(cond, {"person_father": ranking}, total, seed=0)) == sorted(ranking[10:30])


def test_summary_and_cumulativity_compute(finished_run):
    store = RunStore(finished_run)
    table = summarise_relations(store.ablation_summary("train"), 30)
    assert set(table.relation) == set(RELATIONS)
    assert table.seeds.eq(2).all()
    rows = store.effect_rows(["top", "range"])
    cum = cumulativity(rows, 10, 30).set_index("relation")
    # the same counts by hand, prompt by prompt (method.md): right with top-10 off and wrong with top-30 off
    # is #total; of those, also wrong with only ranks 11..30 off is #affected
    own = rows[(rows.ablated == rows.relation) & (rows.template_kind == "train")]
    correct = {(r.kind, int(r.k_from), int(r.k), int(r.prompt_id)): bool(r.correct) for r in own.itertuples()}
    for relation in RELATIONS:
        prompts = set(own[own.relation == relation].prompt_id.astype(int))
        total = [p for p in prompts if correct[("top", 0, 10, p)] and not correct[("top", 0, 30, p)]]
        affected = [p for p in total if not correct[("range", 10, 30, p)]]
        assert (cum.loc[relation, "total"], cum.loc[relation, "affected"]) == (len(total), len(affected)), relation
    assert cum.total.sum() > 0  # the slice has prompts that the wider ablation breaks


def test_resume_after_deleting_outputs_is_byte_identical(finished_run, small_corpus, tmp_path):
    import shutil

    reference = parquet_digests(finished_run)
    copy = tmp_path / "resumed"
    shutil.copytree(finished_run, copy)
    for p in list((copy / "effects").rglob("*.parquet"))[::2] + list((copy / "scores").rglob("*.parquet"))[:1]:
        p.unlink()
    run_precompute(options(small_corpus, copy), log=lambda *_: None)
    assert parquet_digests(copy) == reference


def test_killed_run_resumes_to_identical_output(finished_run, small_corpus, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "precompute", "run", "--model", str(DEMO_MODEL_DIR), "--facts", str(small_corpus),
           "--out", str(out), "--k", "30", "--k-sweep", "10,30,60", "--random-seeds", "2", "--effect-templates", "1",
           "--batch-size", "64", "--threads", "1", "--critical-neurons", "200", "--null-seeds", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "effects").rglob("*.parquet")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_manifest(out).status == "running"
    for path in out.rglob("*.parquet"):  # whatever a reader can see is a whole file
        read_table_file = pd.read_parquet(path)
        assert len(read_table_file) > 0
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert parquet_digests(out) == parquet_digests(finished_run)
    assert read_manifest(out).status == "complete"


def test_resume_refuses_other_options(finished_run, small_corpus):
    from precompute.run import RunMismatchError

    changed = options(small_corpus, finished_run)
    changed.pooling = "max"
    with pytest.raises(RunMismatchError, match="different options"):
        run_precompute(changed, log=lambda *_: None)


def test_other_ablation_modes_add_effects_beside_zero(finished_run, tmp_path):
    """--ablation mean on a finished run: only new files (mode_effects, main k), the zero files untouched, the
    manifest lists the modes, the store summarises each; the neuron means are the capture's column means.
    (Scale's arithmetic, x1 = the plain model, is tests/test_ablation_modes.py's.)"""
    import shutil

    from core.mapped import NpyColumns
    from core.run_layout import capture_paths

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = parquet_digests(run)
    opts = options(run.parent, run)
    opts.facts = read_manifest(finished_run).options["facts"]
    opts.ablation = "mean"
    run_precompute(opts, log=lambda *_: None)
    after = parquet_digests(run)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing rewritten
    added = sorted(set(after) - set(before))
    m = read_manifest(run)
    relations = len(m.corpus["relations"])
    # main k only: each relation's top-k and the random sets (2 seeds) of that k
    assert len(added) == relations + 2 and all(p.startswith("mode_effects/ablation=mean/") for p in added)
    assert m.ablations == ["zero", "mean"]

    store = RunStore(run)
    means = store.neuron_means()
    acts = NpyColumns(capture_paths(run, "en")[0])
    np.testing.assert_allclose(means, acts.block(0, acts.shape[1]).mean(axis=0, dtype=np.float64), rtol=1e-5,
                               atol=1e-6)
    assert store.ablations() == ["zero", "mean"]
    zero, mean = store.ablation_summary("train", "zero"), store.ablation_summary("train", "mean")
    assert set(mean.k) == {m.k} and len(zero.k.unique()) == 3
    own = mean[(mean.kind == "top") & (mean.ablated == mean.relation)]
    assert len(own) == relations * len(m.corpus["languages"])
    assert not np.allclose(own.sort_values(["relation", "language"]).first_lp_drop.to_numpy(),
                           zero[(zero.kind == "top") & (zero.k == m.k) & (zero.ablated == zero.relation)]
                           .sort_values(["relation", "language"]).first_lp_drop.to_numpy())  # another ablation
