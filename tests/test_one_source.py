"""One reader and one implementation per figure: the store's path (what the explorer and `precompute summary`
use) equals an independent oracle (pyarrow reader + pandas, tests/run_oracle.py) on the committed demo run."""
import numpy as np
import pandas as pd
import pytest

from core.paths import DEMO_RUN_DIR
from core.manifest import module_sizes
from core.metrics import summarise_relations
from core.overlap import complete_grid, filtered_total, overlap_long
from core.run_layout import TABLES
from core.store import RunStore
from precompute.summary import CLOSE_PAIRS, relation_overlap
from run_oracle import ablation_table, null_shared, overlap_matrix, paired_outcomes, read_parquet_table, top_sets

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")
KEYS = ["ablated", "kind", "k_from", "k", "seed", "relation", "language"]
TOL = 1e-9


@pytest.fixture(scope="module")
def store():
    s = RunStore(DEMO_RUN_DIR)
    yield s
    s.close()


@pytest.fixture(scope="module")
def raw():
    return {t: read_parquet_table(DEMO_RUN_DIR, t) for t in ("baseline", "effects", "scores")}


def _sorted(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return df[columns].sort_values(columns, ignore_index=True)


@pytest.mark.parametrize("table", TABLES)
def test_the_store_reads_every_table_as_pyarrow_does(store, table, raw):
    ours = store.table(table)
    theirs = raw[table] if table in raw else read_parquet_table(DEMO_RUN_DIR, table)
    assert sorted(ours.columns) == sorted(theirs.columns)
    columns = sorted(ours.columns)
    pd.testing.assert_frame_equal(_sorted(ours, columns), _sorted(theirs, columns), check_dtype=False)


@pytest.mark.parametrize("template_kind", ["train", "heldout"])
def test_ablation_summary_equals_the_pandas_oracle(store, raw, template_kind):
    ours = store.ablation_summary(template_kind)
    theirs = ablation_table(raw["baseline"], raw["effects"], template_kind)
    assert len(ours) == len(theirs) > 0
    pd.testing.assert_frame_equal(ours[KEYS], theirs[KEYS], check_dtype=False)
    for column in ("base_accuracy", "accuracy", "prompts", "drop_points"):  # counts and their ratios: exact
        np.testing.assert_array_equal(ours[column].to_numpy(float), theirs[column].to_numpy(float), err_msg=column)
    np.testing.assert_array_equal(ours.relative_drop.isna(), theirs.relative_drop.isna())
    for column in ("relative_drop", "first_lp_drop", "lp_drop"):  # float32 sums in another order: to rounding
        np.testing.assert_allclose(ours[column].to_numpy(float), theirs[column].to_numpy(float), rtol=0, atol=TOL,
                                   equal_nan=True, err_msg=column)


@pytest.mark.parametrize("language", ["en", "de"])
def test_the_summary_table_equals_the_oracle(store, raw, language):
    k = store.manifest.k
    ours = summarise_relations(store.ablation_summary("train"), k, language)
    theirs = summarise_relations(ablation_table(raw["baseline"], raw["effects"]), k, language)
    text = [c for c in ours.columns if ours[c].dtype == object or pd.api.types.is_string_dtype(ours[c])]
    pd.testing.assert_frame_equal(ours[text], theirs[text])
    numbers = [c for c in ours.columns if c not in text]
    pd.testing.assert_frame_equal(ours[numbers], theirs[numbers], check_exact=False, rtol=0, atol=TOL)


@pytest.mark.parametrize("k", [10, 108, 500])  # 500 is above the run's largest k: read from the full scores table
@pytest.mark.parametrize("language", ["en", "fr"])
def test_overlap_equals_set_arithmetic(store, raw, k, language):
    m = store.manifest
    sizes = dict(module_sizes(m))
    modules, layers = list(sizes), (0, m.neurons["num_layers"] - 1)
    total = filtered_total(sizes, modules, layers)
    assert total == m.neurons["total"]
    shared, set_sizes = store.overlap_counts(k, [language], layers, modules)
    grid = complete_grid(shared, [(r, language) for r in store.relations])
    scores = raw["scores"]
    sets = top_sets(scores[scores.language == language], k)
    for metric in ("count", "jaccard", "chance_ratio"):  # the nulls' metrics: tests/test_statistics.py
        long = overlap_long(grid, set_sizes, metric, total)
        ours = long.pivot(index="relation_a", columns="relation_b", values="value").sort_index().sort_index(axis=1)
        theirs = overlap_matrix(sets, metric, total)
        ours.index.name = ours.columns.name = None
        if metric == "count":
            pd.testing.assert_frame_equal(ours.astype(float), theirs, check_exact=True)
        else:
            pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=0, atol=1e-12)


def test_the_summary_overlap_is_the_overlap_page_view(store, raw):
    k = store.manifest.k
    pairs = relation_overlap(store, k, "en")
    scores = raw["scores"]
    counts = overlap_matrix(top_sets(scores[scores.language == "en"], k), "count")
    n = len(store.relations)
    assert len(pairs) == n * (n - 1) // 2
    for a, b, c in zip(pairs.relation_a, pairs.relation_b, pairs.shared):
        assert c == counts.loc[a, b]
    assert all((a, b) in set(zip(pairs.relation_a, pairs.relation_b)) or (b, a) in set(zip(pairs.relation_a, pairs.relation_b))
               for a, b in CLOSE_PAIRS)
    np.testing.assert_allclose(pairs.expected, k * k / store.total_neurons, rtol=1e-15)


def test_prompt_count_table_counts_every_baseline_prompt_once():
    store = RunStore(DEMO_RUN_DIR)
    table = store.prompt_count_table()
    baseline = store.table("baseline")
    assert int(table.to_numpy().sum()) == len(baseline)
    assert set(table.columns) == {f"{s} / {k}" for s, k in zip(baseline.split, baseline.template_kind)}
    assert table.loc["person_father", "evaluation / train"] == len(
        baseline[(baseline.relation == "person_father") & (baseline.split == "evaluation")
                 & (baseline.template_kind == "train")])


@pytest.mark.parametrize("language", ["en", "es"])
def test_paired_outcomes_equal_a_pandas_join(store, raw, language):
    k = store.manifest.k
    ours = store.paired_outcomes(k, language)
    theirs = paired_outcomes(raw["baseline"], raw["effects"], k, language)
    assert len(ours) == len(theirs) > 0
    assert set(ours.family) == {"random", "random_noncritical"} if language == "en" else True
    pd.testing.assert_frame_equal(ours.astype({"seed": int}), theirs.astype({"seed": int}), check_dtype=False)


def test_null_overlap_counts_equal_set_arithmetic(store):
    null_top = read_parquet_table(DEMO_RUN_DIR, "null_top")
    m = store.manifest
    modules, layers = list(dict(module_sizes(m))), (0, m.neurons["num_layers"] - 1)
    for k in (10, store.manifest.k):
        ours = store.null_overlap_counts(k, layers, modules)
        theirs = null_shared(null_top, k)
        assert len(ours) == len(theirs) > 0 and store.null_seeds == null_top.seed.nunique() == m.options["null_seeds"]
        pd.testing.assert_frame_equal(ours.astype({"seed": int}), theirs, check_dtype=False)


def test_critical_neurons_and_random_sets_are_what_the_stages_wrote(store):
    from precompute.stages.effects import neuron_set
    from core.run_layout import Condition

    single = read_parquet_table(DEMO_RUN_DIR, "single_neuron")
    threshold = store.critical_threshold
    ours = store.critical_neurons()
    theirs = single[single.drop_points >= threshold]
    assert sorted(zip(ours.neuron, ours.relation)) == sorted(zip(theirs.neuron, theirs.relation))
    assert 445 in set(ours.neuron)  # the neuron that carried the random baseline's mean (issue 11)
    critical = np.unique(theirs.neuron)
    sets = read_parquet_table(DEMO_RUN_DIR, "random_sets")
    m = store.manifest
    for (family, k, seed), g in sets.groupby(["family", "k", "seed"]):
        drawn = neuron_set(Condition(family, "random", 0, int(k), int(seed)), {}, store.total_neurons,
                           m.options["seed"], critical)
        np.testing.assert_array_equal(np.sort(g.neuron.to_numpy()), drawn)
        if family == "random_noncritical":
            assert not np.isin(drawn, critical).any()
