"""What every page shares: the chosen run, its store and model (cached once per server), URL state, downloads."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from core.demo import REPO_ROOT
from core.loading import ModelLoadError, load_causal_lm
from core.manifest import ManifestError
from core.runs import DEFAULT_RUN, discover_runs, runs_dir
from core.share_state import Parsed, pick_one
from core.store import RunDataError, RunStore

SNAPSHOT_DIR = Path(os.environ.get("RELATION_NEURONS_SNAPSHOTS", REPO_ROOT / ".snapshots"))


@st.cache_resource(show_spinner=False)
def available_runs(directory: str) -> dict:
    return discover_runs(Path(directory))


@st.cache_resource(show_spinner="Loading the run's tables (the first opening indexes them into a DuckDB file: about 30 s for a 7B run)…")
def store_for(run_path: str) -> RunStore:
    return RunStore(Path(run_path))


@st.cache_resource(show_spinner="Loading the model of this run…")
def model_for(source: str, fingerprint: str):
    path = Path(source)
    if not path.is_absolute() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path  # manifests of runs made in the repo name the model relative to it
    return load_causal_lm(path)


def params() -> dict[str, str]:
    return {k: st.query_params.get(k) for k in st.query_params.keys()}


def set_params(values: dict[str, object]) -> None:
    """Write this view's state to the URL (only what changed, so the browser history stays calm)."""
    for key, value in values.items():
        text = "" if value is None else str(value)
        if text == "":
            if key in st.query_params:
                del st.query_params[key]
        elif st.query_params.get(key) != text:
            st.query_params[key] = text


def choose_run() -> tuple[str, RunStore] | None:
    """The sidebar's run picker; the run comes from the URL's `run` when it names a known run."""
    directory = str(runs_dir(st.session_state.get("runs_dir_override")))
    runs = available_runs(directory)
    if not runs:
        st.error(f"No precomputed run was found under {directory}. Run `python -m precompute run ... --out {directory}/NAME`.")
        return None
    names = list(runs)
    parsed = Parsed()
    wanted = pick_one(params(), "run", names, DEFAULT_RUN if DEFAULT_RUN in names else names[0], parsed, "run")
    for note in parsed.notices:
        st.warning(note)
    name = st.sidebar.selectbox("Run", names, index=names.index(wanted), key="run_select")
    set_params({"run": name})
    try:
        store = store_for(str(runs[name].path))
    except ManifestError as exc:
        st.error(str(exc))
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
        st.sidebar.warning(f"{table}: {message}")
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
        st.error(f"The model of this run could not be loaded: {exc}")
        return None


def show_notices(parsed: Parsed) -> None:
    for note in parsed.notices:
        st.warning(note, icon=":material/link:")


def guarded(fn):
    """Draw a section; a run's data fault becomes a message, the rest of the page keeps working."""
    try:
        fn()
    except RunDataError as exc:
        st.error(str(exc))


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
