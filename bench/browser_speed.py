"""In a real browser on a real server: each page's first render after server start, and a lab toggle.

    python bench/browser_speed.py [--repeats 3]

For each page a fresh `streamlit run` server is started and the time from
navigation to a drawn chart is measured (so every page pays its own first load of
the run and, for the lab, the model). Then, on a warm lab, the time from
toggling a relation's ablation to its new result on screen. Needs Debian's
chromium and the playwright Python package.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser_server import CHROMIUM_ARGS, seconds_to_chart, streamlit_server, wait_for_app  # noqa: E402

PAGES = ["overview", "overlap", "layers", "neuron", "effects", "lab"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        first = {}
        for name in PAGES:
            with streamlit_server() as url:
                first[name] = seconds_to_chart(browser, f"{url}/{name}?run=demo")
        print("first render after server start (s): " + ", ".join(f"{k} {v:.2f}" for k, v in first.items()))
        with streamlit_server() as url:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            toggles = []
            for i in range(args.repeats):
                page.goto(f"{url}/lab?run=demo&prompt=The+father+of+Bouzei+Hulir+is&tokens=20")
                wait_for_app(page)
                page.wait_for_selector("text=0 neurons off", timeout=120_000)
                select = page.locator('[data-testid="stMultiSelect"]').first
                select.click()
                page.keyboard.type(["person_father", "person_mother", "company_ceo"][i % 3])
                t0 = time.perf_counter()
                page.keyboard.press("Enter")
                page.wait_for_function("() => !document.body.innerText.includes('\\n0 neurons off')", timeout=60_000)
                wait_for_app(page)
                toggles.append(time.perf_counter() - t0)
            print("lab toggle to new result (s): " + ", ".join(f"{t:.2f}" for t in toggles)
                  + f"; median {statistics.median(toggles):.2f}")
        browser.close()


if __name__ == "__main__":
    main()
