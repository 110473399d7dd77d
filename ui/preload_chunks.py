"""The browser fetches and compiles the chart's code while it waits for the first script run.

Streamlit's frontend loads each element's code (the Vega-Lite chart, the data grid, a select box...) only when
that element first arrives from the server, one wave of imports after another; on a first visit the first chart
waited about a second for its code after its data had arrived. The shell page is idle before that: it has loaded
its own scripts and waits for the websocket and the first script run. This ASGI middleware (server.py mounts it
through st.App) adds one small script to the shell's head that, once the page has loaded, asks for the chart's
chunks (1.1 MB) as module preloads: fetched and compiled, not run. Only the chart's: preloading every element's
chunks (2.8 MB) made the first chart slower on 2 cores, where their compiling competes with the first script run
(README, first render). The list is read from the installed Streamlit's own files at start-up (static imports
followed, the shell's own scripts left out), so a Streamlit upgrade renames nothing here; a chunk that is not
found is simply not preloaded. Nothing from a request enters the script: it is the same for every page."""
from __future__ import annotations

import json
import re
from pathlib import Path

import streamlit

from ui.unknown_paths import accepts_html

STATIC = Path(streamlit.__file__).parent / "static"
# Streamlit's chunks of st.altair_chart: the element, its loader of vega-embed, and what that loader imports.
CHART_CHUNKS = ("ArrowVegaLiteChart", "loadVegaEmbed", "embed", "vega-interpreter")
_STATIC_IMPORT = re.compile(r'(?:from|import)\s*"\./([\w.-]+\.js)"')
_SHELL_SCRIPT = re.compile(r'src="\./static/js/([\w.-]+\.js)"')


def static_closure(js_dir: Path, roots: list[str]) -> list[str]:
    """The chunk files `roots` import statically, directly or not, roots included, in the order found."""
    seen: dict[str, None] = {}
    queue = list(roots)
    while queue:
        name = queue.pop(0)
        if name in seen or not (js_dir / name).is_file():
            continue
        seen[name] = None
        queue.extend(_STATIC_IMPORT.findall((js_dir / name).read_text(encoding="utf-8", errors="replace")))
    return list(seen)


def named_chunk_files(js_dir: Path, names=CHART_CHUNKS) -> list[str]:
    """Each named chunk's file: NAME.HASH.js (none when the installed Streamlit has no such chunk)."""
    files = sorted(p.name for p in js_dir.glob("*.js"))
    found = []
    for name in names:
        pattern = re.compile(re.escape(name) + r"\.[\w-]+\.js")
        found += [f for f in files if pattern.fullmatch(f)][:1]
    return found


def chunks_to_preload(static_dir: Path = STATIC) -> list[str]:
    """The chunks the chart needs beyond what the shell page loads by itself."""
    js_dir = static_dir / "static" / "js"
    shell = (static_dir / "index.html").read_text(encoding="utf-8") if (static_dir / "index.html").is_file() else ""
    loaded = set(static_closure(js_dir, _SHELL_SCRIPT.findall(shell)))
    return [f for f in static_closure(js_dir, named_chunk_files(js_dir)) if f not in loaded]


def preload_script(chunks: list[str]) -> bytes:
    """A script for the shell's head: once the page has loaded, a module preload link per chunk (relative, as the
    shell's own assets are, so a base URL path keeps working)."""
    return ("<script>window.addEventListener('load',()=>{for(const c of " + json.dumps(chunks) + "){"
            "const l=document.createElement('link');l.rel='modulepreload';l.href='./static/js/'+c;"
            "document.head.appendChild(l)}})</script>").encode()


class PreloadChartChunks:
    """Adds preload_script to the head of an HTML page that a browser asks for (Streamlit's shell); any other
    request and response passes through untouched and unbuffered."""

    def __init__(self, app, chunks: list[str] | None = None):
        self.app = app
        found = chunks_to_preload() if chunks is None else chunks
        self.script = preload_script(found) if found else b""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or not self.script or not accepts_html(scope):
            await self.app(scope, receive, send)
            return
        # The shell is asked for uncompressed (10 kB) so that its head can be read; assets keep their compression.
        scope = {**scope, "headers": [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"accept-encoding"]}
        start: dict = {}
        body: list[bytes] = []

        async def rewriting(message):
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                if b"text/html" in headers.get(b"content-type", b"") and b"content-encoding" not in headers:
                    start.update(message)  # held until the body is complete: its length changes
                    return
                await send(message)
                return
            if not start or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            page = b"".join(body)
            if b"</head>" in page:
                page = page.replace(b"</head>", self.script + b"</head>", 1)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": headers + [(b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, rewriting)
