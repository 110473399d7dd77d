"""The precompute stages' pure parts and the run context, without loading a model's weights."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.run_layout import Condition
from precompute.context import RunInputError, prepare_run
from precompute.options import RunOptions
from precompute.stages.effects import effect_prompts, neuron_set
from precompute.stages.identification import identification_set
from precompute.stages.scoring import ranks, top_prompts_frame
from precompute.processes import ProcessGroup

TOTAL = 3584
RANKING = np.random.default_rng(5).permutation(TOTAL)  # flat ids by decreasing AP


def test_random_set_is_reproducible_distinct_and_in_range():
    c = Condition("random", "random", 0, 50, 3)
    a, b = neuron_set(c, {}, TOTAL, seed=0), neuron_set(c, {}, TOTAL, seed=0)
    assert np.array_equal(a, b)
    assert len(a) == len(np.unique(a)) == 50 and a.min() >= 0 and a.max() < TOTAL
    assert np.array_equal(a, np.sort(a))
    assert not np.array_equal(a, neuron_set(Condition("random", "random", 0, 50, 4), {}, TOTAL, seed=0))
    assert not np.array_equal(a, neuron_set(c, {}, TOTAL, seed=1))  # the run's --seed matters too
    assert len(neuron_set(Condition("random", "random", 0, TOTAL, 0), {}, TOTAL, seed=0)) == TOTAL


def test_top_and_range_sets_are_ranks_of_the_ranking():
    rankings = {"r": RANKING}
    top = neuron_set(Condition("r", "top", 0, 30), rankings, TOTAL, seed=0)
    assert list(top) == sorted(RANKING[:30])  # ranks 1..30
    rng = neuron_set(Condition("r", "range", 10, 30), rankings, TOTAL, seed=0)
    assert list(rng) == sorted(RANKING[10:30])  # ranks 11..30
    assert len(rng) == 20 and set(rng) == set(top) - set(RANKING[:10])


def prompts_frame() -> pd.DataFrame:
    rows = [(rel, "en", kind, t, split) for rel in ("a", "b") for kind, templates in (("train", 3), ("heldout", 1))
            for t in range(templates) for split in ("evaluation", "identification", "evaluation")]
    df = pd.DataFrame(rows, columns=["relation", "language", "template_kind", "template_index", "split"])
    df.insert(0, "prompt_id", np.arange(len(df), dtype=np.int32))
    return df


def test_effect_prompts_keep_heldout_and_the_first_trained_templates():
    df = prompts_frame()
    one = effect_prompts(df, 1)
    assert (one.split == "evaluation").all()
    assert sorted(set(zip(one.template_kind, one.template_index))) == [("heldout", 0), ("train", 0)]
    assert len(one) == 2 * 2 * 2 and list(one.index) == list(range(len(one)))
    assert len(effect_prompts(df, None)) == (df.split == "evaluation").sum() == 16


def baseline_frame(correct_a: int, correct_b: int) -> pd.DataFrame:
    rows = [dict(prompt_id=i, relation=rel, language="en", split="identification", template_kind="train",
                 correct=i % 10 < (correct_a if rel == "a" else correct_b))
            for i, rel in enumerate(["a"] * 10 + ["b"] * 30)]
    rows += [dict(prompt_id=40 + i, relation="b", language="en", split="evaluation", template_kind="train",
                  correct=True) for i in range(5)]  # never negatives: not identification prompts
    return pd.DataFrame(rows)


def test_identification_set_draws_ratio_times_the_positives_from_other_relations():
    base = baseline_frame(correct_a=4, correct_b=7)  # b: 21 validated prompts
    ident = identification_set(base, "a", "en", [0, 0, 0], 4.0)
    pos, neg = ident[ident.positive].prompt_id, ident[~ident.positive].prompt_id
    assert list(pos) == [0, 1, 2, 3]
    assert len(neg) == 16 and neg.is_monotonic_increasing and len(set(neg)) == 16
    assert set(neg) <= set(base[(base.relation == "b") & base.correct & (base.split == "identification")].prompt_id)
    assert ident.equals(identification_set(base, "a", "en", [0, 0, 0], 4.0))  # seeded
    assert len(identification_set(base, "a", "en", [0, 0, 0], 0.01).query("~positive")) == 1  # at least one
    assert len(identification_set(base, "a", "en", [0, 0, 0], 100.0).query("~positive")) == 21  # at most all


def test_identification_without_positives_says_what_to_do():
    with pytest.raises(RunInputError, match=r"relation a \(en\): the model answers 0 of its 10 .*drop the relation"):
        identification_set(baseline_frame(correct_a=0, correct_b=5), "a", "en", [0, 0, 0], 4.0)


def test_ranks_and_top_prompts_frames():
    assert list(ranks(np.array([0.2, 0.9, 0.2, 0.5]))) == [3, 1, 4, 2]  # ties keep neuron order
    frame = top_prompts_frame(np.array([[7, 8], [9, 7]], np.int32), np.array([[2.0, 1.0], [5.0, 4.0]], np.float32))
    assert frame.values.tolist() == [[0, 1, 7, 2.0], [0, 2, 8, 1.0], [1, 1, 9, 5.0], [1, 2, 7, 4.0]]


@pytest.mark.skipif(not (DEMO_MODEL_DIR / "config.json").exists(), reason="demo model not built")
def test_prepare_run_checks_options_and_loads_no_weights(tmp_path):
    options = RunOptions(model=str(DEMO_MODEL_DIR), facts=str(DEMO_CORPUS_DIR), out=str(tmp_path / "run"), k="30",
                         k_sweep=["10", "1%"], languages=["en", "de"], random_seeds=2)
    ctx = prepare_run(options, ProcessGroup(), log=lambda *_: None)
    assert ctx.lm is None and ctx.hooks is None and not (tmp_path / "run").exists()
    assert (ctx.k, ctx.k_sweep) == (30, [10, 30, 36])
    assert ctx.languages == ["en", "de"] and list(ctx.prompts.prompt_id) == list(range(len(ctx.prompts)))
    assert set(ctx.prompts.language) == {"en", "de"} and set(ctx.prompts.relation) == set(ctx.relations)
    options.languages = ["en", "xx"]
    with pytest.raises(ValueError, match="language.s. xx not in the corpus"):
        prepare_run(options, ProcessGroup())
    options.languages, options.k = None, "5000"
    with pytest.raises(ValueError, match="more than the model's 3,584 neurons"):
        prepare_run(options, ProcessGroup())


def test_workers_coordinate_one_process():
    w = ProcessGroup()
    assert list(w.rounds([1, 2, 3])) == [([1], 1), ([2], 2), ([3], 3)]
    assert list(ProcessGroup(rank=1, world=2).rounds([1, 2, 3])) == [([1, 2], 2), ([3], None)]
    assert w.map_gathered([[0, 1], [2]], lambda idx: ((i, i * i) for i in idx)) == {0: 0, 1: 1, 2: 4}
    assert w.on_main(lambda: 5) == 5
    with pytest.raises(KeyError) as raised:
        w.on_main(lambda: {}["x"])
    assert raised.value.raised_on_main_process
    w.check_agree(("c", "m", 3), ("corpus", "model", "prompt count"), lambda rank, what: AssertionError(what))
