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
