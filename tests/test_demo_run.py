"""The committed demo run: complete, within its size budget, and reproduced byte for byte by precompute."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.paths import DEMO_RUN_DIR
from core.manifest import read_manifest
from core.store import RunStore
from precompute.options import RunOptions
from precompute.run import run_precompute

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


def test_demo_run_is_complete_and_small():
    manifest = read_manifest(DEMO_RUN_DIR)
    assert manifest.status == "complete"
    size = sum(p.stat().st_size for p in DEMO_RUN_DIR.rglob("*") if p.is_file() and "work" not in p.relative_to(DEMO_RUN_DIR).parts)
    # the Parquet (32 MB) and the DuckDB store built from it (31 MB); the distributions table is 10 + 12 MB of them
    assert size <= 75 * 2**20
    store = RunStore(DEMO_RUN_DIR)
    assert not store.missing
    assert len(store.relations) >= 12 and set(store.languages) >= {"en", "de", "fr", "es"}


def test_precompute_reproduces_the_committed_files(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the manifest names model and corpus relative to the repository
    manifest = read_manifest(DEMO_RUN_DIR)
    copy = tmp_path / "demo"
    shutil.copytree(DEMO_RUN_DIR, copy, ignore=shutil.ignore_patterns("work"))
    redo = [
        next((copy / "baseline").rglob("*.parquet")),
        sorted((copy / "scores").glob("relation=*/language=de/*.parquet"))[0],
        sorted((copy / "effects").glob("ablated=person_father/k=*/top-0.parquet"))[0],
        sorted((copy / "effects").glob("ablated=random/k=*/random-0-seed3.parquet"))[0],
        sorted((copy / "effects").glob("ablated=random_noncritical/k=*/random-0-seed1.parquet"))[0],
        copy / "random_sets" / "part-0.parquet",
        copy / "null_top" / "seed=4" / "part-0.parquet",
        sorted((copy / "distributions").glob("relation=*/language=de/*.parquet"))[-1],
    ]
    expected = {p: pq.read_table(p) for p in redo}
    for p in redo:
        p.unlink()
    options = RunOptions(out=str(copy), **{k: v for k, v in manifest.options.items()})
    options.threads = 2
    run_precompute(options, log=lambda *_: None)
    top_limit = max([manifest.k, *manifest.k_sweep])
    for p, table in expected.items():
        assert_same_results(pq.read_table(p), table, p, top_limit)


def assert_same_results(got: pa.Table, expected: pa.Table, path: Path, top_limit: int) -> None:
    """Equal row for row: every answer, id and text exactly, every rank the views use (up to the run's largest
    k) exactly; float32 statistics to float32 rounding. Byte identity holds on one machine
    (tests/test_kill_resume.py); another CPU's vector units round the last bits of a float32 sum differently,
    which moves log-probabilities by about 1e-7 and can swap two neurons whose AP ties to 6 digits."""
    assert got.schema == expected.schema, path
    a, b = got.to_pandas(), expected.to_pandas()
    assert a.shape == b.shape, path
    if "null_top" in path.parts:  # ranks without their AP: near-ties may swap across CPUs, as in scores
        for rel, mine in a.groupby("relation"):
            theirs = b[b.relation == rel]
            assert len(set(mine.neuron) ^ set(theirs.neuron)) <= 2, (path, rel)
            assert (mine.neuron.to_numpy() == theirs.neuron.to_numpy()).mean() >= 0.95, (path, rel)
        return
    for column in a.columns:
        if pd.api.types.is_float_dtype(a[column]):
            np.testing.assert_allclose(a[column], b[column], rtol=1e-4, atol=1e-5, err_msg=f"{path}: {column}")
        elif column == "rank":
            moved = a["rank"] != b["rank"]
            assert not (moved & ((a["rank"] <= top_limit) | (b["rank"] <= top_limit))).any(), (path, "top ranks")
            # a swap is only between near-ties: AP read in rank order is the same sequence
            np.testing.assert_allclose(a.sort_values("rank").ap.to_numpy(), b.sort_values("rank").ap.to_numpy(),
                                       atol=1e-4, err_msg=f"{path}: ranks")
        else:
            assert a[column].equals(b[column]), (path, column)


def test_the_critical_screen_reproduces_the_committed_rows(tmp_path, monkeypatch):
    """The single-neuron screen on a few neurons (the four critical ones and some that are not) gives the
    committed table's rows for them."""
    from precompute.stages import critical

    monkeypatch.chdir(ROOT)
    manifest = read_manifest(DEMO_RUN_DIR)
    copy = tmp_path / "demo"
    shutil.copytree(DEMO_RUN_DIR, copy, ignore=shutil.ignore_patterns("work", ".store-*"))
    committed = pq.read_table(copy / "single_neuron" / "part-0.parquet").to_pandas()
    (copy / "single_neuron" / "part-0.parquet").unlink()
    chosen = np.array([0, 61, 259, 445, 643, 1000, 2047, 3583])
    monkeypatch.setattr(critical, "candidate_neurons", lambda ctx: chosen)
    options = RunOptions(out=str(copy), **{k: v for k, v in manifest.options.items()})
    options.threads = 2
    run_precompute(options, log=lambda *_: None)
    got = pq.read_table(copy / "single_neuron" / "part-0.parquet")
    expected = pa.Table.from_pandas(committed[committed.neuron.isin(chosen)].reset_index(drop=True),
                                    schema=got.schema, preserve_index=False)
    assert_same_results(got, expected, copy / "single_neuron", max([manifest.k, *manifest.k_sweep]))
    assert set(got.to_pandas().query("drop_points >= 20").neuron) == {61, 259, 445, 643}
