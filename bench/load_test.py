"""Load: N concurrent browser sessions on one real `streamlit run` server, through the lab and the heatmaps.

    python -m bench.load_test [--sessions 6] [--seconds 60]

Each session (its own browser context, so its own Streamlit session) loops for a
bounded time over: a lab ablation of a relation picked at random, an overlap
heatmap at a random k, a layer distribution. A request is one navigation that
must end with its chart (or the lab's continuation) drawn and no exception on the
page. Prints sessions held, requests served, errors and latency percentiles.
All traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import time
from pathlib import Path


from bench.browser_server import CHROMIUM_ARGS, streamlit_server

RELATIONS = ["person_father", "person_mother", "company_ceo", "company_hq", "star_constellation", "person_occupation"]


async def session(browser, url: str, seconds: float, seed: int, latencies: list, errors: list) -> int:
    rng = random.Random(seed)
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    served = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        kind = rng.choice(["lab", "overlap", "layers"])
        if kind == "lab":
            target = f"{url}/lab?run=demo&off={rng.choice(RELATIONS)}&k={rng.choice([20, 108, 300])}&tokens=10"
            ready = "text=With the neurons off"
        elif kind == "overlap":
            target = f"{url}/overlap?run=demo&k={rng.randint(10, 400)}&metric={rng.choice(['count', 'jaccard'])}"
            ready = '[data-testid="stVegaLiteChart"]'
        else:
            target = f"{url}/layers?run=demo&k={rng.randint(10, 400)}"
            ready = '[data-testid="stVegaLiteChart"]'
        started = time.perf_counter()
        try:
            await page.goto(target)
            await page.wait_for_selector(ready, timeout=60_000)
            await page.wait_for_function(
                "() => document.querySelector('[data-testid=\"stStatusWidget\"]') === null", timeout=60_000)
            if await page.locator('[data-testid="stException"]').count():
                raise RuntimeError(f"exception on {target}")
            latencies.append(time.perf_counter() - started)
            served += 1
        except Exception as exc:  # counted and reported, never hidden
            errors.append(f"{kind}: {exc}")
    await context.close()
    return served


async def main_async(sessions: int, seconds: float) -> None:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    with streamlit_server() as url:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            latencies: list[float] = []
            errors: list[str] = []
            served = await asyncio.gather(*[session(browser, url, seconds, s, latencies, errors) for s in range(sessions)])
            await browser.close()
    lat = sorted(latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else float("nan")
    print(f"sessions held: {sessions}; bounded time: {seconds:.0f} s")
    print(f"requests served: {sum(served)} ({', '.join(map(str, served))} per session); errors: {len(errors)}")
    if lat:
        print(f"latency: median {statistics.median(lat):.2f} s, p95 {p95:.2f} s, max {lat[-1]:.2f} s")
    for e in errors[:5]:
        print("error:", e[:200])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    asyncio.run(main_async(args.sessions, args.seconds))


if __name__ == "__main__":
    main()
