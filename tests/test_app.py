from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.demo import DEMO_MODEL_DIR, read_prompt
from core.loading import load_causal_lm

APP = str(Path(__file__).resolve().parent.parent / "app.py")

pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")


def test_app_shows_the_models_next_tokens_and_continuation():
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["prompt"] = "The father of Bouzei Hulir is"
    at.run()
    assert not at.exception
    expected = read_prompt(load_causal_lm(DEMO_MODEL_DIR), "The father of Bouzei Hulir is")
    code = at.code[0].value
    assert code == "The father of Bouzei Hulir is" + expected.continuation
    assert " ".join(str(i) for i in expected.continuation_ids) in at.caption[-1].value


def test_app_explains_an_empty_prompt():
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["prompt"] = "   "
    at.run()
    assert not at.exception
    assert "empty" in at.info[0].value
