"""Data-parallel precompute: `accelerate launch` with 2 CPU processes (gloo) writes what one process writes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.facts import FactCorpus, load_corpus, save_corpus
from core.parquet_io import parquet_digests
from precompute.processes import ProcessGroup, cpu_launch_environment, launch_command

ROOT = Path(__file__).resolve().parent.parent
RELATIONS = ["person_father", "person_mother", "star_constellation"]
# batch 48 over 3 relations: an odd number of batches, so the processes get unequal shares and a last round
# with one batch.
RUN_ARGS = ["--model", str(DEMO_MODEL_DIR), "--k", "30", "--k-sweep", "10,30", "--random-seeds", "2",
            "--effect-templates", "1", "--batch-size", "48", "--threads", "1", "--languages", "en",
            "--critical-neurons", "200", "--null-seeds", "2"]


def run(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=cpu_launch_environment(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    demo = load_corpus(DEMO_CORPUS_DIR)
    folder = tmp_path_factory.mktemp("corpus")
    save_corpus(FactCorpus({r: demo.relations[r] for r in RELATIONS}, ["en"], "", "test slice"), folder)
    return folder


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("runs")
    single, sharded = root / "single", root / "sharded"
    done = run([sys.executable, "-m", "precompute", "run", *RUN_ARGS, "--facts", str(corpus), "--out", str(single)])
    assert done.returncode == 0, done.stderr[-3000:]
    done = run([*launch_command(2), "run", *RUN_ARGS, "--facts", str(corpus), "--out", str(sharded)])
    assert done.returncode == 0, done.stderr[-3000:]
    return single, sharded, done


def test_two_processes_write_exactly_what_one_process_writes(runs):
    single, sharded, _ = runs
    one, two = parquet_digests(single), parquet_digests(sharded)
    assert len(one) > 20 and set(one) == set(two)
    differing = [name for name in one if one[name] != two[name]]
    assert not differing, f"sharded run differs in {differing[:5]}"


def test_sharded_manifest_records_processes_and_peak_memory(runs):
    single, sharded, done = runs
    a, b = (json.loads((run_dir / "manifest.json").read_text()) for run_dir in (single, sharded))
    assert a["resources"]["processes"] == 1 and b["resources"]["processes"] == 2
    for stage in ("baseline", "capture", "scoring", "effects"):
        assert b["resources"][stage]["peak_rss_mib"] > 50
    for key in ("model", "neurons", "corpus", "options", "k", "k_sweep", "status"):
        assert a[key] == b[key], key
    assert "2 processes" in done.stdout + done.stderr
    # Only the main process prints the summary.
    assert (done.stdout + done.stderr).count("Run ") == 1


def test_every_process_stops_with_the_main_process_error(runs, corpus):
    _, sharded, _ = runs
    args = [a if a != "30" else "20" for a in RUN_ARGS]  # another k: this run folder cannot be resumed with it
    done = run([*launch_command(2), "run", *args, "--facts", str(corpus), "--out", str(sharded)], timeout=120)
    assert done.returncode != 0
    assert "different options" in done.stderr


def test_auto_device_map_needs_one_process_per_machine():
    assert ProcessGroup(rank=0, world=2, local_world=1).model_device("auto") == "auto"
    assert ProcessGroup(rank=1, world=4, local_world=2, device="cuda:1").model_device("cuda") == "cuda:1"
    assert ProcessGroup().model_device("cuda:3") == "cuda:3"
    with pytest.raises(ValueError, match="one process per machine"):
        ProcessGroup(rank=0, world=2, local_world=2).model_device("auto")


def test_one_process_needs_no_process_group():
    w = ProcessGroup.from_environment() if "WORLD_SIZE" not in os.environ else ProcessGroup()
    assert (w.rank, w.world, w.is_main) == (0, 1, True)
    assert w.mine([1, 2, 3]) == [1, 2, 3] and w.gather("x") == ["x"] and w.broadcast(5) == 5


def test_work_on_the_run_folder_is_shared_only_by_processes_of_one_machine():
    items = list(range(7))
    assert ProcessGroup(rank=1, world=2, local_world=2).disk_share(items) == [1, 3, 5]
    assert ProcessGroup(rank=0, world=2, local_world=1).disk_share(items) == items  # main of two machines: all
    assert ProcessGroup(rank=1, world=2, local_world=1).disk_share(items) == []


class SecondProcessFails(ProcessGroup):
    """The main process of two, whose partner's share raised (what gather and broadcast would hand it)."""

    def gather(self, value):
        return [value, RuntimeError("process 1: capture unreadable")]

    def broadcast(self, value):
        return value


def test_an_error_in_any_share_is_raised_on_every_process():
    done = []
    with pytest.raises(RuntimeError, match="process 1: capture unreadable") as raised:
        SecondProcessFails(rank=0, world=2, local_world=2).each_share([0, 1, 2], done.append)
    assert done == [[0, 2]] and raised.value.raised_on_main_process


class TwoProcessesDisagreeing(ProcessGroup):
    """Process 1 reports other inputs than the main process (what a machine with another corpus would do)."""

    def gather(self, value):
        return [value, ("another corpus", value[1], value[2])]

    def broadcast(self, value):
        return value


def test_processes_with_different_inputs_are_refused(corpus, tmp_path):
    from precompute.options import RunOptions
    from precompute.run import RunInputError, run_precompute

    options = RunOptions(model=str(DEMO_MODEL_DIR), facts=str(corpus), out=str(tmp_path / "run"), k="30",
                         k_sweep=["30"], languages=["en"], threads=1)
    with pytest.raises(RunInputError, match="process 1 reads a different corpus"):
        run_precompute(options, log=lambda *_: None, workers=TwoProcessesDisagreeing(rank=0, world=2))
    assert not (tmp_path / "run").exists()  # refused before anything was written
