"""The entry point: st.navigation with every page at a stable URL path, the overview by default."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.paths import DEMO_RUN_DIR

APP = str(Path(__file__).resolve().parent.parent / "app.py")
pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


def test_app_opens_on_the_overview_of_the_demo_run():
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Overview"
    assert at.sidebar.selectbox[0].value == "demo"


def test_an_empty_runs_dir_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("RELATION_NEURONS_RUNS_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception
    assert "No precomputed run was found" in at.error[0].value


def test_a_run_added_while_the_server_runs_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("RELATION_NEURONS_RUNS_DIR", str(tmp_path))
    (tmp_path / "demo").symlink_to(DEMO_RUN_DIR, target_is_directory=True)
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert at.sidebar.selectbox[0].options == ["demo"]
    (tmp_path / "later").symlink_to(DEMO_RUN_DIR, target_is_directory=True)  # a run written after the start
    at.query_params["run"] = "later"
    at.run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    assert at.sidebar.selectbox[0].options == ["demo", "later"]
    assert at.sidebar.selectbox[0].value == "later"


def test_the_streamlit_internal_behind_the_deep_link_workaround_still_exists():
    """ui.run._leave_legacy_multipage_mode flips PagesManager.uses_pages_directory, a private flag: if a Streamlit
    upgrade renames it or stops setting it for a pages/ folder, this fails and the workaround must be revisited."""
    import inspect

    from streamlit.commands import navigation
    from streamlit.runtime.pages_manager import PagesManager

    saved = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = None
        PagesManager(APP)
        assert PagesManager.uses_pages_directory is True  # a pages/ folder next to app.py starts the legacy mode
    finally:
        PagesManager.uses_pages_directory = saved
    assert "PagesManager.uses_pages_directory = False" in inspect.getsource(navigation)  # what st.navigation does


def test_model_paths_of_runs_made_in_the_repository_resolve_against_it(tmp_path):
    from core.paths import REPO_ROOT
    from core.runs import model_path

    assert model_path("data/models/demo") == REPO_ROOT / "data" / "models" / "demo"
    assert model_path(str(tmp_path)) == tmp_path
    assert str(model_path("meta-llama/Llama-2-7b-hf")) == "meta-llama/Llama-2-7b-hf"  # a cached hub id, as written
