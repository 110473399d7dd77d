"""The scale benchmarks run end to end at toy sizes (their figures come from running them at full size)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_script(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_gpu_benchmark_runs_on_cpu_with_a_small_shape():
    out = run_script("-m", "bench.gpu_7b", "--shape", "small", "--device", "cpu", "--dtype", "float32",
                     "--prompts", "64", "--score-prompts", "200", "--batch", "32", "--ablate", "50", "--new-tokens", "4")
    assert "RANDOM WEIGHTS" in out and "capture:" in out and "scoring:" in out
    assert out.count("generation, batch") == 2


def test_memory_benchmark_runs_at_a_small_size(tmp_path):
    out = run_script("-m", "bench.memory_7b", "--prompts", "1600", "--neurons", "3000", "--score-neurons", "2000",
                     "--work", str(tmp_path))
    assert "peak resident" in out and "extrapolated to all 3,000 neurons" in out
    assert not list(tmp_path.glob("*.npy"))  # the capture file is removed afterwards


def test_browser_benchmark_times_a_lab_toggle():
    """One off/on cycle on the lab only (the full run starts 7 servers); skipped without a browser."""
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    out = run_script("-m", "bench.browser_speed", "--pages", "lab", "--cycles", "1", "--no-reference")
    assert "first switch-off (cold)" in out and "warm switch-on" in out and "target < 1 s" in out
