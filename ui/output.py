"""What pages show besides charts: notices that keep user text as text, data-fault guards, downloads, the link."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.share_state import Notices
from core.store import RunDataError
from core.text import escape_markdown


def notice(text: str, kind: str = "warning", icon: str | None = None) -> None:
    """A message that may hold user text (a link's value, a file's content, an exception): shown as plain text."""
    getattr(st, kind)(escape_markdown(text), icon=icon)


def show_notices(parsed: Notices) -> None:
    for note in parsed.notices:
        notice(note, icon=":material/link:")


def guarded(fn):
    """Draw a section; a run's data fault becomes a message, the rest of the page keeps working."""
    try:
        fn()
    except RunDataError as exc:
        notice(str(exc), "error")


def download(df: pd.DataFrame, name: str, key: str) -> None:
    left, right = st.columns(2)
    left.download_button("Download CSV", df.to_csv(index=False).encode(), f"{name}.csv", "text/csv", key=f"{key}_csv")
    right.download_button("Download Parquet", df.to_parquet(index=False), f"{name}.parquet",
                          "application/octet-stream", key=f"{key}_pq")


def copy_link() -> None:
    """The view's URL (its state is all in the query string), as a link and as text to select. Markdown rather
    than st.code: the code block's highlighter is 1.5 MB of script, and every page's first chart waited for it
    (0.8 s on the overview, bench/browser_speed.py)."""
    from urllib.parse import quote, urlencode

    try:
        base = quote((st.context.url or "").split("?")[0], safe=":/%")
    except Exception:  # outside a browser session (AppTest) there is no URL
        base = ""
    link = f"{base}?{urlencode(st.query_params.to_dict())}"  # percent-encoded: no markdown syntax survives
    with st.expander("Link to this view", icon=":material/link:"):
        st.markdown(f"[Open this view]({link}) (right-click to copy it) or select the address:\n\n`{link}`")


