"""Random hostile query strings on every page of the app (AppTest): never an exception, never an error."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apptest_helpers import PAGES, run_page
from core.demo import DEMO_RUN_DIR

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")
KEYS = ["run", "k", "lang", "rel", "metric", "mode", "layers", "modules", "a", "b", "neuron", "unit", "tk", "prompt",
        "snap", "off", "add", "remove", "tokens", "x"]
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["../../etc/passwd", "'; DROP TABLE scores; --", "-1", "99999999999", "0", "1e9", "nan", "😀",
                     "person_father", "en", "2.gate_proj.5", "0-99", "gate_proj,../x", ",,,", "%00"]),
)
QUERIES = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)


@pytest.mark.parametrize("page", PAGES)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(query=QUERIES)
def test_random_links_only_give_notices(page, query):
    at = run_page(page, {k: v.replace("\x00", "") for k, v in query.items()})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
