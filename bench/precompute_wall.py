"""Whole demo precompute, wall time, into a scratch folder (the committed run is not touched).

    python -m bench.precompute_wall [--threads 2] [-- extra precompute run options]

Runs exactly the command that built data/runs/demo (read from its manifest) and
prints the wall time per stage and in all.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=ROOT / "data" / "runs" / "demo")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    manifest = json.loads((args.run / "manifest.json").read_text())
    o = manifest["options"]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "run"
        cmd = [sys.executable, "-m", "precompute", "run", "--model", o["model"], "--facts", o["facts"], "--out", str(out),
               "--definition", o["definition"], "--k", o["k"], "--k-sweep", ",".join(o["k_sweep"]),
               "--pooling", o["pooling"], "--seed", str(o["seed"]), "--random-seeds", str(o["random_seeds"]),
               "--negatives-ratio", str(o["negatives_ratio"]), "--threads", str(args.threads)]
        if o.get("effect_templates") is not None:
            cmd += ["--effect-templates", str(o["effect_templates"])]
        if o.get("languages"):
            cmd += ["--languages", ",".join(o["languages"])]
        started = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        timings = json.loads((out / "manifest.json").read_text())["timings"]
    print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    print(f"whole demo precompute: {wall:.1f} s wall ({wall / 60:.2f} min) on {args.threads} threads (target < 10 min)")


if __name__ == "__main__":
    main()
