"""The committed demo run: complete, within its size budget, and reproduced byte for byte by precompute."""
import hashlib
import shutil
from pathlib import Path

import pytest

from core.demo import DEMO_RUN_DIR
from core.manifest import read_manifest
from core.store import RunStore
from precompute.options import RunOptions
from precompute.run import PrecomputeRun

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_run_is_complete_and_small():
    manifest = read_manifest(DEMO_RUN_DIR)
    assert manifest.status == "complete"
    size = sum(p.stat().st_size for p in DEMO_RUN_DIR.rglob("*") if p.is_file() and "work" not in p.relative_to(DEMO_RUN_DIR).parts)
    assert size <= 60 * 2**20
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
    ]
    expected = {p: digest(p) for p in redo}
    for p in redo:
        p.unlink()
    options = RunOptions(out=str(copy), **{k: v for k, v in manifest.options.items()})
    options.threads = 2
    PrecomputeRun(options, log=lambda *_: None).run()
    for p, d in expected.items():
        assert digest(p) == d, p
