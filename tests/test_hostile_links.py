"""Random hostile query strings on every page of the app (AppTest): never an exception, never an error, and
every notice that echoes a link's value shows it as text, never as Markdown (no image, no link, no HTML)."""
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apptest_helpers import PAGES, run_page
from core.paths import DEMO_RUN_DIR
from core.prompt_links import MAX_PROMPT_CHARS, MAX_URL_PROMPT

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")
KEYS = ["run", "k", "lang", "rel", "metric", "mode", "diag", "layers", "modules", "a", "b", "neuron", "unit", "tk",
        "tab", "prompt", "pz", "snap", "off", "add", "remove", "tokens", "x"]
MARKDOWN = ["![](http://127.0.0.2/beacon.png)", "[Log in again](http://127.0.0.2/)", "<img src=x onerror=alert(1)>",
            "<script>alert(1)</script>", "**bold** _it_ `code`", ":red[alarm] :material/warning:", "$x^2$",
            "www.example.com", "mail@example.com", "# heading", "> quote", "| a | b |", "\\[escaped\\]"]
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["../../etc/passwd", "'; DROP TABLE scores; --", "-1", "99999999999", "0", "1e9", "nan", "😀",
                     "person_father", "en", "2.gate_proj.5", "0-99", "gate_proj,../x", ",,,", "%00", *MARKDOWN]),
    st.builds(lambda md, tail: md + tail, st.sampled_from(MARKDOWN), st.text(max_size=20)),
    # past every limit: the link cut for plain prompts and the lab's character limit, in multi-byte text
    st.text(alphabet=st.characters(min_codepoint=0x1F300, max_codepoint=0x1F64F), min_size=MAX_URL_PROMPT + 1,
             max_size=MAX_PROMPT_CHARS + 50),
    st.text(min_size=MAX_PROMPT_CHARS, max_size=MAX_PROMPT_CHARS + 200),
)
QUERIES = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)
# Escaped Markdown: every ASCII punctuation character preceded by a backslash.
UNESCAPED = re.compile(r"(?<!\\)[!-/:-@\[-`{-~]")


def assert_shown_as_text(notice: str) -> None:
    unescaped = re.sub(r"\\[!-/:-@\[-`{-~]", "", notice)  # what Markdown would still act on
    assert not UNESCAPED.search(unescaped), notice
    # what the front end would link even when escaped: a scheme's "://", "www.", an e-mail's "@domain"
    assert not re.search(r"(?i)[a-z]://|www\.|@[a-z0-9]", notice.replace("\\", "")), notice


@pytest.mark.parametrize("page", PAGES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(query=QUERIES)
def test_random_links_only_give_notices(page, query):
    at = run_page(page, {k: v.replace("\x00", "") for k, v in query.items()})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    for notice in [w.value for w in at.warning]:
        assert_shown_as_text(notice)


@pytest.mark.parametrize("page, query", [
    ("layers", {"unit": "![](http://127.0.0.2/x)"}),
    ("overview", {"tk": "[Log in again](http://127.0.0.2/)"}),
    ("overlap", {"metric": "<img src=x>", "a": "[a](http://127.0.0.2/)"}),
    ("lab", {"add": "![](http://127.0.0.2/x)", "off": "[x](http://127.0.0.2/)"}),
    ("neuron", {"neuron": "![](http://127.0.0.2/x)"}),
    ("effects", {"tab": "[t](http://127.0.0.2/)"}),
    ("lab", {"run": "WWW.:"}),  # found by the property test above: "www." that is also a scheme-like word
    ("overview", {"run": "https://www.example.com"}),
])
def test_markdown_in_a_link_is_shown_as_text(page, query):
    at = run_page(page, query)
    notices = [w.value for w in at.warning]
    assert notices, "a bad value must be named in a notice"
    for notice in notices:
        assert_shown_as_text(notice)
