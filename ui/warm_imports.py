"""Imports the data pages need, done once per server in the background right after the first page has been
drawn (app.py), so that the next page opened does not wait for them: scipy.stats alone takes over a second on
2 cores, and only the overlap and effects pages need it. Not at server start: an import holds the interpreter,
and the first page would draw up to 1.5x slower beside it (measured with bench/browser_speed.py). torch is
left out: only the lab needs it, and it loads there behind a visible spinner."""
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


_started = threading.Event()


def warm_once_in_background() -> bool:
    """Start the warm-up thread unless this process already did; True when this call started it."""
    if _started.is_set():
        return False
    _started.set()
    threading.Thread(target=warm, name="warm-imports", daemon=True).start()
    return True
