"""A real browser (Debian's Chromium via Playwright) on a real `streamlit run` server: every page, and a lab toggle."""
import shutil
from pathlib import Path

import pytest

from browser_server import CHROMIUM_ARGS, streamlit_server, wait_for_app
from core.demo import DEMO_RUN_DIR

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium")
playwright = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); "
                                                 ".ci/run installs it"),
    pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built"),
]
PAGES = ["overview", "overlap", "layers", "neuron", "effects", "lab"]


@pytest.fixture(scope="module")
def browser_page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            yield url, page
        finally:
            browser.close()


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_in_a_real_browser(browser_page, name):
    url, page = browser_page
    page.goto(f"{url}/{name}?run=demo")
    wait_for_app(page)
    page.wait_for_selector('[data-testid="stVegaLiteChart"]', timeout=60_000)
    page.wait_for_timeout(500)  # let vega finish drawing before the screenshot
    assert page.locator('[data-testid="stException"]').count() == 0
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert name.capitalize() in nav and "common" not in nav, nav  # app.py's st.navigation, not the bare folder
    assert page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').count() > 0
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_lab_toggle_changes_the_ablated_result(browser_page):
    url, page = browser_page
    page.goto(f"{url}/lab?run=demo&prompt=The+father+of+Bouzei+Hulir+is&tokens=6")
    wait_for_app(page)
    page.wait_for_selector("text=0 neurons off", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "lab-before-toggle.png"), full_page=True)
    select = page.locator('[data-testid="stMultiSelect"]').first
    select.click()
    page.keyboard.type("person_father")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.body.innerText.includes('\\n0 neurons off')", timeout=60_000)
    wait_for_app(page)
    assert "off=person_father" in page.url
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "lab-after-toggle.png"), full_page=True)
