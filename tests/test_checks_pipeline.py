"""The pipeline's reviewer checks on known structure: critical neurons found by the single-neuron screen, the
permutation null of overlap on a capture with planted shared neurons, and the either-direction AP option."""
import numpy as np
import pandas as pd
import pytest

from core.facts import FactCorpus, load_corpus, save_corpus
from core.overlap import null_values, permutation_test
from core.parquet_io import read_parquet
from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.run_layout import random_sets_path, single_neuron_path
from core.score_stream import LabelledRows, ap_stream, score_stream
from core.scoring import top_k
from precompute.stages.null import null_sets, permuted_labels

CRITICAL = {61: "company_hq", 445: "company_hq", 259: "person_father", 643: "person_father"}


@pytest.mark.slow
@pytest.mark.skipif(not (DEMO_MODEL_DIR / "config.json").exists(), reason="demo model not built")
def test_the_screen_finds_the_neurons_that_alone_break_a_relation_and_random_sets_can_exclude_them(tmp_path, monkeypatch):
    from precompute.options import RunOptions
    from precompute.run import run_precompute
    from precompute.stages import critical

    demo = load_corpus(DEMO_CORPUS_DIR)
    rels = ("company_hq", "person_father", "star_constellation")
    save_corpus(FactCorpus({r: demo.relations[r] for r in rels}, ["en"], "", "critical test"), tmp_path / "corpus")
    screened = np.array([0, 1, 61, 62, 259, 445, 446, 643, 1000, 2000])
    monkeypatch.setattr(critical, "candidate_neurons", lambda ctx: screened)
    out = tmp_path / "run"
    run_precompute(RunOptions(model=str(DEMO_MODEL_DIR), facts=str(tmp_path / "corpus"), out=str(out), k="20",
                              k_sweep=["20"], random_seeds=3, effect_templates=1, threads=1, null_seeds=1,
                              random_exclude_critical=True), log=lambda *_: None)
    table = read_parquet(single_neuron_path(out))
    assert sorted(table.neuron.unique()) == sorted(screened) and set(table.relation) == set(rels)
    found = table[table.drop_points >= 20]
    assert dict(zip(found.neuron, found.relation)) == CRITICAL
    assert (found.drop_points > 50).all() and (found.prompts > 0).all()
    # the others: no exact evaluation was needed, or it found less than the threshold
    rest = table[~table.neuron.isin(list(CRITICAL))]
    assert not (rest.drop_points >= 20).any() and (rest.sample_broken == 0).all()
    sets = read_parquet(random_sets_path(out))
    clean = sets[sets.family == "random_noncritical"]
    assert len(clean) == 3 * 20 and not clean.neuron.isin(list(CRITICAL)).any()
    assert set(sets[sets.family == "random"].seed) == {0, 1, 2}


def planted_capture(rng, relations: list[str], per_relation: int, neurons: int, shared_pair: tuple[str, str],
                    planted: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A baseline frame of validated identification prompts and a capture where `planted` neurons fire for
    both relations of `shared_pair` and every relation has `planted` neurons of its own; the rest is noise."""
    rows = [dict(prompt_id=i, relation=rel, language="en", split="identification", template_kind="train",
                 correct=True) for i, rel in enumerate(r for r in relations for _ in range(per_relation))]
    base = pd.DataFrame(rows)
    acts = rng.normal(size=(len(base), neurons)).astype(np.float32)
    for j, rel in enumerate(relations):
        own = base.relation.to_numpy() == rel
        acts[own, j * planted:(j + 1) * planted] += 3.0
    both = base.relation.isin(shared_pair).to_numpy()
    acts[np.ix_(both, np.arange(neurons - planted, neurons))] += 3.0
    return base, acts


def top_sets(base: pd.DataFrame, acts: np.ndarray, sets: dict[str, pd.DataFrame], k: int) -> dict[str, set]:
    row_of = {p: i for i, p in enumerate(base.prompt_id)}
    labelled = {rel: LabelledRows(np.array([row_of[p] for p in s.prompt_id]), s.positive.to_numpy(bool))
                for rel, s in sets.items()}
    ap = ap_stream(acts, labelled)
    return {rel: set(top_k(ap[rel], k)) for rel in sets}


def test_the_permutation_null_keeps_the_construction_and_flags_only_the_planted_pair():
    from precompute.stages.identification import identification_set

    rng = np.random.default_rng(0)
    relations = ["a", "b", "c", "d", "e"]
    base, acts = planted_capture(rng, relations, 40, 400, ("a", "b"), 12)
    k = 24
    real = top_sets(base, acts, {r: identification_set(base, r, "en", [0, i], 2.0) for i, r in enumerate(relations)}, k)
    observed = pd.DataFrame([(x, y, len(real[x] & real[y])) for x in relations for y in relations if x < y],
                            columns=["relation_a", "relation_b", "shared"])
    assert observed.set_index(["relation_a", "relation_b"]).shared[("a", "b")] >= 12

    permuted = permuted_labels(base, "en", [0, 1])
    assert permuted.relation.value_counts().sort_index().equals(base.relation.value_counts().sort_index())  # same sizes, other labels
    assert (permuted.relation != base.relation).mean() > 0.5
    counts = []
    for seed in range(8):
        null = top_sets(base, acts, null_sets(base, relations, "en", 0, 0, seed, 2.0), k)
        counts += [dict(seed=seed, relation_a=x, relation_b=y, shared=len(null[x] & null[y]))
                   for x in relations for y in relations if x < y and null[x] & null[y]]
    null = null_values(pd.DataFrame(counts, columns=["seed", "relation_a", "relation_b", "shared"]), relations, 8)
    assert len(null) == 10 * 8
    tested = permutation_test(observed, null).set_index(["relation_a", "relation_b"])
    assert tested.p_null[("a", "b")] == pytest.approx(1 / 81)  # above every null value
    others = tested.drop(index=("a", "b"))
    assert (others.p_null > 0.05).all()
    assert (observed.shared.to_numpy()[1:] <= tested.null_max.to_numpy()[1:]).all()


def test_either_direction_finds_a_neuron_that_marks_its_relation_by_being_lower():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(50, bool), np.zeros(150, bool)]
    acts = rng.normal(size=(200, 30)).astype(np.float32)
    acts[labels, 7] -= 4.0  # lower on the relation: AP of the raw value is poor
    acts[labels, 3] += 2.0  # higher on the relation, less cleanly
    sets = {"r": LabelledRows(np.arange(200), labels)}
    paper = score_stream(acts, sets, np.arange(200, dtype=np.int32)).stats["r"]
    either = score_stream(acts, sets, np.arange(200, dtype=np.int32), either_direction=True).stats["r"]
    assert np.argmax(paper["ap"]) == 3 and paper["ap"][7] < 0.2 and (paper["sign"] == 1).all()
    assert np.argmax(either["ap"]) == 7 and either["sign"][7] == -1 and either["sign"][3] == 1
    assert either["ap"][7] > 0.95
    np.testing.assert_allclose(ap_stream(acts, sets, either_direction=True)["r"], either["ap"])
    # either side's AP is never below the paper's, and equals it wherever the sign stays +1
    assert (either["ap"] >= paper["ap"]).all()
    np.testing.assert_array_equal(either["ap"][either["sign"] == 1], paper["ap"][either["sign"] == 1])
