"""Paths that are no page get the server's own "No such page" answer (server.py); pages and Streamlit's own
routes pass through untouched."""
import asyncio

import pytest

from ui.page_index import PAGES
from ui.unknown_paths import MAX_SHOWN_PATH, UnknownPathAnswer, is_unknown, not_found_page


@pytest.mark.parametrize("path", ["/", "/lab", "/overview", "/compare", "/home", "/static/js/index.js",
                                  "/_stcore/health", "/_stcore/stream", "/media/abc.png", "/component/x/y",
                                  "/app/static/z", "/favicon.png"])
def test_pages_and_streamlits_own_routes_are_known(path):
    assert not is_unknown(path)


@pytest.mark.parametrize("path", ["/nonexistent", "/nonexistent/page", "/lab/deeper", "/a/b/c/", "//a//b", "/Lab"])
def test_other_paths_are_unknown(path):
    assert is_unknown(path)


def test_the_answer_names_the_path_escaped_and_links_every_page():
    text = not_found_page("/a/<script>alert(1)</script>/b")
    assert "<script>" not in text and "&lt;script&gt;" in text
    for p in PAGES:
        assert f'<a href="/{p.url_path}">{p.title}</a>' in text
    long = not_found_page("/a/" + "b" * 5000)
    assert "b" * MAX_SHOWN_PATH not in long and "b" * (MAX_SHOWN_PATH - 2) in long


def _call(path: str, accept: bytes, method: str = "GET") -> list[dict]:
    sent, passed = [], []

    async def inner(scope, receive, send):
        passed.append(scope["path"])

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": "http", "method": method, "path": path, "headers": [(b"accept", accept)], "query_string": b""}
    asyncio.run(UnknownPathAnswer(inner)(scope, receive, send))
    return sent if not passed else [{"passed": passed[0]}]


def test_the_middleware_answers_only_a_browsers_page_request_for_an_unknown_path():
    start, body = _call("/nonexistent/page", b"text/html,application/xhtml+xml")
    assert start["status"] == 404 and b"There is no page at <code>/nonexistent/page</code>" in body["body"]
    assert _call("/nonexistent/static/js/x.js", b"*/*") == [{"passed": "/nonexistent/static/js/x.js"}]
    assert _call("/lab", b"text/html") == [{"passed": "/lab"}]
    assert _call("/a/b", b"text/html", method="POST") == [{"passed": "/a/b"}]


def test_warm_imports_load_what_the_data_pages_need_and_report_failures():
    import sys

    from ui.warm_imports import MODULES, warm

    assert warm() == []
    assert all(name in sys.modules for name in MODULES)
    assert warm(("scipy.stats", "no_such_module_here")) == ["no_such_module_here"]


def test_a_server_that_warmed_before_serving_starts_no_background_warm_up():
    import sys

    from ui import warm_imports

    warm_imports._started.clear()
    assert warm_imports.warm_before_serving() == []
    assert all(name in sys.modules for name in warm_imports.MODULES + warm_imports.LAB_MODULES)
    assert warm_imports.warm_once_in_background() is False


def test_the_warm_up_starts_once_per_process():
    from ui import warm_imports

    warm_imports._started.clear()
    assert warm_imports.warm_once_in_background() is True
    assert warm_imports.warm_once_in_background() is False
