"""Precompute killed at random points, 20 times in a row, resumes to exactly the uninterrupted output."""
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.facts import FactCorpus, load_corpus, save_corpus

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")


def digests(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.rglob("*.parquet"))}


def test_twenty_kills_then_identical_output(tmp_path):
    demo = load_corpus(DEMO_CORPUS_DIR)
    corpus = FactCorpus({r: demo.relations[r] for r in ("person_father", "star_constellation")}, ["en"], "", "kill test")
    save_corpus(corpus, tmp_path / "corpus")

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "precompute", "run", "--model", str(DEMO_MODEL_DIR), "--facts",
                str(tmp_path / "corpus"), "--out", str(out), "--k", "20", "--k-sweep", "5,20", "--random-seeds", "2",
                "--effect-templates", "1", "--batch-size", "32", "--threads", "1", "--critical-neurons", "200",
                "--null-seeds", "2", "--random-exclude-critical"]

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reference = tmp_path / "reference"
    started = time.time()
    subprocess.run(command(reference), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    full = time.time() - started
    expected = digests(reference)

    out, rng, kills, attempts = tmp_path / "killed", random.Random(0), 0, 0
    while kills < 20:
        attempts += 1
        assert attempts < 200, "the run kept finishing before it could be killed"
        proc = subprocess.Popen(command(out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, max(1.0, full)))
        if proc.poll() is not None:  # it finished before the kill: start again from scratch
            assert proc.returncode == 0
            shutil.rmtree(out)
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        for path in out.rglob("*.parquet"):  # whatever a reader can see is a whole file
            assert path.stat().st_size > 0
            pq.read_metadata(path)
    done = subprocess.run(command(out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert digests(out) == expected
