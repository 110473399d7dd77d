"""The explorer on a run with the exact shape of a Llama-2-7B run (synthetic numbers, real row counts).

    python -m bench.synthetic_7b [--out data/runs/synthetic-llama-2-7b] [--browser] [--shape small]

Writes the run with `python -m precompute synthetic-run` when it is not there yet
(835,584 neurons x 12 relations x 6 languages: 60 million score rows), then
prints its Parquet size, the store's first build and later opens, and each
view's queries, cold (first call after opening) and warm (median of 5), against
the 0.5 s target. With --browser it also times each page in Debian's chromium
on a real server, from navigation to the drawn chart, with the store already
built.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from core.peak_memory import read_peak
from core.store import STORE_PREFIX, RunStore

TARGET_S = 0.5


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def views(store: RunStore) -> dict[str, callable]:
    """What each page asks the store for on its default view."""
    m = store.manifest
    modules = list(m.neurons["module_order"])
    layers = (0, m.neurons["num_layers"] - 1)
    neuron = m.neurons["total"] // 2
    return {
        "overlap heatmap (relations, en)": lambda: store.overlap_counts(m.k, ["en"], layers, modules),
        "overlap heatmap (12 x 6 sets)": lambda: store.overlap_counts(m.k, store.languages, layers, modules),
        "layer distribution": lambda: store.layer_distribution(m.k, "en"),
        "neuron page (profile + top prompts)": lambda: (store.neuron_profile(neuron), store.neuron_top_prompts(neuron, "en")),
        "top neurons table": lambda: store.top_neurons(store.relations[0], "en", m.k),
        "effects (ablation summary)": lambda: store.ablation_summary(),
    }


def browser_pages(runs_dir: Path, run: str) -> None:
    from playwright.sync_api import sync_playwright

    from bench.browser_server import CHROMIUM_ARGS, seconds_to_chart, streamlit_server

    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p, streamlit_server({"RELATION_NEURONS_RUNS_DIR": str(runs_dir)}) as url:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for repeat in ("first", "second"):
            times = {name: seconds_to_chart(browser, f"{url}/{name}?run={run}", timeout_ms=300_000)
                     for name in ("overview", "overlap", "layers", "neuron", "effects")}
            print(f"browser, {repeat} visit, navigation to drawn chart (s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "data/runs/synthetic-llama-2-7b")
    parser.add_argument("--browser", action="store_true")
    parser.add_argument("--shape", default="llama-2-7b", help="synthetic-run's shape (small: the smoke test's)")
    args = parser.parse_args()
    if not (args.out / "manifest.json").exists():
        seconds, _ = timed(lambda: subprocess.run(
            [sys.executable, "-m", "precompute", "synthetic-run", "--shape", args.shape, "--out", str(args.out)],
            cwd=ROOT, check=True))
        print(f"generated and indexed in {seconds:.0f} s")
    parquet = sum(p.stat().st_size for p in args.out.rglob("*.parquet"))
    scores = sum(p.stat().st_size for p in (args.out / "scores").rglob("*.parquet"))
    for old in args.out.glob(f"{STORE_PREFIX}*.duckdb"):
        old.unlink()
    build, store = timed(lambda: RunStore(args.out))
    store.close()
    store_file = next(args.out.glob(f"{STORE_PREFIX}*.duckdb"))
    opened, store = timed(lambda: RunStore(args.out))
    m = store.manifest
    print(f"run {args.out.name}: synthetic={m.synthetic}, {m.neurons['total']:,} neurons x "
          f"{len(store.relations)} relations x {len(store.languages)} languages, k = {m.k:,}")
    print(f"Parquet {parquet / 2**30:.2f} GiB (scores {scores / 2**30:.2f} GiB); "
          f"store file {store_file.stat().st_size / 2**30:.2f} GiB")
    print(f"store: first build {build:.1f} s, later opens {opened:.2f} s")
    print(f"{'view':40s} {'cold s':>7s} {'warm s':>7s}  target {TARGET_S} s")
    for name, fn in views(store).items():
        cold, _ = timed(fn)
        warm = statistics.median(timed(fn)[0] for _ in range(5))
        verdict = "met" if max(cold, warm) < TARGET_S else ("warm only" if warm < TARGET_S else "NOT MET")
        print(f"{name:40s} {cold:7.3f} {warm:7.3f}  {verdict}")
    print(f"peak resident memory of this process: {read_peak()['peak_rss_mib']:,.0f} MiB")
    store.close()
    if args.browser:
        browser_pages(args.out.parent, args.out.name)


if __name__ == "__main__":
    main()
