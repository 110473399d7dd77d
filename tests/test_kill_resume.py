"""Precompute killed at random points, again and again (KILLS), resumes to exactly the uninterrupted output."""
import dataclasses
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

from core.parquet_io import parquet_digests
from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.facts import FactCorpus, load_corpus, save_corpus

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")


def parquet_count(run: Path) -> int:
    return sum(1 for _ in run.rglob("*.parquet")) if run.exists() else 0


def small_corpus(path: Path) -> None:
    """Two relations, English, 40 facts each (both splits): every stage runs, in seconds."""
    demo = load_corpus(DEMO_CORPUS_DIR)
    relations = {}
    for name in ("person_father", "star_constellation"):
        r = demo.relations[name]
        facts = [f for f in r.facts if f.split == "identification"][:28] + \
                [f for f in r.facts if f.split == "evaluation"][:12]
        relations[name] = dataclasses.replace(r, facts=facts)
    save_corpus(FactCorpus(relations, ["en"], "", "kill test"), path)


KILLS = 8  # each a fresh process (imports, model) and its work: ~12 s in CI; the suite's 15-minute budget sets it


def test_repeated_kills_then_identical_output(tmp_path):
    small_corpus(tmp_path / "corpus")

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "precompute", "run", "--model", str(DEMO_MODEL_DIR), "--facts",
                str(tmp_path / "corpus"), "--out", str(out), "--k", "20", "--k-sweep", "5,20", "--random-seeds", "2",
                "--effect-templates", "1", "--batch-size", "32", "--threads", "1", "--critical-neurons", "200",
                "--null-seeds", "2", "--random-exclude-critical"]

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    reference = tmp_path / "reference"
    subprocess.run(command(reference), cwd=ROOT, env=env, check=True, capture_output=True, timeout=600)
    expected = parquet_digests(reference)

    out, rng, kills, attempts, stages_seen = tmp_path / "killed", random.Random(0), 0, 0, set()
    while kills < KILLS:
        attempts += 1
        assert attempts < 200, "the run kept finishing before it could be killed"
        proc = subprocess.Popen(command(out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill inside real work, wherever the run has got to: after 1 to 3 more tables have been written (a resumed
        # run has less left to do, so a fixed clock would often see it finish), then at a random instant of the
        # next second, which usually falls inside the next table's work or its write.
        target = parquet_count(out) + rng.randint(1, 3)
        while proc.poll() is None and parquet_count(out) < target:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
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
        stages_seen |= {p.relative_to(out).parts[0] for p in out.rglob("*.parquet")}
    done = subprocess.run(command(out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert parquet_digests(out) == expected
    # the kills reached past the first stages (the tables of the later ones existed when some kill came)
    assert {"baseline", "scores"} <= stages_seen, stages_seen
