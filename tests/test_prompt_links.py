"""Prompts in links: short ones readable, long ones compressed into the link (`pz`), snapshot files only where a
prompt does not fit, capped and safe under concurrent saves; hostile `pz` values give a notice, never an error."""
import base64
import os
import random
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core.prompt_links as prompt_links
from core.parquet_io import read_parquet, remove_dead_temporaries, write_bytes_atomic, write_parquet_atomic
from core.prompt_links import (MAX_PROMPT_CHARS, MAX_PZ_CHARS, MAX_URL_PROMPT, PROMPT_KEYS, load_snapshot, pick_prompt,
                                prompt_params, save_snapshot)
from core.share_state import Notices

# Text without lone surrogates (what a text box or a URL can hold), past every limit.
UNICODE = st.characters(blacklist_categories=("Cs",))
PROMPTS = st.one_of(
    st.text(UNICODE, max_size=MAX_PROMPT_CHARS + 300),
    st.text(st.sampled_from("😀🎉👍🏽漢字かなéß ab\n<>[]()!"), min_size=MAX_URL_PROMPT - 5, max_size=MAX_PROMPT_CHARS + 50),
    st.text(st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
            min_size=1500, max_size=MAX_PROMPT_CHARS + 10),
)


def random_prompt(rng: random.Random, n: int = MAX_PROMPT_CHARS) -> str:
    """Characters from all of Unicode at random: compresses too badly for the link, so it needs a snapshot."""
    chars = []
    while len(chars) < n:
        c = rng.randint(0x20, 0x10FFFF)
        if not 0xD800 <= c <= 0xDFFF:
            chars.append(chr(c))
    return "".join(chars)


def test_every_prompt_key_is_listed():
    assert set(PROMPT_KEYS) == {"prompt", "pz", "snap"}


def test_short_prompt_is_readable_and_long_ones_compressed_without_a_file(tmp_path):
    assert prompt_params("The father of Ada is", tmp_path) == {"prompt": "The father of Ada is"}
    long_prompt = "The father of Bouzei Hulir is " * 60
    params = prompt_params(long_prompt, tmp_path)
    assert list(params) == ["pz"] and len(params["pz"]) < 200
    assert pick_prompt(params, tmp_path, "default", Notices()) == long_prompt
    emoji = "".join(chr(random.Random(1).randint(0x1F300, 0x1FAFF)) for _ in range(MAX_PROMPT_CHARS))
    assert list(prompt_params(emoji, tmp_path)) == ["pz"]  # 2,000 random emoji fit in the link
    assert not list(tmp_path.iterdir())  # no server state for any of them


def test_a_prompt_that_cannot_fit_is_a_snapshot(tmp_path):
    prompt = random_prompt(random.Random(0))
    params = prompt_params(prompt, tmp_path)
    assert list(params) == ["snap"]
    assert pick_prompt(params, tmp_path, "default", Notices()) == prompt


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(prompt=PROMPTS)
def test_round_trip(tmp_path, prompt):
    params = prompt_params(prompt, tmp_path)
    assert len(params) == 1 and set(params) <= set(PROMPT_KEYS)
    assert all(len(v) <= max(MAX_URL_PROMPT, MAX_PZ_CHARS) for k, v in params.items() if k != "prompt")
    parsed = Notices()
    assert pick_prompt(params, tmp_path, "default", parsed) == prompt[:MAX_PROMPT_CHARS]  # the documented cut
    assert not parsed.notices


def zlib_b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(zlib.compress(data, 9)).decode().rstrip("=")


HOSTILE_PZ = [
    "", "!!!", "a", "abc=", "A" * (MAX_PZ_CHARS + 1), "../../etc/passwd", "%00",
    base64.urlsafe_b64encode(os.urandom(300)).decode(),  # base64 of random bytes: not zlib
    zlib_b64(b"\xff\xfe\xfd" * 40),  # zlib of bytes that are not UTF-8
    zlib_b64(b"x" * (4 * MAX_PROMPT_CHARS + 1)),  # inflates past any prompt
    zlib_b64(b"hello")[:-3],  # truncated stream
    zlib_b64(b"hello") + "AAAA",  # trailing bytes
]


@pytest.mark.parametrize("pz", HOSTILE_PZ, ids=range(len(HOSTILE_PZ)))
def test_hostile_pz_gives_a_notice_and_the_default(tmp_path, pz):
    parsed = Notices()
    assert pick_prompt({"pz": pz}, tmp_path, "default", parsed) in ("default",) or not pz
    if pz:
        assert parsed.notices


def test_zip_bomb_stays_bounded(tmp_path):
    bomb = zlib_b64(b"\0" * (10 << 20))  # 10 MB of zeros, ~13 KB in the link
    tracemalloc.start()
    try:
        for pz in (bomb, bomb[:MAX_PZ_CHARS]):
            parsed = Notices()
            assert pick_prompt({"pz": pz}, tmp_path, "default", parsed) == "default" and parsed.notices
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # never inflated to 10 MB


def test_old_snapshot_links_still_load(tmp_path):
    prompt = "An old long prompt " * 30
    (tmp_path / f"{prompt_links.snapshot_id(prompt)}.json").write_text(f'{{"prompt": "{prompt}"}}')
    assert pick_prompt({"snap": prompt_links.snapshot_id(prompt)}, tmp_path, "default", Notices()) == prompt


def hammer(work, jobs: int = 8, each: int = 200) -> list[BaseException]:
    errors = []

    def run(j):
        for i in range(each):
            try:
                work(j, i)
            except BaseException as exc:  # noqa: BLE001 - counted, then asserted to be none
                errors.append(exc)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run, range(jobs)))
    return errors


def test_concurrent_saves_of_one_prompt_all_succeed_and_read_back(tmp_path):
    prompt = random_prompt(random.Random(2))

    def save_and_read(j, i):
        sid = save_snapshot(prompt, tmp_path)
        assert load_snapshot(sid, tmp_path) == prompt

    assert hammer(save_and_read) == []
    assert [p.name for p in tmp_path.iterdir()] == [f"{prompt_links.snapshot_id(prompt)}.json"]


def test_concurrent_saves_of_different_prompts_all_read_back(tmp_path):
    prompts = [random_prompt(random.Random(j), 400) for j in range(8)]

    def save_and_read(j, i):
        prompt = f"{i} {prompts[j]}"
        assert load_snapshot(save_snapshot(prompt, tmp_path), tmp_path) == prompt

    assert hammer(save_and_read) == []
    assert not list(tmp_path.glob(".*.tmp"))


def test_concurrent_atomic_writes_of_one_file(tmp_path):
    """write_bytes_atomic from 8 threads at once: every write succeeds, the file is always one writer's whole."""
    target = tmp_path / "state.json"
    payloads = [bytes([65 + j]) * 5000 for j in range(8)]

    def write_and_read(j, i):
        write_bytes_atomic(payloads[j], target)
        assert target.read_bytes() in payloads

    assert hammer(write_and_read, each=100) == []
    assert not list(tmp_path.glob(".*.tmp"))


def test_snapshots_are_capped_oldest_first(tmp_path, monkeypatch):
    monkeypatch.setattr(prompt_links, "MAX_SNAPSHOTS", 20)
    monkeypatch.setattr(prompt_links, "MAX_SNAPSHOT_BYTES", 60_000)
    rng = random.Random(3)
    sids = []
    for i in range(60):
        sids.append(save_snapshot(random_prompt(rng, 400 + i), tmp_path))
        os.utime(tmp_path / f"{sids[-1]}.json", ns=(i * 10**9, i * 10**9))  # a clear order, 1 s apart
    files = list(tmp_path.glob("*.json"))
    assert len(files) <= 20 and sum(f.stat().st_size for f in files) <= 60_000
    assert load_snapshot(sids[-1], tmp_path) is not None and load_snapshot(sids[0], tmp_path) is None
    kept = {f.stem for f in files}
    assert kept == set(sids[-len(kept):])  # the newest survive


def test_resaving_a_snapshot_keeps_it_from_eviction(tmp_path, monkeypatch):
    monkeypatch.setattr(prompt_links, "MAX_SNAPSHOTS", 5)
    rng = random.Random(4)
    first = random_prompt(rng, 500)
    sid = save_snapshot(first, tmp_path)
    os.utime(tmp_path / f"{sid}.json", ns=(0, 0))
    for _ in range(10):
        save_snapshot(first, tmp_path)  # used again: most recent
        save_snapshot(random_prompt(rng, 500), tmp_path)
    assert load_snapshot(sid, tmp_path) == first


def test_failed_and_killed_writers_leave_no_temporary_files(tmp_path):
    import pandas as pd

    with pytest.raises(Exception):
        write_parquet_atomic(pd.DataFrame({"a": [object()]}), tmp_path / "bad.parquet")
    assert list(tmp_path.iterdir()) == []
    write_parquet_atomic(pd.DataFrame({"a": [1, 2]}), tmp_path / "good.parquet")
    assert read_parquet(tmp_path / "good.parquet").a.tolist() == [1, 2]
    dead = tmp_path / ".good.parquet.999999999-1-0123456789ab.tmp"  # a writer killed mid-write (no such pid)
    live = tmp_path / f".good.parquet.{os.getpid()}-1-0123456789ab.tmp"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    assert remove_dead_temporaries(tmp_path) == 1
    assert not dead.exists() and live.exists()
