"""The scale benchmarks run end to end at toy sizes (their figures come from running them at full size)."""
import re
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
                     "--prompts", "64", "--score-prompts", "200", "--batch", "32", "--ablate", "50", "--new-tokens", "4",
                     "--users", "2", "--requests-per-user", "1", "--lab-repeats", "1", "--check", "2")
    assert "RANDOM WEIGHTS" in out and "capture:" in out and "scoring:" in out
    assert "one batch, the same prompts, median of 5" in out
    assert out.count("generation, batch") == 2
    assert out.count("lab, ") == 2 and "lab check:" in out  # no --only: every section, the lab too


def test_gpu_benchmark_lab_path_alone():
    """--only lab: one request's latency, batched vs one-by-one throughput per user count, and the check that the
    batched answers equal the one-by-one answers."""
    out = run_script("-m", "bench.gpu_7b", "--shape", "small", "--device", "cpu", "--dtype", "float32",
                     "--only", "lab", "--users", "1,4", "--ablate", "50", "--new-tokens", "4", "--prompt-tokens", "12")
    assert "RANDOM WEIGHTS" in out
    assert "capture:" not in out and "scoring:" not in out and "generation, batch" not in out
    assert re.search(r"^lab, one request \(12-token prompt, 4 new tokens, 50 neurons off\): \d+ ms alone .*"
                     r"\d+ ms through the scheduler", out, re.M), out
    for users in (1, 4):
        line = re.search(rf"^lab, {users} users? x (\d+) requests .*: batched ([\d.,]+) requests/s "
                         r"\(mean batch ([\d.]+)\), one by one ([\d.,]+) requests/s: ([\d.]+)x", out, re.M)
        assert line, out
        batched, one_by_one, ratio = (float(line[i].replace(",", "")) for i in (2, 4, 5))
        assert batched > 0 and one_by_one > 0
        # both rates are printed to 1 decimal and the ratio to 2: the check allows exactly that rounding
        assert (batched - 0.05) / (one_by_one + 0.05) - 0.005 <= ratio <= (batched + 0.05) / (one_by_one - 0.05) + 0.005
        assert 1 <= float(line[3]) <= users
    check = re.search(r"^lab check: (\d+) requests \((\d+) with neurons off, (\d+) plain\), batched vs one by "
                      r"one: continuations and top-10 next tokens identical", out, re.M)
    assert check and int(check[2]) >= 1 and int(check[3]) >= 1, out


def test_memory_benchmark_runs_at_a_small_size(tmp_path):
    out = run_script("-m", "bench.memory_7b", "--prompts", "1600", "--neurons", "3000", "--score-neurons", "2000",
                     "--memory-mib", "8", "--work", str(tmp_path))  # 327 columns per chunk: 6 whole chunks, a part
    assert "peak resident" in out and "extrapolated to all 3,000 neurons" in out
    line = re.search(r"first chunk ([\d.]+) s .*then ([\d.]+) s per whole chunk \(median of (\d+);", out)
    assert line and int(line[3]) == 5, out  # the 5 whole chunks after the first; the partial last one left out
    assert not list(tmp_path.glob("*.npy"))  # the capture file is removed afterwards


def test_browser_benchmark_times_a_lab_toggle():
    """One off/on cycle on the lab only (the full run starts 7 servers); skipped without a browser."""
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    out = run_script("-m", "bench.browser_speed", "--pages", "lab", "--cycles", "1", "--no-reference", "--repeats", "1")
    assert "first switch-off (cold)" in out and "warm switch-on" in out and "target < 1 s" in out
    controls = float(re.search(r"^lab: controls drawn\s+([\d.]+)", out, re.M).group(1))
    chart = float(re.search(r"^lab: first chart \(model\)\s+([\d.]+)", out, re.M).group(1))
    assert 0 < controls <= chart, out  # the controls come first, the model's chart after


def test_capture_overhead_benchmark_compares_with_a_model_without_hooks():
    out = run_script("-m", "bench.capture_overhead", "--prompts", "64", "--batch-size", "32", "--repeats", "1",
                     "--threads", "1")
    assert "plain forward (a model with no hooks)" in out
    ratio = float(re.search(r"overhead ratio:\s+([\d.]+)x", out).group(1))
    assert 0.2 < ratio < 20, out  # a real ratio of two timings, not a placeholder


TOY_RUN = ["--languages", "en", "--relations", "company_ceo,company_hq", "--random-seeds", "1", "--null-seeds", "1",
           "--critical-neurons", "40", "--critical-prompts", "1", "--effect-templates", "1"]


def test_precompute_wall_benchmark_rebuilds_a_toy_run_and_rates_the_effects_stage():
    """The demo run's own options, made toy-sized by later options, run by one process and by two; the same
    Parquet from both; the effects stage's FLOP rate beside a matmul's, as a ratio of the printed figures."""
    out = run_script("-m", "bench.precompute_wall", "--threads", "2", "--processes", "1,2", "--", *TOY_RUN,
                     "--k", "10", "--k-sweep", "10")
    for n, threads in ((1, 2), (2, 1)):
        assert re.search(rf"^{n} process\(es\) x {threads} thread\(s\), stage seconds: baseline [\d.]+, .*effects [\d.]+",
                         out, re.M), out
    walls = re.findall(r"^whole precompute, (\d) process\(es\) x \d thread\(s\): ([\d.]+) s wall \([\d.]+ min, "
                       r"([\d.]+)x the first\) \(target 300 s: (?:met|not met)\)", out, re.M)
    assert [w[0] for w in walls] == ["1", "2"], out
    (_, first, one), (_, second, ratio) = walls
    assert float(one) == 1.0 and abs(float(ratio) - float(second) / float(first)) <= 0.01, out
    assert re.search(r"^Parquet files byte-identical across the process counts: yes \((\d+) files\)", out, re.M), out
    lines = re.findall(r"^effects, (\d) process\(es\): (\d+) conditions x ([\d.]+) GFLOP \(mean\) = ([\d.]+) TFLOP in ([\d.]+) s = "
                       r"([\d.]+) GFLOP/s; float32 matmul peak here ([\d.]+) GFLOP/s; ratio ([\d.]+)", out, re.M)
    assert [line[0] for line in lines] == ["1", "2"], out
    for _, *figures in lines:
        conditions, each, total, seconds, achieved, peak, ratio = (float(v) for v in figures)
        assert conditions == 2 + 1 + 1  # two relations' top-10, one random set, one non-critical random set
        assert abs(total * 1e3 - conditions * each) <= 0.01 * conditions * each + 5  # every condition's work counted
        # the rate from the printed figures, widened by each figure's rounding (GFLOP to 2 decimals, seconds to 3,
        # the rate to 1): a short toy stage makes the rounding of its seconds matter
        lowest = conditions * (each - 0.005) / (seconds + 0.0005) - 0.05
        highest = conditions * (each + 0.005) / max(seconds - 0.0005, 1e-9) + 0.05
        assert lowest <= achieved <= highest, (lowest, achieved, highest)
        assert achieved > 0 and peak > 0 and abs(ratio - achieved / peak) <= 0.01


def test_precompute_wall_rebuilds_the_command_from_the_manifest():
    from bench.precompute_wall import run_arguments

    args = run_arguments({"model": "m", "k_sweep": ["10", "1%"], "critical": False, "answer_floor": True,
                          "random_exclude_critical": False, "languages": None, "null_seeds": 0})
    assert args == ["--model", "m", "--k-sweep", "10,1%", "--no-critical", "--answer-floor", "--null-seeds", "0"]


def test_ablation_probe_runs_a_toy_probe(tmp_path):
    out = run_script("-m", "bench.ablation_probe", "--fractions", "10", "--threads", "1", "--out", str(tmp_path / "p"),
                     "--", "--relations", "company_ceo,company_hq", "--no-critical", "--null-seeds", "0",
                     "--effect-templates", "1")
    assert re.search(r"^k=10 \([\d.]+%\): own [-\d.]+ \(per relation \[[-\d, ]+\]\), held-out templates", out, re.M), out
    assert re.search(r"\(\d+x\)$", out, re.M), out


def test_synthetic_run_benchmark_at_the_small_shape(tmp_path):
    out = run_script("-m", "bench.synthetic_7b", "--shape", "small", "--out", str(tmp_path / "synthetic"))
    assert "synthetic=True" in out and re.search(r"store: first build [\d.]+ s, later opens [\d.]+ s", out), out
    views = re.findall(r"^(\S.*?)\s+([\d.]+)\s+([\d.]+)\s+(met|warm only|NOT MET)$", out, re.M)
    assert len(views) >= 5, out


def test_load_test_serves_one_session_without_errors():
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    out = run_script("-m", "bench.load_test", "--sessions", "1", "--seconds", "5")
    served = re.search(r"^requests served: (\d+) .*; errors: (\d+)", out, re.M)
    assert served and int(served[1]) >= 1 and int(served[2]) == 0, out
