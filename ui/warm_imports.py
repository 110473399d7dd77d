"""Imports the data pages need, done once in the background when the server starts (server.py), so that the
first visitor of a fresh server does not wait for them: scipy.stats alone takes over a second on 2 cores, and
only the overlap and effects pages need it. torch is left out: importing it would hold the interpreter for
seconds while the first page draws, and only the lab needs it (it loads behind a visible spinner)."""
from __future__ import annotations

import importlib
import threading

MODULES = ("pandas", "pyarrow", "duckdb", "altair", "scipy.stats", "core.store", "core.metrics", "core.overlap",
           "core.statistics")


def warm(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import each module; the names that failed (a page then imports it itself and reports any error)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # never fatal here: the page's own import shows the error where it matters
            failed.append(name)
    return failed


def warm_in_background() -> threading.Thread:
    thread = threading.Thread(target=warm, name="warm-imports", daemon=True)
    thread.start()
    return thread
