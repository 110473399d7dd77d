"""A synthetic run with a real run's exact shape: same schema, marked synthetic, served by the store and the app."""
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from apptest_helpers import PAGES, assert_clean, chart_frames, run_page, texts
from core.paths import DEMO_RUN_DIR
from core.manifest import neuron_space, read_manifest
from core import store as store_module
from core.run_layout import TABLES
from core.store import STORE_PREFIX, RunStore
from precompute.synthetic_run import SHAPES, space_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    done = subprocess.run([sys.executable, "-m", "precompute", "synthetic-run", "--shape", "small",
                           "--out", str(runs / "synthetic-small")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SYNTHETIC small-shaped run" in done.stdout and "indexed" in done.stdout
    return runs


def test_llama_2_shapes_have_the_paper_neuron_counts():
    assert space_of(SHAPES["llama-2-7b"]).total == 835_584
    assert space_of(SHAPES["llama-2-13b"]).total == 1_310_720


def test_synthetic_run_has_the_schema_of_a_real_run_and_says_it_is_synthetic(runs):
    run = runs / "synthetic-small"
    manifest = read_manifest(run)
    assert manifest.synthetic and "SYNTHETIC" in manifest.notes and manifest.model["source"] == "synthetic:small"
    for table in TABLES:
        if table == "mode_effects":  # a run of zero ablation only, as every synthetic run is, has none
            continue
        ours = pq.read_schema(next((run / table).rglob("*.parquet")))
        real = pq.read_schema(next((DEMO_RUN_DIR / table).rglob("*.parquet")))
        assert [(f.name, str(f.type)) for f in ours] == [(f.name, str(f.type)) for f in real], table
    n = neuron_space(manifest).total
    store = RunStore(run)
    scores = store.table("scores")
    assert len(scores) == n * len(manifest.corpus["relations"]) * len(manifest.corpus["languages"])
    assert (scores.groupby(["relation", "language"])["rank"].agg(["min", "max"]) == [1, n]).all().all()
    assert len(store.table("top_prompts")) == n * 5 * len(manifest.corpus["languages"])


def test_store_builds_its_file_once_and_rebuilds_when_the_run_changes(runs, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(runs / "synthetic-small", run, ignore=shutil.ignore_patterns(f"{STORE_PREFIX}*"))
    RunStore(run).close()
    first = list(run.glob(f"{STORE_PREFIX}*.duckdb"))
    assert len(first) == 1
    stamp = first[0].stat().st_mtime_ns
    again = RunStore(run)
    assert list(run.glob(f"{STORE_PREFIX}*.duckdb")) == first and first[0].stat().st_mtime_ns == stamp
    before = again.layer_distribution(again.manifest.k, "en")
    again.close()
    victim = next((run / "identification").rglob("*.parquet"))
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    rebuilt = RunStore(run)
    files = list(run.glob(f"{STORE_PREFIX}*.duckdb"))
    assert len(files) == 1 and files != first  # a new key; the stale file is gone
    assert rebuilt.layer_distribution(rebuilt.manifest.k, "en").equals(before)
    rebuilt.close()


def test_store_falls_back_to_memory_where_the_run_folder_is_read_only(runs, monkeypatch):
    def refuse(*_):
        raise PermissionError("read-only file system")

    on_file = RunStore(runs / "synthetic-small")
    monkeypatch.setattr(store_module, "_build_store_file", refuse)
    in_memory = RunStore(runs / "synthetic-small")
    m = on_file.manifest
    layers = (0, m.neurons["num_layers"] - 1)
    for k in (m.k, m.neurons["total"]):  # the top table, and beyond it the full scores table
        a = on_file.overlap_counts(k, ["en", "de"], layers, list(m.neurons["module_order"]))[0]
        b = in_memory.overlap_counts(k, ["en", "de"], layers, list(m.neurons["module_order"]))[0]
        key = ["relation_a", "language_a", "relation_b", "language_b"]
        assert a.sort_values(key, ignore_index=True).equals(b.sort_values(key, ignore_index=True))
    with pytest.raises(Exception, match="(?i)permission|external"):
        in_memory.query("SELECT * FROM read_parquet(?)", [str(next((runs / "synthetic-small").rglob("*.parquet")))])


def test_drawn_structure_looks_like_the_paper(runs):
    store = RunStore(runs / "synthetic-small")
    m = store.manifest
    layers = (0, m.neurons["num_layers"] - 1)
    shared, sizes = store.overlap_counts(m.k, ["en"], layers, list(m.neurons["module_order"]))
    pair = shared[(shared.relation_a == "person_father") & (shared.relation_b == "person_mother")].shared.item()
    other = shared[(shared.relation_a == "company_ceo") & (shared.relation_b == "star_constellation")].shared
    assert pair > 3 * (other.item() if len(other) else 0) and (sizes["size"] == m.k).all()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_serves_the_synthetic_run(runs, monkeypatch, page):
    monkeypatch.setenv("RELATION_NEURONS_RUNS_DIR", str(runs))
    at = run_page(page, {"run": "synthetic-small"})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)
    assert any("Synthetic run" in w for w in texts(at.sidebar.warning))
    if page == "lab":
        assert any("synthetic" in i for i in texts(at.info))
    elif page == "compare":  # this runs folder holds the synthetic run alone
        assert any("Only one run" in i for i in texts(at.info))
    else:
        assert chart_frames(at), f"{page} drew no chart"


def test_synthetic_run_never_writes_into_an_existing_run(runs, tmp_path):
    import shutil

    real = tmp_path / "real"  # a copy: the guard under test must not be what protects the committed run
    shutil.copytree(DEMO_RUN_DIR, real, ignore=shutil.ignore_patterns("work", ".store-*"))
    before = {p: p.stat().st_mtime_ns for p in real.rglob("*")}
    done = subprocess.run([sys.executable, "-m", "precompute", "synthetic-run", "--shape", "small",
                           "--out", str(real)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "is not empty" in done.stderr and "Traceback" not in done.stderr
    assert not read_manifest(real).synthetic
    assert {p: p.stat().st_mtime_ns for p in real.rglob("*")} == before  # nothing written, nothing touched


def test_a_damaged_store_file_is_rebuilt_and_dead_builders_leftovers_removed(runs, tmp_path):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(runs / "synthetic-small", run, ignore=shutil.ignore_patterns(f"{STORE_PREFIX}*"))
    RunStore(run).close()
    store_file = next(run.glob(f"{STORE_PREFIX}*.duckdb"))
    store_file.write_bytes(b"not a duckdb file" * 100)
    dead = run / f"{STORE_PREFIX}0123.999999999.1.tmp"  # a builder killed mid-build (no such process)
    dead.write_bytes(b"half")
    store = RunStore(run)
    assert store.layer_distribution(store.manifest.k, "en")["neurons"].sum() > 0
    store.close()
    assert not dead.exists()
    assert RunStore(run).problems == {}  # mode_effects is absent: the run holds zero ablation only
