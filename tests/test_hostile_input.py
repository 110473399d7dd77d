"""Hostile input everywhere a user can type or link: property-based, 1,000 examples per property."""
import base64
import string
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.paths import DEMO_RUN_DIR
from core.lab import MAX_PROMPT_CHARS, LabInputError, check_prompt
from core.manifest import neuron_space, read_manifest
from core.parquet_io import partition_dir
from core.prompt_links import load_snapshot, MAX_PZ_CHARS, MAX_URL_PROMPT, pick_prompt, PROMPT_KEYS, prompt_params
from core.share_state import Notices, parse_neuron, pick_int, pick_many, pick_neurons, pick_one, pick_range

HOSTILE = ["../../etc/passwd", "'; DROP TABLE scores; --", "\x00", "😀" * 50, "漢字かな", "<script>alert(1)</script>",
           "%2e%2e%2f", "1 OR 1=1", "\u202e", "C:\\Windows", "~root", "", " ", "\n\t",
           "![](http://x/y)", "[a](http://x)", "<img src=x onerror=alert(1)>", "**bold** _it_ `code` $x^2$",
           "<a href='javascript:alert(1)'>x</a>", "&lt;b&gt;", "| a | b |\n|---|---|", "# heading", "> quote",
           ":material/link:", "\\[x\\]", "😀" * (MAX_PROMPT_CHARS + 1), "a" * (MAX_URL_PROMPT + 1)]
MULTIBYTE = st.sampled_from("😀🎉👍🏽漢字かなéßЖ\u202e\u200b<>[]()!*_`#|\\ a\n")
texts = st.one_of(
    st.text(max_size=300), st.sampled_from(HOSTILE), st.text(alphabet=string.printable, max_size=50),
    st.text(MULTIBYTE, min_size=MAX_URL_PROMPT - 2, max_size=MAX_URL_PROMPT + 2),  # around the link's plain cut
    st.text(MULTIBYTE, min_size=MAX_PROMPT_CHARS - 2, max_size=MAX_PROMPT_CHARS + 300),  # past the prompt limit
    st.text(min_size=MAX_PROMPT_CHARS - 2, max_size=MAX_PROMPT_CHARS + 300),
)
many = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RELATIONS = ["person_father", "person_mother", "company_ceo"]

demo = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


@many
@given(texts)
def test_pick_one_only_returns_whitelisted_values(raw):
    parsed = Notices()
    value = pick_one({"rel": raw}, "rel", RELATIONS, RELATIONS[0], parsed, "relation")
    assert value in RELATIONS
    assert (raw in RELATIONS or raw == "") or parsed.notices


@many
@given(texts)
def test_pick_many_only_returns_whitelisted_values(raw):
    parsed = Notices()
    values = pick_many({"off": raw}, "off", RELATIONS, [], parsed, "relation")
    assert set(values) <= set(RELATIONS) and len(values) == len(set(values))


@many
@given(st.one_of(texts, st.integers(-10**30, 10**30).map(str)))
def test_pick_int_stays_in_range(raw):
    parsed = Notices()
    value = pick_int({"k": raw}, "k", 1, 3584, 108, parsed, "k")
    assert 1 <= value <= 3584
    try:
        given_value = int(str(raw).strip())
    except ValueError:
        given_value = None
    if given_value is not None and not 1 <= given_value <= 3584:
        assert parsed.notices and value in (1, 3584)
    elif given_value is not None:
        assert value == given_value


@many
@given(texts)
def test_pick_range_is_ordered_and_inside(raw):
    lo, hi = pick_range({"layers": raw}, "layers", 0, 3, Notices(), "layers")
    assert 0 <= lo <= hi <= 3


@demo
@many
@given(texts)
def test_neuron_ids_are_parsed_or_refused_with_a_reason(raw):
    space = neuron_space(read_manifest(DEMO_RUN_DIR))
    try:
        neuron = parse_neuron(raw, space)
    except ValueError as exc:
        assert str(exc)
    else:
        assert space.contains(neuron)
    parsed = Notices()
    assert all(space.contains(n) for n in pick_neurons({"add": raw}, "add", space, parsed))


@many
@given(texts)
def test_prompts_are_checked_with_a_reason(raw):
    try:
        assert check_prompt(raw) == raw and len(raw) <= MAX_PROMPT_CHARS
    except LabInputError as exc:
        assert "empty" in str(exc) or "limit" in str(exc)


@many
@given(st.text(max_size=5000))
def test_prompt_from_a_link_is_cut_to_the_limit(raw):
    parsed = Notices()
    prompt = pick_prompt({"prompt": raw}, Path("/nonexistent"), "default", parsed)
    assert len(prompt) <= MAX_PROMPT_CHARS
    assert (len(raw) <= MAX_PROMPT_CHARS) or parsed.notices


def test_the_strategies_reach_past_every_limit():
    """Each limit these properties claim to test is crossed by the values they draw."""
    from hypothesis import find

    for limit in (MAX_URL_PROMPT, MAX_PROMPT_CHARS):
        assert len(find(texts, lambda t, n=limit: len(t) > n)) > limit
    assert "](" in find(texts, lambda t: "](" in t) and any(ord(c) > 0xFFFF for c in find(texts, lambda t: max(
        map(ord, t), default=0) > 0xFFFF))


@many
@given(texts)
def test_a_prompt_link_round_trips_or_is_cut_with_the_limit(tmp_path_factory, raw):
    folder = tmp_path_factory.getbasetemp() / "snapshots"
    params = prompt_params(raw, folder)
    assert len(params) == 1 and set(params) <= set(PROMPT_KEYS) and len(next(iter(params.values()))) <= MAX_PZ_CHARS
    parsed = Notices()
    prompt = pick_prompt(params, folder, "default", parsed)
    text = raw.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate is not text: it travels as '?'
    assert prompt == text[:MAX_PROMPT_CHARS] and not parsed.notices


PZ_VALUES = st.one_of(
    texts, st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=MAX_PZ_CHARS + 10),
    st.binary(max_size=5000).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.binary(max_size=5000).map(lambda b: base64.urlsafe_b64encode(zlib.compress(b)).decode()),
    st.integers(0, 1 << 22).map(lambda n: base64.urlsafe_b64encode(zlib.compress(b"\0" * n, 9)).decode()),
)


@many
@given(PZ_VALUES)
def test_compressed_prompt_from_a_link_is_a_prompt_or_a_notice(raw):
    parsed = Notices()
    prompt = pick_prompt({"pz": raw}, Path("/nonexistent"), "default", parsed)
    assert isinstance(prompt, str) and len(prompt) <= MAX_PROMPT_CHARS
    assert prompt != "default" or parsed.notices or not raw


@many
@given(texts)
def test_snapshot_ids_never_name_a_file_outside_the_folder(raw):
    assert load_snapshot(raw, Path("/nonexistent-folder")) is None
    parsed = Notices()
    assert pick_prompt({"snap": raw}, Path("/nonexistent-folder"), "default", parsed) == "default"


@many
@given(texts)
def test_partition_values_cannot_escape_the_root(raw):
    root = Path("/runs/demo/scores")
    try:
        path = partition_dir(root, relation=raw)
    except ValueError:
        return
    assert path.parent == root and path.name == f"relation={raw}"
    assert ".." != raw and "/" not in raw


@demo
@many
@given(texts, texts)
def test_store_queries_bind_user_values(relation, language):

    store = _store()
    top = store.top_neurons(relation, language, 10)
    assert top.empty or (relation in store.relations and language in store.languages)
    assert store.neuron_top_prompts(3, language).empty or language in store.languages


_cached = {}


def _store():
    from core.store import RunStore

    if "s" not in _cached:
        _cached["s"] = RunStore(DEMO_RUN_DIR)
    return _cached["s"]


@demo
def test_store_has_no_file_access_left():
    import duckdb

    store = _store()
    with pytest.raises(duckdb.Error):
        store.query("SELECT * FROM read_parquet('/etc/passwd')")
    with pytest.raises(duckdb.Error):
        store.query("SET enable_external_access = true")


@pytest.fixture(scope="module", autouse=True)
def _close_store():
    yield
    if "s" in _cached:
        _cached.pop("s").close()


def test_a_k_that_was_not_precomputed_becomes_the_nearest_with_a_notice():
    from core.share_state import Notices, pick_precomputed

    sweep = [10, 36, 108, 358]
    for raw, expected, noted in [("108", 108, False), ("20", 10, True), ("23", 10, True), ("24", 36, True),
                                 ("5", 10, True), ("9999", 358, True), ("abc", 108, True), (None, 108, False)]:
        parsed = Notices()
        assert pick_precomputed({"k": raw} if raw else {}, "k", sweep, 108, parsed, "k") == expected, raw
        assert bool(parsed.notices) == noted, (raw, parsed.notices)


def test_a_huge_number_in_a_link_is_named_briefly():
    from core.share_state import Notices, pick_int

    parsed = Notices()
    assert pick_int({"k": "9" * 4000}, "k", 1, 100, 50, parsed, "k") == 100
    assert len(parsed.notices) == 1 and len(parsed.notices[0]) < 120
