"""A browser's request for a path that no page has gets a small "No such page" answer from the server itself,
with a link to every page, at once.

Without it, Streamlit answers every unknown path with its HTML shell, whose assets are linked relatively: under a
nested path such as /a/b the browser asks for /a/static/... and gets the shell again, so the page stays blank;
and even a one-segment path (/a) waits for the whole app to load before app.py can say there is no such page.
This ASGI middleware (server.py mounts it through st.App) answers both with a 404 page of its own. The path is
only ever shown, escaped, never used for anything else."""
from __future__ import annotations

import html

from ui.page_index import HOME, PAGE_PATHS, PAGES

MAX_SHOWN_PATH = 200
# First path segments Streamlit itself serves (assets, media, components, its API, the app's static folder).
STREAMLIT_PREFIXES = frozenset({"_stcore", "static", "media", "component", "app", "bidi-component", "favicon.png",
                                "manifest.json", "robots.txt"})


def is_unknown(path: str) -> bool:
    """True for a path that is neither a page (nor the root) nor under one of Streamlit's own routes."""
    segments = [s for s in path.split("/") if s]
    if not segments:
        return False
    if segments[0] in STREAMLIT_PREFIXES:
        return False
    return len(segments) > 1 or segments[0] not in PAGE_PATHS | {HOME}


def not_found_page(path: str) -> str:
    shown = html.escape("/" + "/".join(s for s in path.split("/") if s)[:MAX_SHOWN_PATH])
    links = "\n".join(f'<li><a href="/{p.url_path}">{html.escape(p.title)}</a></li>' for p in PAGES)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>No such page · Relation Neuron '
            f'Explorer</title><meta name="viewport" content="width=device-width, initial-scale=1"><style>body{{font-'
            f'family:sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#31333f}}code{{background:'
            f'#f0f2f6;padding:0 .3rem}}</style></head><body><h1>No such page</h1><p>There is no page at <code>'
            f'{shown}</code>. The explorer\'s pages:</p><ul>\n{links}\n</ul></body></html>\n')


class UnknownPathAnswer:
    """Answers a browser's page request (GET or HEAD accepting HTML) for an unknown path with not_found_page."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and accepts_html(scope)
                and is_unknown(scope["path"])):
            from starlette.responses import HTMLResponse

            await HTMLResponse(not_found_page(scope["path"]), status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def accepts_html(scope) -> bool:
    """A browser's request for a page (its Accept names HTML), not for an asset or Streamlit's API."""
    return any(name == b"accept" and b"text/html" in value for name, value in scope.get("headers") or [])
