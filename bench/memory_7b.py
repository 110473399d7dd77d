"""Capture and scoring at Llama-2-7B width stay within a fixed memory, whatever the capture's size.

    python -m bench.memory_7b [--prompts 6000] [--neurons 835584] [--score-neurons 78336]
                              [--memory-mib 1024] [--work /tmp/memory_7b]

Writes a capture file of prompts x neurons float32 the way `precompute run`
does (a memory-mapped .npy, one batch of rows at a time, pages released after
each), then scores columns with core.score_stream for 12 relations (300
positives and 1,200 negatives each, as the paper's identification sets) and
prints each phase's peak resident memory next to the capture's size. Values
are random: this measures memory and time, not neurons. --score-neurons limits
the scored columns (scoring all 835,584 on 2 CPU cores takes several minutes):
the whole is then extrapolated, as the first chunk (whose read is waited for) plus
the median time of the later whole chunks (each read while the one before is
scored) for every other chunk, and printed as such.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np


from core.mapped import NpyColumns, release_pages
from core.peak_memory import read_peak, reset_peak
from core.score_stream import LabelledRows, chunk_columns, score_stream

GIB = 1 << 30


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=6000)
    parser.add_argument("--neurons", type=int, default=835_584)
    parser.add_argument("--score-neurons", type=int, default=78_336,
                        help="columns to score (default: 3 of 32 layers, 7 chunks at the default memory)")
    parser.add_argument("--relations", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--memory-mib", type=int, default=1024)
    parser.add_argument("--work", type=Path, default=Path("/tmp/memory_7b"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / "activations.npy"
    size = args.prompts * args.neurons * 4
    free = shutil.disk_usage(args.work).free
    if free < size * 1.1:
        sys.exit(f"{args.work} has {free / GIB:.1f} GiB free; the capture needs {size / GIB:.1f} GiB")
    rng = np.random.default_rng(0)

    reset_peak()
    t0 = time.perf_counter()
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(args.prompts, args.neurons))
    for lo in range(0, args.prompts, args.batch):
        hi = min(lo + args.batch, args.prompts)
        out[lo:hi] = rng.standard_normal((hi - lo, args.neurons), dtype=np.float32)
        release_pages(out)
    out.flush()
    del out
    write_s, write_peak = time.perf_counter() - t0, read_peak()["peak_rss_mib"]
    print(f"capture {args.prompts:,} prompts x {args.neurons:,} neurons = {size / GIB:.2f} GiB on disk, "
          f"written in batches of {args.batch} in {write_s:.1f} s; peak resident {write_peak:,.0f} MiB "
          f"({write_peak * 2**20 / size:.3f} of the capture)")

    sets = {}
    for r in range(args.relations):
        rows = rng.choice(args.prompts, 1500, replace=False)
        sets[f"relation_{r}"] = LabelledRows(np.sort(rows), np.isin(np.arange(1500), np.arange(300)))
    cols = min(args.score_neurons, args.neurons)
    acts = NpyColumns(path, columns=cols)
    chunk_done: list[float] = []  # when each chunk's last relation was reported
    calls = [0]

    def on_progress(_columns: int) -> None:
        calls[0] += 1
        if calls[0] % args.relations == 0:
            chunk_done.append(time.perf_counter())

    reset_peak()
    t0 = time.perf_counter()
    score_stream(acts, sets, np.arange(args.prompts, dtype=np.int32), memory_budget=args.memory_mib << 20,
                 on_progress=on_progress)
    score_s, score_peak = time.perf_counter() - t0, read_peak()["peak_rss_mib"]
    chunk = chunk_columns(args.prompts, args.memory_mib << 20)
    print(f"scoring {cols:,} neurons x {args.relations} relations (AP, means, median, top prompts), "
          f"{chunk:,} columns per chunk: {score_s:.1f} s, {cols * args.relations / score_s:,.0f} neuron-relations/s; "
          f"peak resident {score_peak:,.0f} MiB ({score_peak * 2**20 / size:.3f} of the capture)")
    if cols < args.neurons:
        # The first chunk's read is waited for; every later chunk is read while the one before it is scored. So
        # the whole is the first chunk as measured plus, per later chunk, the steady time of the chunks measured
        # after it (whole chunks only; with a single chunk the plain rate is all there is).
        seconds = np.diff([t0, *chunk_done])  # each chunk's own time
        first, steady = seconds[0], seconds[1 : cols // chunk] / chunk  # whole chunks after the first
        per_column = statistics.median(steady) if len(steady) else score_s / cols
        whole = first + (args.neurons - min(chunk, cols)) * per_column
        print(f"  first chunk {first:.1f} s (its read waited for), then {per_column * chunk:.1f} s per whole chunk "
              f"(median of {len(steady)}; the next chunk read meanwhile)")
        print(f"  extrapolated to all {args.neurons:,} neurons: {whole / 60:.1f} min "
              f"(the first chunk plus {-(-(args.neurons - chunk) // chunk)} steady chunks; an extrapolation, not a measurement)")
    path.unlink()


if __name__ == "__main__":
    main()
