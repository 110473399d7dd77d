"""`precompute run`: the paper's pipeline as resumable stages writing Parquet under one run folder.

Stages (method.md, precompute/stages): baseline -> identification sets -> capture -> scoring -> activation
distributions -> overlap null -> critical neurons -> effects.
Every output file is written atomically (core/run_layout names them); a stage's unit of work whose file
exists is skipped, so a killed run resumes where it stopped and ends with the same bytes as an
uninterrupted one.

Started by `accelerate launch` or `torchrun`, the model's passes (baseline, capture, effects) are split by
batch over the processes (precompute.processes); the main process decides the work, gathers the results and
writes them once.
"""
from __future__ import annotations

import time

from core.manifest import MANIFEST, Manifest, ManifestError, read_manifest, write_manifest
from core.parquet_io import remove_dead_temporaries
from core.peak_memory import read_peak, reset_peak
from precompute.context import RunContext, RunInputError, RunMismatchError, load_model, prepare_run, run_manifest
from precompute.options import RunOptions
from precompute.stages import STAGES
from precompute.processes import ProcessGroup

__all__ = ["RunInputError", "RunMismatchError", "execute", "run_precompute"]


def run_precompute(options: RunOptions, log=print, workers: ProcessGroup | None = None) -> Manifest:
    """Check the options, load the model, run (or resume) every stage; the complete manifest."""
    ctx = prepare_run(options, workers or ProcessGroup(), log)
    load_model(ctx)
    return execute(ctx)


def execute(ctx: RunContext) -> Manifest:
    """The stages in order on a context whose model is loaded; timings and peak memory into the manifest."""
    workers = ctx.workers
    workers.check_agree(ctx.inputs(), ("corpus", "model", "prompt count"), lambda rank, what: RunInputError(
        f"process {rank} reads a different {what} than process 0: give every machine the same --facts and "
        "--model files"))
    workers.on_main(lambda: _start(ctx))
    ctx.log(f"model {ctx.options.model}: {ctx.space.describe()}; k={ctx.k:,}, sweep {ctx.k_sweep}"
            + (f"; {workers.world} processes" if workers.world > 1 else ""))
    for name, stage in STAGES:
        started = time.time()
        reset_peak()
        did = stage(ctx)
        peaks = workers.gather(read_peak())
        if ctx.is_main and did:
            ctx.timings[name] = round(ctx.timings.get(name, 0.0) + time.time() - started, 2)
            # The largest process's peak: what one machine (or one GPU) must hold.
            ctx.resources[name] = {key: max(p.get(key, 0.0) for p in peaks) for key in peaks[0]}
            ctx.log(f"{name}: {ctx.timings[name]:.1f} s, peak " + ", ".join(
                f"{key.removeprefix('peak_').replace('_mib', '')} {value:,.0f} MiB"
                for key, value in ctx.resources[name].items()))
        if ctx.is_main:
            write_manifest(run_manifest(ctx, "running"), ctx.out)
    manifest = run_manifest(ctx, "complete")
    if ctx.is_main:
        write_manifest(manifest, ctx.out)
    workers.barrier()
    return manifest


def _start(ctx: RunContext) -> None:
    check_resumable(ctx)
    ctx.out.mkdir(parents=True, exist_ok=True)
    remove_dead_temporaries(ctx.out)  # half-written files of a killed run (never read: not *.parquet)
    write_manifest(run_manifest(ctx, "running"), ctx.out)


def check_resumable(ctx: RunContext) -> None:
    """A folder holding a run may be resumed only with the same model, corpus and options; its timings and
    peak memory carry over."""
    if not (ctx.out / MANIFEST).exists():
        return
    try:
        old = read_manifest(ctx.out)
    except ManifestError as exc:
        raise RunMismatchError(f"{ctx.out} holds a run that cannot be resumed ({exc}); use a new --out") from exc
    new = run_manifest(ctx, "running")
    for key, a, b in [("model", old.model["fingerprint"], new.model["fingerprint"]),
                      ("corpus", old.corpus["fingerprint"], new.corpus["fingerprint"]),
                      ("options", old.options, new.options)]:
        if a != b:
            raise RunMismatchError(
                f"{ctx.out} holds a run with a different {key}; resume only with the same model, "
                "corpus and options, or choose a new --out")
    ctx.timings.update(old.timings)
    ctx.resources = {**old.resources, "processes": ctx.workers.world}
