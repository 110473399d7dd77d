"""A page's view state in the URL: every control keyed, seeded from the link, written back on change."""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from core.share_state import Notices
from ui.output import show_notices

_WRITTEN = "_url_written"  # session state: what this session last wrote to the URL, per control


def params() -> dict[str, str]:
    return {k: st.query_params.get(k) for k in st.query_params.keys()}


class ViewState:
    """A page's controls, each mirrored in URL query parameters.

    A control's value comes from the URL when the page is first drawn in this session, and again whenever
    the URL changed since this session last wrote it (a link opened, back or forward in the browser);
    otherwise the control keeps what the user chose. Every control has a key, so Streamlit sees the same
    widget after each change and no change is lost. `publish` writes the whole view back in one step
    (one browser history entry per change).
    """

    def __init__(self, page: str):
        self.page = page
        self.url = params()
        self.parsed = Notices()
        self._url_keys: dict[str, tuple[str, ...]] = {}

    def key(self, name: str) -> str:
        return f"{self.page}.{name}"

    def bind(self, name: str, from_url: Any, valid: Callable[[Any], bool] = lambda _: True,
             url_keys: tuple[str, ...] | None = None) -> str:
        """The widget key of control `name`, its state seeded with `from_url` when the URL is the newer.
        `url_keys`: the query parameters that carry it (default: its name)."""
        key = self.key(name)
        self._url_keys[name] = url_keys or (name,)
        written = st.session_state.setdefault(_WRITTEN, {})
        url_changed = key in written and written[key] != self._signature(name, self.url)
        if key not in st.session_state or url_changed or not valid(st.session_state[key]):
            st.session_state[key] = from_url
        return key

    def set(self, name: str, value: Any) -> None:
        """Change a bound control's value before it is drawn (e.g. from a chart click)."""
        st.session_state[self.key(name)] = value

    def publish(self, values: dict[str, object]) -> None:
        """Write these query parameters (None or "" removes one) and remember what each bound control now says
        in the URL."""
        wanted = dict(self.url)
        for name, value in values.items():
            text = "" if value is None else str(value)
            if text:
                wanted[name] = text
            else:
                wanted.pop(name, None)
        written = st.session_state.setdefault(_WRITTEN, {})
        for name in self._url_keys:
            written[self.key(name)] = self._signature(name, wanted)
        if wanted != self.url:
            st.query_params.from_dict(wanted)
            self.url = wanted

    def _signature(self, name: str, url: dict) -> tuple:
        return tuple(url.get(k) for k in self._url_keys[name])

    def show_notices(self) -> None:
        show_notices(self.parsed)


