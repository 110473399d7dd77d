"""Imports the pages need, paid by the server rather than by its first visitor.

`streamlit run server.py` (the README's command) imports every module here before it listens (`warm`, from
server.py): the first page then draws as soon as a trivial app would, and the lab's model loads without first
importing torch (bench/browser_speed.py prints the server's longer start beside the pages' first renders).
In a thread beside a page the same imports held the interpreter and drew that page up to 1.5x slower, so
`streamlit run app.py` warms only after its first page has drawn (`warm_once_in_background`)."""
from __future__ import annotations

import importlib
import threading

MODULES = ("pandas", "pyarrow", "duckdb", "altair", "scipy.stats", "core.store", "core.metrics", "core.overlap",
           "core.statistics")
LAB_MODULES = ("torch", "transformers", "core.serving", "core.hooks", "core.lab")


def warm(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import each module; the names that failed (a page then imports it itself and reports any error)."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # never fatal here: the page's own import shows the error where it matters
            failed.append(name)
    return failed


_started = threading.Event()


def warm_before_serving() -> list[str]:
    """Every page's imports, the lab's included, in this thread (server.py, before it listens); the per-page
    background warm-up then has nothing left to do and does not start."""
    _started.set()
    return warm(MODULES + LAB_MODULES)


def warm_once_in_background() -> bool:
    """Start the warm-up thread unless this process already did; True when this call started it."""
    if _started.is_set():
        return False
    _started.set()
    threading.Thread(target=warm, name="warm-imports", daemon=True).start()
    return True
