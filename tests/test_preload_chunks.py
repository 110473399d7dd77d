"""The shell page preloads the chart's code: which chunks, and the middleware that adds them."""
import asyncio
import json
import re

from ui.preload_chunks import (STATIC, PreloadChartChunks, chunks_to_preload, named_chunk_files, preload_script,
                               static_closure)

JS = STATIC / "static" / "js"


def test_the_closure_follows_static_imports_and_skips_what_is_missing(tmp_path):
    (tmp_path / "a.1.js").write_text('import{x as y}from"./b.2.js";import"./c.3.js";const z=import(`./lazy.4.js`)')
    (tmp_path / "b.2.js").write_text('import{q}from"./c.3.js";import"./gone.5.js"')
    (tmp_path / "c.3.js").write_text("export const q=1")
    (tmp_path / "lazy.4.js").write_text("export default 1")
    assert static_closure(tmp_path, ["a.1.js"]) == ["a.1.js", "b.2.js", "c.3.js"]  # dynamic imports not followed
    assert static_closure(tmp_path, ["missing.js"]) == []
    assert named_chunk_files(tmp_path, ("a", "lazy", "nothing")) == ["a.1.js", "lazy.4.js"]


def test_the_installed_streamlit_gives_the_chart_and_its_imports_not_the_shells_own():
    chunks = chunks_to_preload()
    names = {c.split(".")[0] for c in chunks}
    assert {"ArrowVegaLiteChart", "loadVegaEmbed", "embed", "vega-interpreter"} <= names
    assert not names & {"DataFrame", "Selectbox", "Metric"}  # other elements' code competes with the first run
    assert all((JS / c).is_file() for c in chunks) and len(set(chunks)) == len(chunks)
    shell = set(static_closure(JS, re.findall(r'src="\./static/js/([\w.-]+\.js)"', (STATIC / "index.html").read_text())))
    assert shell and not shell & set(chunks)
    chart = next(c for c in chunks if c.startswith("ArrowVegaLiteChart."))
    assert set(static_closure(JS, [chart])) <= set(chunks) | shell  # every import of the chart is ready
    assert not any(c.startswith("StreamlitSyntaxHighlighter.") for c in chunks)


def _serve(content_type: bytes, body: bytes, method="GET", chunks=("x.1.js",), extra_headers=(), accept=b"text/html"):
    """What the middleware sends for one response of an inner app that answers in two body messages (the inner
    app's request headers in asked)."""
    sent, asked = [], []

    async def inner(scope, receive, send):
        asked.extend(scope["headers"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                                *extra_headers]})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:]})

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    headers = [(b"accept", accept), (b"accept-encoding", b"gzip, br")]
    scope = {"type": "http", "method": method, "path": "/overview", "headers": headers, "query_string": b""}
    asyncio.run(PreloadChartChunks(inner, list(chunks))(scope, receive, send))
    start = sent[0]
    return dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:]), len(sent), dict(asked)


def test_the_shell_page_gets_the_script_in_its_head_with_its_new_length():
    page = b"<html><head><title>Streamlit</title></head><body></body></html>"
    headers, body, _, asked = _serve(b"text/html; charset=UTF-8", page, accept=b"text/html,application/xhtml+xml")
    assert b"accept-encoding" not in asked  # asked uncompressed, so the head can be read
    script = preload_script(["x.1.js"])
    assert body == page.replace(b"</head>", script + b"</head>")
    assert int(headers[b"content-length"]) == len(body)
    assert json.dumps(["x.1.js"]).encode() in script and b"modulepreload" in script


def test_other_responses_pass_untouched_and_unbuffered():
    js = b"export const a = 1; // </head> in a string"
    headers, body, messages, asked = _serve(b"text/javascript", js, accept=b"*/*")
    assert body == js and int(headers[b"content-length"]) == len(js) and messages == 3
    assert asked[b"accept-encoding"] == b"gzip, br"  # an asset keeps its compression
    zipped = b"<html><head></head></html>"
    assert _serve(b"text/html", zipped, extra_headers=[(b"content-encoding", b"gzip")])[1] == zipped
    assert _serve(b"text/html", zipped, method="HEAD")[1] == zipped
    assert _serve(b"text/html", zipped, chunks=())[1] == zipped  # nothing found to preload: no script at all
