"""A user in a real browser (Debian's Chromium via Playwright, a real `streamlit run`): every control on every page
changed twice or more in a row, each change checked on screen and in the URL; the lab switched off, on and off;
back and forward; hostile links; paths that are no page; screenshots of every page at two widths."""
import contextlib
import re
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from bench.browser_server import CHROMIUM_ARGS, streamlit_server, wait_for_app, wait_until_settled
from core.paths import DEMO_RUN_DIR

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium")
playwright = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium); "
                                                 ".ci/run installs it"),
    pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built"),
]


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # the app's own arguments, as a user passes them: the lab test checks the sidebar names the dtype asked for
    with streamlit_server(args=["--dtype", "float32"]) as url, playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield url, chromium
        finally:
            chromium.close()


@contextlib.contextmanager
def tab_on(chromium, url: str):
    """A fresh browser context's page, its links relative to `url`."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1600})
    tab = context.new_page()
    tab.base = url
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def page(browser):
    url, chromium = browser
    with tab_on(chromium, url) as tab:
        yield tab


def settle(page) -> None:
    """Wait until Streamlit has run the script for the last action and nothing on the page is stale."""
    page.wait_for_timeout(250)
    wait_for_app(page)
    wait_until_settled(page)
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator('[data-testid="stException"]').first.inner_text()


def open_page(page, path: str) -> None:
    page.goto(f"{page.base}/{path}")
    settle(page)


def query(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="{testid}"]').filter(has=page.get_by_text(label, exact=True)).first


def choose(page, label: str, option: str) -> None:
    box = widget(page, "stSelectbox", label)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)
    assert shown(box) == option, (label, option, shown(box))


def shown(box) -> str:
    return box.locator('input[role="combobox"]').input_value()


def type_number(page, label: str, value: int) -> None:
    field = widget(page, "stNumberInput", label).locator("input")
    field.fill(str(value))
    field.press("Enter")
    settle(page)
    assert field.input_value() == str(value)


def type_text(page, label: str, value: str) -> None:
    field = widget(page, "stTextInput", label).locator("input")
    field.fill(value)
    field.press("Enter")
    settle(page)
    assert field.input_value() == value


def pick_radio(page, label: str, option: str) -> None:
    group = widget(page, "stRadio", label)
    group.get_by_text(option, exact=True).click()
    settle(page)
    assert group.locator("input:checked").count() == 1
    assert group.locator("label").filter(has=page.locator("input:checked")).inner_text().strip() == option


def add_option(page, label: str, option: str) -> None:
    box = widget(page, "stMultiSelect", label)
    box.click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    settle(page)
    assert option in chips(box)


def remove_option(page, label: str, option: str) -> None:
    box = widget(page, "stMultiSelect", label)
    box.get_by_role("button", name=f"Remove {option}").click()
    settle(page)
    assert option not in chips(box)


def chips(box) -> list[str]:
    return [t.strip() for t in box.locator("[data-tag]").all_inner_texts()]


def slide(page, label: str, key: str, thumb: int = 0) -> None:
    handle = widget(page, "stSlider", label).locator('input[type="range"]').nth(thumb)
    handle.focus()
    page.keyboard.press(key)
    settle(page)


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def test_overview_templates_radio(page):
    open_page(page, "overview")
    for option, value in [("held-out templates", "heldout"), ("trained templates", "train"),
                          ("held-out templates", "heldout")]:
        pick_radio(page, "Templates", option)
        assert query(page)["tk"] == value


def test_the_shell_preloads_the_charts_code(page):
    from ui.preload_chunks import chunks_to_preload

    open_page(page, "layers")
    # the shell's script adds the links on the page's load event: wait for every chunk the server lists
    page.wait_for_function("""(chunks) => {
        const asked = new Set([...document.querySelectorAll('link[rel=modulepreload]')]
                              .map(l => l.href.split('/static/js/').pop()));
        return chunks.every(c => asked.has(c));
    }""", arg=chunks_to_preload(), timeout=15_000)
    failed = page.evaluate("() => performance.getEntriesByType('resource')"
                           ".filter(e => e.name.includes('/static/js/') && e.responseStatus >= 400).map(e => e.name)")
    assert failed == [] and page.locator('[data-testid="stVegaLiteChart"]').count() >= 1


def test_layers_every_control(page):
    open_page(page, "layers")
    for lang in ["de", "fr", "es"]:
        choose(page, "Language", lang)
        assert query(page)["lang"] == lang
    for k in [50, 60, 7]:
        type_number(page, "k (1–3,584)", k)
        assert query(page)["k"] == str(k)
        assert query(page)["lang"] == "es"  # an earlier change survives later ones
    for option, value in [("share of the relation's top-k", "share"), ("counts", "count"),
                          ("share of the relation's top-k", "share")]:
        pick_radio(page, "Show", option)
        assert query(page)["unit"] == value


def test_overlap_every_control(page):
    open_page(page, "overlap")
    for metric, value in [("Jaccard", "jaccard"), ("ratio to random sets (shared ÷ |A|·|B|/N)", "chance_ratio"),
                          ("shared neurons", "count")]:
        choose(page, "Metric", metric)
        assert query(page)["metric"] == value
    for k in [50, 60]:
        type_number(page, "k (top neurons per set, 1–3,584)", k)
        assert query(page)["k"] == str(k)
        assert f"Top-{k} sets" in main_text(page)
    for option, value in [("on the scale", "show"), ("masked (grey)", "mask")]:
        choose(page, "Diagonal", option)
        assert query(page)["diag"] == value
    for lang in ["de", "fr"]:
        choose(page, "Language", lang)
        assert query(page)["lang"] == lang
    for key, expected in [("ArrowRight", "1-3"), ("ArrowRight", "2-3")]:
        slide(page, "Layers", key)
        assert query(page)["layers"] == expected
        assert f"layers {expected.replace('-', '–')}" in main_text(page)
    for module, remaining in [("down_proj", "gate_proj,up_proj"), ("up_proj", "gate_proj")]:
        remove_option(page, "Modules", module)
        assert query(page)["modules"] == remaining
    for row in ["person_father", "person_mother"]:
        choose(page, "Row", row)
        assert query(page)["a"] == row
        assert f"in both {row} (fr)" in main_text(page)
    for col in ["person_occupation", "star_constellation"]:
        choose(page, "Column", col)
        assert query(page)["b"] == col
        assert f"and {col} (fr)" in main_text(page)
    for view, value in [("language × language (one relation)", "languages"),
                        ("relation × language (vs. the identification language)", "relation_language"),
                        ("language × language (one relation)", "languages")]:
        choose(page, "View", view)
        assert query(page)["mode"] == value
    for rel in ["person_mother", "company_hq"]:
        choose(page, "Relation", rel)
        assert query(page)["rel"] == rel
        assert f"in both {rel} (" in main_text(page)
    page.screenshot(path=str(ARTIFACTS / "overlap-after-changes.png"), full_page=True)


def test_overlap_cell_clicks_select_the_cell(page):
    """Two clicks on two heatmap cells: each one's row and column appear in the URL, the Row/Column pickers and the
    shared-neurons caption. (The grid sits right of the row labels and above the column labels.)"""
    open_page(page, "overlap")
    chart = page.locator('[data-testid="stVegaLiteChart"]').first.locator("canvas, svg").first
    box = chart.bounding_box()
    seen = [(query(page)["a"], query(page)["b"])]
    for fx, fy in [(0.62, 0.45), (0.45, 0.2)]:
        chart.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
        settle(page)
        cell = (query(page)["a"], query(page)["b"])
        assert cell != seen[-1], (cell, seen)  # a new cell was chosen
        assert shown(widget(page, "stSelectbox", "Row")) == cell[0]
        assert shown(widget(page, "stSelectbox", "Column")) == cell[1]
        assert f"in both {cell[0]} (en) and {cell[1]} (en)" in main_text(page)
        seen.append(cell)


def test_neuron_every_control(page):
    open_page(page, "neuron")
    for neuron in ["2.up_proj.5", "1.gate_proj.17", "3.down_proj.0"]:
        type_text(page, "Neuron (layer.module.index or flat id)", neuron)
        assert query(page)["neuron"] == neuron
        assert f"Neuron **{neuron}" not in main_text(page)  # drawn as text, not Markdown source
    drawn = []
    for lang in ["fr", "de"]:
        choose(page, "Language of the top prompts", lang)
        assert query(page)["lang"] == lang
        assert f"Identification prompts ({lang})" in main_text(page)
        # the same control redraws the activation boxes: the section's heading names the language, its chart changes
        assert f"Activation on positives and negatives ({lang})" in main_text(page)
        chart = page.locator('[data-testid="stElementContainer"]:has(h3:has-text("Activation on positives")) ~ '
                             '[data-testid="stElementContainer"]:has([data-testid="stVegaLiteChart"])').first
        drawing = chart.locator(".vega-embed canvas, .vega-embed svg.marks").first
        drawing.wait_for()
        page.wait_for_timeout(800)  # let vega finish drawing
        # the drawing itself, read in place (a screenshot would scroll the page under the next selectbox)
        drawn.append(drawing.evaluate("e => e.toDataURL ? e.toDataURL() : e.outerHTML"))
    assert drawn[0] != drawn[1]


def test_effects_every_control(page):
    open_page(page, "effects")
    for lang in ["de", "fr"]:
        choose(page, "Language", lang)
        assert query(page)["lang"] == lang
        assert f"own top-108 off ({lang})" in main_text(page)
    seen = []
    for key in ["ArrowLeft", "ArrowLeft", "ArrowRight"]:
        slide(page, "k (precomputed)", key)
        seen.append(query(page)["k"])
        assert f"top-{int(seen[-1]):,} off" in main_text(page)
    assert len(set(seen[:2])) == 2, seen
    for tab, value in [("Sweep", "sweep"), ("Multilingual", "multilingual"), ("Held-out templates", "heldout"),
                       ("Ablation modes", "modes")]:
        page.get_by_role("tab", name=tab).click()
        settle(page)
        assert query(page)["tab"] == value
    assert "Ablation modes side by side: top-108 off" in main_text(page)
    page.get_by_role("tab", name="Sweep").click()
    settle(page)
    for rel in ["person_father", "person_mother"]:
        choose(page, "Relation (for the sweep)", rel)
        assert query(page)["rel"] == rel
        assert f"Accuracy vs k: {rel}" in main_text(page)


def answer_off(page) -> str:
    return page.locator('[data-testid="stCode"]').nth(1).inner_text().strip()


def test_lab_off_on_off_and_every_control(page):
    open_page(page, "lab")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stCode\"]').length >= 2"
                           " && document.querySelectorAll('[data-testid=\"stCode\"]')[1].innerText.trim() !== ''",
                           timeout=120_000)
    baseline = page.locator('[data-testid="stCode"]').nth(0).inner_text().strip()
    assert answer_off(page) == baseline and "0 neurons off" in main_text(page)
    assert "Model on cpu in float32 (argument)" in page.locator('[data-testid="stSidebar"]').inner_text()
    add_option(page, "Switch off the top-k neurons of", "person_mother")
    assert query(page)["off"] == "person_mother" and "108 neurons off" in main_text(page)
    switched_off = answer_off(page)
    assert switched_off != baseline, "the default example's answer must change with its relation off"
    remove_option(page, "Switch off the top-k neurons of", "person_mother")
    assert "off" not in query(page) and answer_off(page) == baseline
    add_option(page, "Switch off the top-k neurons of", "person_mother")
    assert query(page)["off"] == "person_mother" and answer_off(page) == switched_off
    for k in [20, 300]:
        type_number(page, "k per relation (≤ 3,584)", k)
        assert query(page)["k"] == str(k) and f"{k} neurons off" in main_text(page)
    for n in [5, 3]:
        type_number(page, "New tokens (≤ 20)", n)
        assert query(page)["tokens"] == str(n)
    for text in ["1.gate_proj.3", "1.gate_proj.3, 2.up_proj.7"]:
        type_text(page, "Also switch off (layer.module.index, comma-separated)", text)
        assert query(page)["add"] == text.replace(" ", "")
    for text in ["1.gate_proj.3", "2.up_proj.7"]:
        type_text(page, "Keep on (remove from the set)", text)
        assert query(page)["remove"] == text
    area = page.locator('[data-testid="stTextArea"] textarea')
    for prompt in ["The father of Bouzei Hulir is", "Der Vater von Bouzei Hulir ist"]:
        area.fill(prompt)
        area.press("Control+Enter")
        settle(page)
        assert query(page)["prompt"] == prompt and area.input_value() == prompt
    examples = page.locator('[data-testid="stSelectbox"]').filter(has_text="Examples: evaluation prompts").first
    for search in ["star_constellation", "company_hq"]:
        examples.locator("input").click()
        page.keyboard.type(search)
        page.get_by_role("option").first.click()
        settle(page)
        assert shown(examples).startswith(search) and area.input_value() in shown(examples)
        assert query(page)["prompt"] == area.input_value()
    page.screenshot(path=str(ARTIFACTS / "lab-after-changes.png"), full_page=True)


def test_lab_ablation_modes(page):
    """zero -> scale (factor 1 is the plain model, then -2) -> mean -> zero, on screen and in the URL."""
    open_page(page, "lab?off=person_mother")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stCode\"]').length >= 2", timeout=120_000)
    settle(page)
    baseline = page.locator('[data-testid="stCode"]').nth(0).inner_text().strip()
    zeroed = answer_off(page)
    assert zeroed != baseline and "mode" not in query(page)
    label = "What switching off does"
    pick_radio(page, "What switching off does", "multiply by a factor")
    assert query(page)["mode"] == "scale" and query(page)["factor"] == "0"
    assert answer_off(page) == zeroed  # x0 is zero ablation
    type_number(page, "Factor (scale; -10 to 10)", 1)
    assert query(page)["factor"] == "1" and answer_off(page) == baseline  # x1 is the plain model
    assert "Answer with the neurons scaled x1" in main_text(page)
    type_number(page, "Factor (scale; -10 to 10)", -2)
    assert query(page)["factor"] == "-2" and "Answer with the neurons scaled x-2" in main_text(page)
    assert answer_off(page) not in (baseline, zeroed)  # flipped neurons: an answer of its own
    pick_radio(page, label, "set to its mean")
    assert query(page)["mode"] == "mean" and "factor" not in query(page)
    assert "Answer with the neurons set to their mean" in main_text(page) and answer_off(page) != baseline
    pick_radio(page, label, "zero (the paper)")
    assert "mode" not in query(page) and answer_off(page) == zeroed
    page.screenshot(path=str(ARTIFACTS / "lab-modes.png"), full_page=True)


def test_back_and_forward_restore_the_view(page):
    open_page(page, "layers")
    choose(page, "Language", "de")
    type_number(page, "k (1–3,584)", 50)
    type_number(page, "k (1–3,584)", 60)
    field = widget(page, "stNumberInput", "k (1–3,584)").locator("input")
    page.go_back()
    settle(page)
    assert query(page)["k"] == "50" and field.input_value() == "50"
    page.go_back()
    settle(page)
    assert query(page)["k"] == "108" and field.input_value() == "108" and query(page)["lang"] == "de"
    page.go_forward()
    settle(page)
    assert query(page)["k"] == "50" and field.input_value() == "50"
    type_number(page, "k (1–3,584)", 70)  # a change after going back sticks too
    assert query(page)["k"] == "70"


def test_hostile_link_shows_text_not_markdown(page):
    open_page(page, "layers?unit=![](http://127.0.0.2/beacon)&lang=[Log in again](http://127.0.0.2/)")
    notices = page.locator('[data-testid="stAlert"]')
    assert notices.count() >= 2
    assert page.locator('[data-testid="stMain"] img').count() == 0
    assert page.locator('[data-testid="stAlert"] a').count() == 0
    assert "Log in again" in notices.all_inner_texts()[0] + notices.all_inner_texts()[-1]


@pytest.mark.parametrize("path", ["overview", "overlap"])
def test_documented_paths(page, path):
    open_page(page, f"{path}?run=demo")
    assert page.locator("h1").first.inner_text().startswith({"overview": "Overview", "overlap": "Overlap"}[path])
    assert page.locator('[role="dialog"]').count() == 0, page.locator('[role="dialog"]').first.inner_text()


def test_unknown_paths_say_so_with_a_link_to_every_page(page):
    """The server's own answer (ui/unknown_paths.py): a 404 page naming the path, escaped, linking every page;
    following a link opens that page."""
    from ui.page_index import PAGES as ENTRIES

    for path in ["nonexistent", "nonexistent/page", "lab/deeper/still", "a/b/c?x=<b>hi</b>"]:
        response = page.goto(f"{page.base}/{path}")
        assert response.status == 404
        assert page.locator("h1").inner_text() == "No such page"
        assert f"There is no page at /{path.split('?')[0]}" in page.locator("body").inner_text()
        assert page.locator("b").count() == 0  # nothing from the URL becomes markup
        links = page.locator("li a")
        assert [links.nth(i).inner_text() for i in range(links.count())] == [e.title for e in ENTRIES]
    page.get_by_role("link", name="Layers").click()
    settle(page)
    assert urlparse(page.url).path == "/layers"
    assert page.locator("h1").first.inner_text().startswith("Layer distribution")


PAGES = ["overview", "overlap", "layers", "neuron", "effects", "lab", "compare"]


@pytest.mark.parametrize("width", [1280, 1920])
def test_screenshots_of_every_page(browser, width):
    """Every page drawn at two widths, saved for a person to look at; every heatmap label is drawn in full."""
    url, chromium = browser
    context = chromium.new_context(viewport={"width": width, "height": 2200})
    tab = context.new_page()
    tab.base = url
    try:
        for name in PAGES:
            open_page(tab, name)
            tab.wait_for_selector('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg',
                                  timeout=60_000)
            nav = tab.locator('[data-testid="stSidebarNav"]').inner_text()
            assert name.capitalize() in nav and "common" not in nav, nav  # app.py's navigation, not the folder's
            tab.wait_for_timeout(800)  # let vega finish drawing before the screenshot
            tab.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    finally:
        context.close()


@pytest.fixture(scope="module")
def compare_runs(tmp_path_factory):
    """A runs folder with the demo and LRE runs (links) and demo-seed1, a copy of the demo run as if identified
    again with seed 1 (the same model, other top-k sets and effects): a same-model pair and a different-model pair."""
    from test_compare import altered_copy

    base = tmp_path_factory.mktemp("compare-browser-runs")
    for name in ("demo", "lre12"):
        (base / name).symlink_to(DEMO_RUN_DIR.parent / name, target_is_directory=True)
    altered_copy(DEMO_RUN_DIR, base / "demo-seed1")
    return base


@pytest.fixture
def compare_page(browser, compare_runs):
    """A page on a server of its own over `compare_runs` (the module's browser, another server)."""
    from core.runs import RUNS_DIR_ENV

    _, chromium = browser
    with streamlit_server(extra_env={RUNS_DIR_ENV: str(compare_runs)}) as url, tab_on(chromium, url) as tab:
        yield tab


def test_compare_every_control(compare_page):
    page = compare_page
    open_page(page, "compare?run=demo&vs=nope")
    assert "Unknown second run 'nope' in the link; comparing with demo-seed1" in main_text(page)
    assert query(page)["vs"] == "demo-seed1" and shown(widget(page, "stSelectbox", "Second run")) == "demo-seed1"
    open_page(page, "compare?run=demo&vs=lre12")
    assert page.locator("h1").first.inner_text().startswith("Compare two runs")
    assert query(page)["vs"] == "lre12" and shown(widget(page, "stSelectbox", "Second run")) == "lre12"
    assert "Different models" in main_text(page) and "Effect tables side by side (en;" in main_text(page)
    choose(page, "Second run", "demo-seed1")
    assert query(page)["vs"] == "demo-seed1" and query(page)["run"] == "demo"
    text = main_text(page)
    assert "Same model" in text and "the runs differ in seed (0 → 1)." in text and "Top-108 agreement per relation (en)" in text
    k_label = "k (top neurons per set, 1–358)"
    for k, effects_at in [(36, 36), (50, 36)]:
        type_number(page, k_label, k)
        assert query(page)["k"] == str(k) and query(page)["vs"] == "demo-seed1"
        text = main_text(page)
        assert f"Top-{k} agreement per relation (en)" in text
        assert f"own top-{effects_at} off, in both runs (en)" in text
    assert "shown at the nearest, k = 36" in main_text(page)
    for lang in ["de", "fr"]:
        choose(page, "Language", lang)
        assert query(page)["lang"] == lang and query(page)["k"] == "50"
        assert f"Top-50 agreement per relation ({lang})" in main_text(page)
    page.screenshot(path=str(ARTIFACTS / "compare-same-model.png"), full_page=True)
    choose(page, "Second run", "lre12")
    assert query(page)["vs"] == "lre12" and query(page)["lang"] == "fr"
    text = main_text(page)
    assert "Different models" in text and "Effect tables side by side (fr;" in text and "agreement" not in text
    assert widget(page, "stNumberInput", k_label).count() == 0  # no k: the two models' neurons are not comparable
    page.screenshot(path=str(ARTIFACTS / "compare-different-models.png"), full_page=True)
