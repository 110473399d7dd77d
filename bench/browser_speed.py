"""In a real browser on a real server: each page's first render after server start, and the lab's toggle latency.

    python -m bench.browser_speed [--cycles 5] [--repeats 3] [--pages overview,lab] [--no-reference]

First render: for each page a fresh `streamlit run server.py` is started and the time from navigation to a
drawn chart is measured (so every page pays its own first load of the run and, for the lab, the model; the
explorer's server imports the pages' libraries before it listens, so each server's start, from its process to
its first healthy answer, is printed too); the same is done for a trivial Streamlit app (a title and one tiny Altair chart) and each page is also
given as a multiple of it. Every server is started --repeats times, the pages taking turns (the reference,
then each page, then again), and the median is printed: a shared machine's noise falls on all alike. The run's
store is built before the first timing, so no page pays for indexing. A nested path that is no page
(/nonexistent/page) is timed from navigation to the "No such page" heading on one of the servers.

Lab toggle: on the lab's default prompt ("The mother of Koumo Tebousou is", whose answer changes when
person_mother is off), person_mother is switched off (click the multiselect, type, Enter, Escape) and on
again (the chip's x). A toggle is timed in the page, from the input event (keydown of Enter, or pointerdown
on the x) to the first animation frame in which the "Answer with the neurons off" text differs from its
previous value, Streamlit's status widget says the run is finished and no element is stale. The first
switch-off and switch-on after the page's load are reported apart from the warm cycles. Needs Debian's
chromium and the playwright Python package.
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


from bench.browser_server import (CHROMIUM_ARGS, SETTLED_JS, seconds_to_chart, seconds_to_heading,
                                  streamlit_script_server, streamlit_server, wait_for_app, wait_until_settled)

PAGES = ["overview", "overlap", "layers", "neuron", "effects", "lab"]
RELATION = "person_mother"
PROMPT = "The mother of Koumo Tebousou is"
TARGET_S = 1.0
TOGGLE_TIMEOUT_MS = 60_000
REFERENCE_APP = '''import altair as alt
import pandas as pd
import streamlit as st

st.title("Reference")
st.altair_chart(alt.Chart(pd.DataFrame({"x": ["a", "b", "c"], "y": [1, 3, 2]})).mark_bar().encode(x="x", y="y"))
'''
CODES = '[data-testid="stMain"] [data-testid="stCode"]'
# Record the time of the first input event after __t0 was cleared (in the page's performance.now() clock).
LISTEN_JS = """() => {
  const mark = e => { if (window.__t0 === null) window.__t0 = e.timeStamp; };
  window.__t0 = undefined;
  document.addEventListener('keydown', mark, true);
  document.addEventListener('pointerdown', mark, true);
}"""
# True once the ablated answer differs from `prev` and the page has settled; the frame in which the new
# answer was first seen is kept in __ta, the frame in which all of it held in __t1.
DONE_JS = f"""(prev) => {{
  const codes = document.querySelectorAll('{CODES}');
  const changed = codes.length > 1 && codes[1].innerText !== prev;
  if (changed && window.__ta === null) window.__ta = performance.now();
  const done = changed && ({SETTLED_JS})();
  if (done) window.__t1 = performance.now();
  return done;
}}"""


def ablated_answer(page) -> str:
    return page.locator(CODES).nth(1).inner_text()


def timed_toggle(page, action) -> tuple[float, float, str]:
    """Run `action`; seconds from its input event until the new answer is drawn, and until the page settled."""
    prev = ablated_answer(page)
    page.evaluate("() => { window.__t0 = null; window.__ta = null; window.__t1 = null; }")
    wall0 = time.perf_counter()
    action()
    page.wait_for_function(DONE_JS, arg=prev, polling="raf", timeout=TOGGLE_TIMEOUT_MS)
    wall = time.perf_counter() - wall0
    t0, ta, t1 = page.evaluate("() => [window.__t0, window.__ta, window.__t1]")
    if t0 is None:  # the input event was not seen: fall back to the wall clock around the action
        return wall, wall, ablated_answer(page)
    return (ta - t0) / 1000, (t1 - t0) / 1000, ablated_answer(page)


def switch_off(page) -> None:
    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.keyboard.type(RELATION)
    page.evaluate("() => { window.__t0 = null; }")  # the toggle starts at Enter, not at the typing
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")


def switch_on(page) -> None:
    page.locator(f'[data-testid="stMultiSelect"] button[aria-label="Remove {RELATION}"]').first.click()


def check(page, off: bool, answer: str, baseline: str, problems: list[str], label: str) -> None:
    """Note what is wrong with the page after a toggle: the answer, the caption, the URL, errors, a late rerun."""
    page.wait_for_timeout(500)
    if not page.evaluate(SETTLED_JS):
        problems.append(f"{label}: another script run started within 0.5 s of the result")
        wait_until_settled(page)
    if ablated_answer(page) != answer:
        problems.append(f"{label}: the answer changed again after the page had settled")
    if off and answer == baseline:
        problems.append(f"{label}: the answer with {RELATION} off equals the baseline")
    if not off and answer != baseline:
        problems.append(f"{label}: switched back on, the answer {answer!r} is not the baseline {baseline!r}")
    caption = re.search(r"(\d+) of (\d+) positions differ", page.locator('[data-testid="stMain"]').inner_text())
    if caption is None or (int(caption.group(1)) > 0) != off:
        problems.append(f"{label}: caption {caption.group(0) if caption else 'missing'!r}")
    if (f"off={RELATION}" in page.url) != off:
        problems.append(f"{label}: the URL does not follow the toggle ({page.url})")
    if page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count():
        problems.append(f"{label}: the page shows an error")


def lab_first_render(page, url: str) -> tuple[float, float]:
    """Seconds from navigation to the lab's controls (drawn before its model has loaded) and to its first
    chart (which needs the model)."""
    t0 = time.perf_counter()
    page.goto(f"{url}/lab?run=demo")
    page.wait_for_selector('[data-testid="stTextArea"] textarea', timeout=120_000)
    controls = time.perf_counter() - t0
    page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=120_000)
    return controls, time.perf_counter() - t0


def lab_session(browser, url: str, cycles: int
                ) -> tuple[tuple[float, float], dict[str, list[tuple[float, float]]], list[str]]:
    """Time the lab's first render (its controls, and its first chart, which needs the model), then its first
    toggles and `cycles` warm off/on cycles."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    first = lab_first_render(page, url)
    wait_for_app(page, 120_000)
    wait_until_settled(page)
    prompt = page.locator('[data-testid="stTextArea"] textarea').first.input_value()
    if prompt != PROMPT:
        problems.append(f"the lab's default prompt is {prompt!r}, not {PROMPT!r}")
    baseline = page.locator(CODES).nth(0).inner_text()
    if ablated_answer(page) != baseline:
        problems.append("with nothing off, the answer with the neurons off differs from the baseline")
    page.evaluate(LISTEN_JS)
    times: dict[str, list[tuple[float, float]]] = {"first switch-off (cold)": [], "first switch-on": [],
                                     "warm switch-off": [], "warm switch-on": []}
    for i in range(cycles + 1):
        for off, action in ((True, switch_off), (False, switch_on)):
            label = ("first " if i == 0 else "warm ") + ("switch-off" if off else "switch-on")
            key = label + (" (cold)" if i == 0 and off else "")
            try:
                drawn, seconds, answer = timed_toggle(page, lambda: action(page))
            except Exception as exc:  # a toggle that never shows a new answer: report it and stop
                problems.append(f"{label}: no new answer within {TOGGLE_TIMEOUT_MS / 1000:.0f} s "
                                f"({type(exc).__name__})")
                page.close()
                return first, times, problems
            times[key].append((seconds, drawn))
            check(page, off, answer, baseline, problems, f"{label} #{i}")
    page.close()
    return first, times, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=5, help="warm off/on cycles of the lab toggle (default 5)")
    parser.add_argument("--pages", default=",".join(PAGES),
                        help="pages whose first render to time (comma-separated; the lab is always opened)")
    parser.add_argument("--no-reference", action="store_true", help="skip the trivial reference app")
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers per page; the median is printed")
    args = parser.parse_args()
    pages = [p for p in args.pages.split(",") if p]
    if set(pages) - set(PAGES):
        parser.error(f"--pages: choose from {', '.join(PAGES)}")
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    from core.runs import runs_dir
    from core.store import RunStore

    RunStore(runs_dir() / "demo").close()  # index the run once, before any timing
    samples: dict[str, list[float]] = {}
    starts: dict[str, list[float]] = {"reference app": [], "explorer (server.py)": []}  # process start -> healthy
    missing_page = None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for repeat in range(args.repeats):
            if not args.no_reference:
                with tempfile.TemporaryDirectory() as tmp:
                    script = Path(tmp) / "reference_app.py"
                    script.write_text(REFERENCE_APP)
                    with streamlit_script_server(script, on_healthy=starts["reference app"].append) as url:
                        samples.setdefault("reference (title + 1 chart)", []).append(seconds_to_chart(browser, url))
            for name in pages:
                if name != "lab":
                    with streamlit_server(on_healthy=starts["explorer (server.py)"].append) as url:
                        samples.setdefault(name, []).append(seconds_to_chart(browser, f"{url}/{name}?run=demo"))
                        if missing_page is None:
                            missing_page = seconds_to_heading(browser, f"{url}/nonexistent/page", "No such page")
            with streamlit_server(on_healthy=starts["explorer (server.py)"].append) as url:
                if repeat == 0:  # the toggles, once
                    (controls, chart), kept_times, kept_problems = lab_session(browser, url, args.cycles)
                else:
                    page = browser.new_page(viewport={"width": 1400, "height": 1000})
                    controls, chart = lab_first_render(page, url)
                    page.close()
                samples.setdefault("lab: controls drawn", []).append(controls)
                samples.setdefault("lab: first chart (model)", []).append(chart)
        browser.close()
    times, problems = kept_times, kept_problems
    first = {name: statistics.median(values) for name, values in samples.items()}

    ref = first.get("reference (title + 1 chart)")
    print(f"First render after server start (navigation -> chart drawn; the lab also -> its controls drawn), "
          f"median of {args.repeats}")
    print(f"{'page':<28} {'s':>6}" + (f" {'x reference':>12}" if ref else "") + "  every sample")
    for name, seconds in first.items():
        print(f"{name:<28} {seconds:>6.2f}" + (f" {seconds / ref:>12.2f}" if ref else "") + "  "
              + " ".join(f"{v:.2f}" for v in samples[name]))
    print("Server start (process start -> first healthy answer; the explorer imports its pages' libraries before "
          "it listens), median")
    for kind, values in starts.items():
        if values:
            print(f"{kind:<28} {statistics.median(values):>6.2f}  " + " ".join(f"{v:.2f}" for v in values))
    if missing_page is not None:
        print(f"/nonexistent/page -> 'No such page' drawn in {missing_page:.2f} s (target < 1 s: "
              f"{'met' if missing_page < 1 else 'NOT met'})")
    print()
    print(f"Lab toggle of {RELATION} on {PROMPT!r} (input event -> new answer drawn, run finished, nothing stale)")
    print(f"{'toggle':<28} {'n':>3} {'median s':>9} {'max s':>7}  {'answer drawn, median s':>22}  all")
    measured = []
    for label, pairs in times.items():
        if pairs:
            values = [settled for settled, _ in pairs]
            measured += values
            print(f"{label:<28} {len(values):>3} {statistics.median(values):>9.2f} {max(values):>7.2f}  "
                  f"{statistics.median(drawn for _, drawn in pairs):>22.2f}  " + " ".join(f"{v:.2f}" for v in values))
    if measured:
        print(f"target < {TARGET_S:.0f} s for every toggle: {'met' if max(measured) < TARGET_S else 'NOT met'} "
              f"(slowest {max(measured):.2f} s)")
    for problem in problems:
        print(f"problem: {problem}")
    if any("no new answer" in problem for problem in problems):
        sys.exit(1)


if __name__ == "__main__":
    main()
