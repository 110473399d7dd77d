"""Peak memory of this process over a stretch of work: resident RAM and, on CUDA, GPU memory.

On Linux the resident peak (VmHWM) can be reset by writing 5 to
/proc/self/clear_refs, so each stage gets its own peak; elsewhere the peak is
the process's since start (ru_maxrss).
"""
from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

MIB = 1 << 20


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def read_peak() -> dict[str, float]:
    """{"peak_rss_mib": ..., and "peak_gpu_mib" summed over this process's GPUs when CUDA is in use}."""
    peak = {"peak_rss_mib": round(_peak_rss_bytes() / MIB, 1)}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["peak_gpu_mib"] = round(sum(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())) / MIB, 1)
    return peak
