"""The run a page shows and its model: the sidebar's run picker, one store and one model per server."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from core.paths import REPO_ROOT
from core.loading import ModelLoadError
from core.placement import Placement, PlacementError, process_placement
from core.manifest import ManifestError
from core.runs import DEFAULT_RUN, discover_runs, model_path, runs_dir
from core.share_state import pick_one
from core.store import RunStore
from core.text import escape_markdown
from ui.output import notice
from ui.state import ViewState

SNAPSHOT_DIR = Path(os.environ.get("RELATION_NEURONS_SNAPSHOTS", REPO_ROOT / ".snapshots"))


@st.cache_resource(show_spinner="Opening the run's tables (the first opening of a run indexes its Parquet into a "
                                 "DuckDB file next to it: a few seconds for the demo run, about 30 s for a 7B run)…")
def store_for(run_path: str) -> RunStore:
    return RunStore(Path(run_path))


@st.cache_resource
def model_cache():
    """One per server (core.serving.ModelCache): every session's lab reads the same loaded models. Imported
    here, not at the top: the data pages never load torch."""
    from core.serving import ModelCache

    return ModelCache()


@st.cache_resource
def server_placement() -> Placement | PlacementError:
    """`--device`/`--dtype` (or the environment), read once per server; a bad value is kept to be shown."""
    try:
        return process_placement()
    except PlacementError as exc:
        return exc


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
            f"**facts** `{m.corpus.get('path', '?')}`, {len(m.corpus.get('relations', [])):,} relations  \n"
            f"**neurons** {m.neurons['total']:,} ({m.neurons['definition']})  \n"
            f"**k** {m.k:,} ({m.k / m.neurons['total']:.2%}); sweep {', '.join(f'{k:,}' for k in m.k_sweep)}  \n"
            f"**pooling** {m.options['pooling']}, negatives x{m.options['negatives_ratio']:g}, seed {m.options['seed']}  \n"
            f"**languages** {', '.join(m.corpus['languages'])}  \n**status** {m.status}"
            + ("  \n**synthetic data**: not from a model" if m.synthetic else ""))
        # Markdown, not st.json: the JSON viewer's script delayed every page's first chart.
        st.markdown("**options**  \n" + "  \n".join(escape_markdown(f"{key}: {value}")
                                                   for key, value in sorted(m.options.items())))
    if m.synthetic:
        st.sidebar.warning("Synthetic run: drawn at random with the shape of a real run, for load testing. "
                           "No number here is a measurement.", icon=":material/science:")
    for table, message in store.problems.items():
        st.sidebar.warning(escape_markdown(f"{table}: {message}"))
    return name, store


def run_model(store: RunStore):
    """The run's core.serving.ServedModel for the lab, loaded where the server's placement says, or None with a
    visible reason."""
    from core.serving import load_served, weights_bytes

    m = store.manifest
    if m.synthetic:
        st.info("This run is synthetic: its numbers were drawn to load-test the explorer, and no model belongs to "
                "it. Pick a run made by `python -m precompute run` to use the lab.", icon=":material/science:")
        return None
    placement = server_placement()
    if isinstance(placement, PlacementError):
        notice(f"The app's model placement is not usable: {placement}", "error")
        return None
    cache = model_cache()
    key = (m.model["source"], m.model["fingerprint"], placement)
    try:
        served = cache.loaded(key)
        if served is None:
            path = model_path(m.model["source"])
            size = weights_bytes(path)
            with st.spinner(f"Loading the model of this run ({size / 2**20:,.0f} MiB of weights) on "
                            f"{placement.device} in {placement.dtype}…"):
                served = cache.get(key, size, lambda: load_served(path, placement))
    except ModelLoadError as exc:
        notice(f"The model of this run could not be loaded: {exc}", "error")
        return None
    st.sidebar.caption(f"Model on {served.where} in {placement.dtype} ({placement.chosen_by}): "
                       f"{served.memory_bytes / 2**20:,.0f} MiB")
    return served


def _leave_legacy_multipage_mode() -> None:
    """A `pages/` folder makes Streamlit start in its legacy multipage mode, in which a deep link as a server's
    first request runs the page file alone (without app.py's st.navigation) and lists every file of the folder
    as a page. No setting turns that off, and the folder's name is the design's; st.navigation clears the same
    private flag, so clear it and rerun and app.py routes from then on. tests/test_app.py fails loudly if the
    flag changes in a Streamlit upgrade."""
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
