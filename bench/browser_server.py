"""A real `streamlit run server.py` (the README's command) on 127.0.0.1 for browser tests and benchmarks."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(extra_env: dict | None = None, timeout: float = 90, args: list[str] | None = None,
                     on_healthy: Callable[[float], None] | None = None):
    """`streamlit run server.py [-- args]`: app.py behind the redirect of nested unknown paths."""
    with streamlit_script_server(ROOT / "server.py", extra_env, timeout, args, on_healthy) as url:
        yield url


@contextlib.contextmanager
def streamlit_script_server(script: Path, extra_env: dict | None = None, timeout: float = 90,
                            args: list[str] | None = None, on_healthy: Callable[[float], None] | None = None):
    """`streamlit run script` (any script, run from the repository root); yields its address once healthy, after
    passing `on_healthy` the seconds from the process's start to its first healthy answer."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"] + (["--", *args] if args else [])
    env = {**os.environ, **(extra_env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {proc.stdout.read()[-2000:]}")
        else:
            raise RuntimeError("streamlit did not become healthy in time")
        if on_healthy is not None:
            on_healthy(time.perf_counter() - started)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit finished the script run (no running indicator) and something was drawn."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stStatusWidget\"]') === null"
        " && document.querySelectorAll('[data-testid=\"stMainBlockContainer\"] *').length > 20",
        timeout=timeout_ms)


# The app's script-run state (an attribute Streamlit's own browser tests read) says "notRunning" at once; the
# status widget only shows a run that has lasted a while. Stale elements (data-stale) are those not redrawn yet.
SETTLED_JS = ("() => document.querySelector("
              "'[data-testid=\"stApp\"][data-test-script-state=\"notRunning\"]') !== null"
              " && document.querySelector('[data-testid=\"stStatusWidget\"]') === null"
              " && document.querySelector('[data-stale=\"true\"]') === null")


def wait_until_settled(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run is finished (script state, no running indicator) and no element is stale."""
    page.wait_for_function(SETTLED_JS, timeout=timeout_ms)


def seconds_to_heading(browser, address: str, heading: str, timeout_ms: int = 60_000) -> float:
    """Open `address` in a new page; seconds from navigation until an h1 reading `heading` is drawn."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        t0 = time.perf_counter()
        page.goto(address)
        page.locator("h1", has_text=heading).first.wait_for(timeout=timeout_ms)
        return time.perf_counter() - t0
    finally:
        page.close()


def seconds_to_chart(browser, address: str, timeout_ms: int = 120_000) -> float:
    """Open `address` in a new page; seconds from navigation until a chart is drawn."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        t0 = time.perf_counter()
        page.goto(address)
        page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=timeout_ms)
        return time.perf_counter() - t0
    finally:
        page.close()
