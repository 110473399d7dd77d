"""The entry point: st.navigation with every page at a stable URL path, the overview by default."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.demo import DEMO_RUN_DIR

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
