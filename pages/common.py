"""What every page shares: the chosen run, its store and model (cached once per server), view state in the URL,
notices, downloads."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import streamlit as st

from core.demo import REPO_ROOT
from core.loading import ModelLoadError, load_causal_lm
from core.manifest import ManifestError
from core.runs import DEFAULT_RUN, discover_runs, runs_dir
from core.share_state import Parsed, pick_one
from core.store import RunDataError, RunStore
from core.text import escape_markdown

SNAPSHOT_DIR = Path(os.environ.get("RELATION_NEURONS_SNAPSHOTS", REPO_ROOT / ".snapshots"))
_WRITTEN = "_url_written"  # session state: what this session last wrote to the URL, per control


@st.cache_resource(show_spinner="Opening the run's tables (the first opening of a run indexes its Parquet into a "
                                 "DuckDB file next to it: a few seconds for the demo run, about 30 s for a 7B run)…")
def store_for(run_path: str) -> RunStore:
    return RunStore(Path(run_path))


SMALL_MODEL_PARAMETERS = 100_000_000


@st.cache_resource(show_spinner="Loading the model of this run…")
def model_for(source: str, fingerprint: str):
    import torch

    path = Path(source)
    if not path.is_absolute() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path  # manifests of runs made in the repo name the model relative to it
    lm = load_causal_lm(path)
    if sum(p.numel() for p in lm.model.parameters()) < SMALL_MODEL_PARAMETERS:
        # Sessions run on threads of their own; for a small model on CPU, one intra-op thread per request is
        # fastest (the demo model: 25 ms for 20 tokens, against 50-700 ms with 2 threads on a busy 2-core
        # machine, where the threads wait for each other).
        torch.set_num_threads(1)
    return lm


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
        self.parsed = Parsed()
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


def notice(text: str, kind: str = "warning", icon: str | None = None) -> None:
    """A message that may hold user text (a link's value, a file's content, an exception): shown as plain text."""
    getattr(st, kind)(escape_markdown(text), icon=icon)


def show_notices(parsed: Parsed) -> None:
    for note in parsed.notices:
        notice(note, icon=":material/link:")


def choose_run() -> tuple[str, RunStore] | None:
    """The sidebar's run picker; the run comes from the URL's `run` when it names a known run. The runs folder
    is listed on every script run (a directory listing), so runs added while the server runs appear."""
    directory = str(runs_dir(st.session_state.get("runs_dir_override")))
    runs = discover_runs(Path(directory))
    if not runs:
        notice(f"No precomputed run was found under {directory}. "
               f"Run python -m precompute run ... --out {directory}/NAME", "error")
        return None
    names = list(runs)
    state = ViewState("app")
    wanted = pick_one(state.url, "run", names, DEFAULT_RUN if DEFAULT_RUN in names else names[0], state.parsed, "run")
    state.show_notices()
    name = st.sidebar.selectbox("Run", names, key=state.bind("run", wanted, lambda v: v in names))
    state.publish({"run": name})
    try:
        store = store_for(str(runs[name].path))
    except ManifestError as exc:
        notice(str(exc), "error")
        return None
    m = store.manifest
    with st.sidebar.expander("Run manifest", expanded=False):
        st.markdown(
            f"**model** `{m.model['source']}` ({m.model['model_type']}, {m.neurons['num_layers']} layers)  \n"
            f"**neurons** {m.neurons['total']:,} ({m.neurons['definition']})  \n"
            f"**k** {m.k:,} ({m.k / m.neurons['total']:.2%}); sweep {', '.join(f'{k:,}' for k in m.k_sweep)}  \n"
            f"**pooling** {m.options['pooling']}, negatives x{m.options['negatives_ratio']:g}, seed {m.options['seed']}  \n"
            f"**languages** {', '.join(m.corpus['languages'])}  \n**status** {m.status}"
            + ("  \n**synthetic data**: not from a model" if m.synthetic else ""))
        st.json(m.options, expanded=False)
    if m.synthetic:
        st.sidebar.warning("Synthetic run: drawn at random with the shape of a real run, for load testing. "
                           "No number here is a measurement.", icon=":material/science:")
    for table, message in store.missing.items():
        st.sidebar.warning(escape_markdown(f"{table}: {message}"))
    return name, store


def run_model(store: RunStore):
    """The run's model for the lab, or None with a visible reason."""
    m = store.manifest
    if m.synthetic:
        st.info("This run is synthetic: its numbers were drawn to load-test the explorer, and no model belongs to "
                "it. Pick a run made by `python -m precompute run` to use the lab.", icon=":material/science:")
        return None
    try:
        return model_for(m.model["source"], m.model["fingerprint"])
    except ModelLoadError as exc:
        notice(f"The model of this run could not be loaded: {exc}", "error")
        return None


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
    """The view's URL (its state is all in the query string), in a code block with a copy button."""
    from urllib.parse import urlencode

    try:
        base = (st.context.url or "").split("?")[0]
    except Exception:  # outside a browser session (AppTest) there is no URL
        base = ""
    with st.expander("Copy link to this view", icon=":material/link:"):
        st.code(f"{base}?{urlencode(params())}", language=None)


def _leave_legacy_multipage_mode() -> None:
    """A `pages/` folder makes Streamlit start in its legacy multipage mode, in which a deep link as a server's
    first request runs the page file alone (without app.py's st.navigation) and lists every file of the folder
    as a page. st.navigation clears the same flag; clear it and rerun so app.py routes from then on."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def start_page(title: str) -> tuple[str, RunStore]:
    """Title, run picker and store: the same first lines of every page; stops the page when no run is usable."""
    _leave_legacy_multipage_mode()
    st.title(title)
    chosen = choose_run()
    if chosen is None:
        st.stop()
    return chosen
