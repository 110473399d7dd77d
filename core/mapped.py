"""Memory-mapped arrays whose pages do not pile up in the process's resident memory.

Reading or writing a mapped file leaves its pages mapped in the process, so its
resident size grows to the whole file even though the kernel could drop them.
Releasing the mapping's pages after each chunk (after flushing writes) keeps the
resident size at one chunk; the data stays in the file and the page cache.
"""
from __future__ import annotations

import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np


def release_pages(array: np.ndarray) -> None:
    """Flush a writable memmap and drop its pages from this process; a no-op for in-memory arrays."""
    base = array
    while base is not None and not isinstance(base, np.memmap):
        base = base.base if isinstance(base, np.ndarray) else None
    mapping = getattr(base, "_mmap", None)
    if mapping is None or not hasattr(mapping, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return
    if base.mode in ("r+", "w+"):
        mapping.flush()
    mapping.madvise(mmap.MADV_DONTNEED)


class NpyColumns:
    """Column blocks of a 2-D C-order .npy file, read row by row with plain reads (no mapping), so reading
    a block costs resident memory for that block only, not for the file pages around it."""

    def __init__(self, path, columns: int | None = None):
        """`columns`: expose only the first this many columns (a part of a capture, for benchmarks)."""
        self.path = str(path)
        with open(self.path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if len(shape) != 2 or fortran:
            raise ValueError(f"{self.path} is not a 2-D C-order array")
        self.row_width = int(shape[1])
        self.shape = (int(shape[0]), self.row_width if columns is None else min(columns, self.row_width))
        self.dtype = np.dtype(dtype)

    def block(self, lo: int, hi: int) -> np.ndarray:
        rows, cols = self.shape[0], self.row_width
        item = self.dtype.itemsize
        out = np.empty((rows, hi - lo), dtype=self.dtype)
        with open(self.path, "rb", buffering=0) as fh:
            fd = fh.fileno()
            for r in range(rows):
                view = memoryview(out[r]).cast("B")
                got = os.preadv(fd, [view], self.offset + (r * cols + lo) * item)
                if got != view.nbytes:
                    raise OSError(f"{self.path} is shorter than its header says (row {r})")
        return out


def column_block(array, lo: int, hi: int) -> np.ndarray:
    """Columns lo:hi of an in-memory array, a memmap or an NpyColumns file, as a contiguous block."""
    if isinstance(array, NpyColumns):
        return array.block(lo, hi)
    return np.ascontiguousarray(array[:, lo:hi])


def blocks_read_ahead(acts: np.ndarray | NpyColumns, step: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(lo, hi, columns lo:hi as a contiguous block) for consecutive chunks of `step` columns, the next chunk
    read in a thread while the caller works on this one: reading a capture on disk waits for the disk, so the
    wait overlaps the caller's work instead of adding to it."""
    n = acts.shape[1]
    bounds = [(lo, min(lo + step, n)) for lo in range(0, n, step)]
    if not bounds:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as reader:
        pending = reader.submit(column_block, acts, *bounds[0])
        for i, (lo, hi) in enumerate(bounds):
            block = pending.result()
            if i + 1 < len(bounds):
                pending = reader.submit(column_block, acts, *bounds[i + 1])
            yield lo, hi, block
            del block
