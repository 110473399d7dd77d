"""Relation Neuron Explorer: the Streamlit script. `streamlit run server.py [-- --runs-dir DIR]` serves it (so does
`streamlit run app.py`, without the server's own answer to unknown paths, ui/unknown_paths.py)."""
import argparse
import re
import sys
from urllib.parse import urlparse

import streamlit as st

from core.text import escape_markdown
from ui.page_index import HOME, PAGE_PATHS, PAGES
from ui.warm_imports import warm_once_in_background

UNKNOWN_PATH = re.compile(r"[A-Za-z0-9_-]{1,64}")  # one path segment; a nested path never reaches the script

st.set_page_config(page_title="Relation Neuron Explorer", page_icon=":material/psychology:", layout="wide")


def _runs_dir_argument() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs-dir")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known.runs_dir


if _runs_dir_argument():
    st.session_state["runs_dir_override"] = _runs_dir_argument()


def _requested_path() -> str:
    try:
        return urlparse(st.context.url or "").path.strip("/")
    except Exception:  # outside a browser session (AppTest) there is no URL
        return ""


def _no_such_page() -> None:
    st.title("No such page")
    st.warning(f"There is no page at /{escape_markdown(_requested_path())}. The explorer's pages:", icon=":material/link_off:")
    for page in pages:
        st.page_link(page, label=page.title, icon=page.icon)


def _open_overview() -> None:
    """The app's root: the overview at its own path, so /overview (what links and the README name) is a page."""
    st.switch_page(pages[0], query_params=st.query_params.to_dict())


pages = [st.Page(p.file, title=p.title, icon=p.icon, url_path=p.url_path) for p in PAGES]
requested = _requested_path()
pages.append(st.Page(_open_overview, title="Relation Neuron Explorer", url_path=HOME, default=True,
                     visibility="hidden"))
if requested not in PAGE_PATHS and UNKNOWN_PATH.fullmatch(requested):
    # A hidden page at exactly the unknown path: Streamlit then shows it instead of its "Page not found" dialog.
    pages.append(st.Page(_no_such_page, title="No such page", url_path=requested, visibility="hidden"))
st.sidebar.caption("Relation Neuron Explorer — *On Relation-Specific Neurons in LLMs* (Liu et al. 2025)")
st.navigation(pages).run()
warm_once_in_background()  # after the first page is drawn: the next page's imports are ready
