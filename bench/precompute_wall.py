"""Whole demo precompute, wall time, into a scratch folder (the committed run is not touched), and how close the
effects stage runs to the machine's arithmetic limit.

    python -m bench.precompute_wall [--run data/runs/demo] [--threads 2] [--processes 1,2]
                                    [-- extra precompute run options]

Runs exactly the command that built the run (every option read from its manifest; options after `--` are
appended, and argparse lets a later option win, which is how the smoke test makes a toy run) once per entry of
`--processes`: one process with all `--threads`, or several started by `accelerate launch` (gloo, CPU) sharing
them, one after the other in this one run. It prints each one's wall time per stage and in all, the ratio of
each to the first, whether every Parquet file they wrote is byte-identical, and (with no options after `--`)
whether the first one's files are the committed run's, byte for byte; then, in this process: the
floating-point work of the effects stage (torch's FlopCounterMode over the plain passes the stage records and
one condition's evaluation of the run's own prompts per resume point, times the conditions resuming there)
divided by each one's effects time, beside a float32 torch matmul's rate
measured here (median of 5), as a ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.parquet_io import parquet_digests
from precompute.processes import cpu_launch_environment, launch_command

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 300.0  # the performance issue's whole-precompute target on 2 cores
NO_FLAG = {"critical": "--no-critical"}  # boolean options that are on by default


def run_arguments(options: dict) -> list[str]:
    """`precompute run` arguments that rebuild a run from its manifest's options."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                args.append(flag)
            elif key in NO_FLAG:
                args.append(NO_FLAG[key])
            continue
        args += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return args


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """A float32 square matmul's rate on this machine, median of `repeats` after one warm-up."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times) / 1e9


def effects_flops(run: Path) -> tuple[float, int]:
    """(floating-point operations of the effects stage, conditions), counted by FlopCounterMode as the stage
    computes them: the plain passes it records once, then one condition's evaluation of every effect prompt per
    resume point (core.resume; the neurons zeroed change no shape), times the conditions resuming there."""
    from collections import Counter

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from core.prompt_outcome import tokenize_for_eval
    from core.resume import resume_point
    from precompute.options import RunOptions
    from precompute.context import load_model, prepare_run, to_prompts
    from precompute.processes import ProcessGroup
    from precompute.stages.answers import evaluate, plain_passes
    from precompute.stages.effects import effect_prompts, neuron_sets, run_conditions

    manifest = json.loads((run / "manifest.json").read_text())
    options = {k: v for k, v in manifest["options"].items() if k in RunOptions.__dataclass_fields__}
    options["relations"] = manifest["corpus"]["relations"]  # not an option of the fingerprint, but of this run
    ctx = prepare_run(RunOptions(**options, out=str(run)), ProcessGroup(), log=lambda *_: None)
    load_model(ctx)
    prompts = to_prompts(effect_prompts(ctx.prompts, ctx.options.effect_templates))
    tokens = tokenize_for_eval(ctx.lm.tokenizer, prompts)
    sets = {c: [ctx.space.neuron(int(i)) for i in ids] for c, ids in neuron_sets(ctx, run_conditions(ctx))}
    points = {c: resume_point(neurons, ctx.space) for c, neurons in sets.items()}
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        plain = plain_passes(ctx, tokens, points.values())
    total = float(counter.get_total_flops())
    for point, conditions in Counter(points.values()).items():
        example = next(c for c, p in points.items() if p == point)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad(), ctx.hooks.ablate(sets[example]):
            evaluate(ctx, prompts, tokens, plain, point)
        total += float(counter.get_total_flops()) * conditions
    return total, len(sets)


def timed_run(arguments: list[str], out: Path, processes: int, threads: int) -> tuple[float, dict]:
    """(wall seconds, the manifest's seconds per stage) of one precompute run into `out`."""
    env = cpu_launch_environment()
    cmd = [*launch_command(processes), "run", *arguments, "--out", str(out), "--threads", str(threads)]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"precompute ({processes} processes) failed:\n{done.stderr[-3000:]}")
    return wall, json.loads((out / "manifest.json").read_text())["timings"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=ROOT / "data" / "runs" / "demo")
    parser.add_argument("--threads", type=int, default=2, help="cores in all, shared by the processes")
    parser.add_argument("--processes", default="1,2", help="process counts to run, one after the other (default 1,2)")
    parser.add_argument("extra", nargs="*", help="precompute run options after --, appended to the run's own")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    if any(n < 1 or args.threads % n for n in counts):
        sys.exit(f"--processes: each count must divide --threads {args.threads}")
    arguments = [*run_arguments(json.loads((args.run / "manifest.json").read_text())["options"]), *args.extra]
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in counts:
            out = Path(scratch) / f"run-{n}"
            wall, timings = timed_run(arguments, out, n, args.threads // n)
            results.append((n, wall, timings, parquet_digests(out)))
            print(f"{n} process(es) x {args.threads // n} thread(s), stage seconds: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
            print(f"whole precompute, {n} process(es) x {args.threads // n} thread(s): {wall:.1f} s wall "
                  f"({wall / 60:.2f} min, {wall / results[0][1]:.2f}x the first) "
                  f"(target {TARGET_S:.0f} s: {'met' if wall <= TARGET_S else 'not met'})")
        if len(results) > 1:
            same = all(r[3] == results[0][3] for r in results)
            print(f"Parquet files byte-identical across the process counts: {'yes' if same else 'NO'} "
                  f"({len(results[0][3])} files)")
        if not args.extra:  # the run's own command: its files should be the committed ones, byte for byte
            committed = parquet_digests(args.run)
            differ = sorted(path for path, digest in results[0][3].items() if committed.get(path) != digest)
            print(f"Parquet files byte-identical to {args.run}: {'yes' if not differ else 'NO'} "
                  f"({len(results[0][3]) - len(differ)} of {len(results[0][3])} files"
                  + (f"; differing: {', '.join(differ[:5])}" if differ else "") + ")")
        flops, conditions = effects_flops(Path(scratch) / f"run-{counts[0]}")
    peak = matmul_gflops(args.threads)
    for n, _, timings, _ in results:
        achieved = flops / timings["effects"] / 1e9
        print(f"effects, {n} process(es): {conditions} conditions x {flops / conditions / 1e9:.2f} GFLOP (mean) = "
              f"{flops / 1e12:.2f} TFLOP in {timings['effects']:.3f} s = {achieved:.1f} GFLOP/s; float32 matmul "
              f"peak here {peak:.1f} GFLOP/s; ratio {achieved / peak:.2f}")


if __name__ == "__main__":
    main()
