"""Broken run folders: a clear message naming the file, and the rest of the app keeps working."""
import json
import shutil

import pytest

from apptest_helpers import assert_clean, run_page, texts
from core.paths import DEMO_RUN_DIR
from core.manifest import ManifestError, read_manifest
from core.store import RunDataError, RunStore

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


@pytest.fixture
def broken_runs(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(DEMO_RUN_DIR, runs / "demo", ignore=shutil.ignore_patterns("work"))
    monkeypatch.setenv("RELATION_NEURONS_RUNS_DIR", str(runs))
    return runs / "demo"


def test_truncated_parquet_is_named_and_other_tables_work(broken_runs):
    victim = next((broken_runs / "scores").rglob("*.parquet"))
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])
    store = RunStore(broken_runs)
    assert "scores" in store.missing and "corrupt" in store.missing["scores"]
    assert "rerun `python -m precompute run`" in store.missing["scores"]
    with pytest.raises(RunDataError, match="scores"):
        store.layer_distribution(10, "en")
    assert not store.baseline_accuracy().empty  # the baseline still answers
    at = run_page("layers")
    assert not at.exception
    assert any("scores" in e for e in texts(at.error))
    assert_clean(run_page("overview"))


def test_missing_table_is_named(broken_runs):
    shutil.rmtree(broken_runs / "effects")
    store = RunStore(broken_runs)
    assert "effects" in store.missing and "no Parquet files" in store.missing["effects"]
    at = run_page("effects")
    assert not at.exception and any("effects" in e for e in texts(at.error))


def test_old_schema_manifest_says_what_to_do(broken_runs):
    manifest = json.loads((broken_runs / "manifest.json").read_text())
    manifest["schema_version"] = 0
    (broken_runs / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="rerun `python -m precompute run`"):
        read_manifest(broken_runs)
    at = run_page("overview")
    assert not at.exception and any("schema version 0" in e for e in texts(at.error))


def test_a_run_whose_model_does_not_match(broken_runs, tmp_path):
    manifest = json.loads((broken_runs / "manifest.json").read_text())
    manifest["neurons"]["num_layers"] = 3  # a consistent manifest of a smaller model than the one loaded
    manifest["neurons"]["total"] = 3 * manifest["neurons"]["per_layer"]
    (broken_runs / "manifest.json").write_text(json.dumps(manifest))
    at = run_page("lab")
    assert not at.exception and any("does not match the run" in e for e in texts(at.error))


def test_a_run_whose_model_is_gone(broken_runs):
    manifest = json.loads((broken_runs / "manifest.json").read_text())
    manifest["model"]["source"] = "data/models/no-such-model"
    (broken_runs / "manifest.json").write_text(json.dumps(manifest))
    at = run_page("lab")
    assert not at.exception and any("could not be loaded" in e for e in texts(at.error))
    assert_clean(run_page("overlap"))  # the data pages do not need the model


@pytest.mark.parametrize("field,value", [("k", "abc"), ("relations", "abcdefghijklm"), ("num_layers", None)])
def test_wrong_shape_manifest_names_the_field_on_the_page(broken_runs, field, value):
    manifest = json.loads((broken_runs / "manifest.json").read_text())
    section = {"k": manifest, "relations": manifest["corpus"], "num_layers": manifest["neurons"]}[field]
    if value is None:
        del section[field]
    else:
        section[field] = value
    (broken_runs / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=field):
        read_manifest(broken_runs)
    at = run_page("overview")
    assert not at.exception and any(field in e.replace("\\", "") for e in texts(at.error))  # shown markdown-escaped
