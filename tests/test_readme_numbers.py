"""The README quotes each committed run's figures exactly as `python -m precompute summary --markdown` prints
them, its prose quotes no figure of its own after such a block, and the design targets are judged by one
function."""
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from core.paths import DEMO_RUN_DIR
from precompute.summary import markdown_summary, target_checks

from conftest import ROOT

BLOCK = re.compile(r"<!-- summary: python -m precompute summary(?: --run (?P<run>\S+))? --markdown -->\n"
                   r"(?P<block>.*?)<!-- /summary -->(?P<tail>.*?)(?=\n## |\n### |\Z)", re.S)


def readme_blocks() -> list[tuple[Path, str, str]]:
    """(run folder, block, the prose after the block up to the next section) for each generated block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(ROOT / m["run"] if m["run"] else DEMO_RUN_DIR, m["block"].strip(), m["tail"])
            for m in BLOCK.finditer(text)]


def test_the_readme_has_the_demo_block_and_the_lre12_block():
    runs = [run.relative_to(ROOT).as_posix() for run, _, _ in readme_blocks()]
    assert runs == ["data/runs/lre12", "data/runs/demo"]


@pytest.mark.parametrize("index", [0, 1])
def test_each_readme_block_is_the_summary_of_its_committed_run(index):
    run, block, _ = readme_blocks()[index]
    if not (run / "manifest.json").exists():
        pytest.skip(f"{run} not built")
    assert block == markdown_summary(run).strip()


def test_the_prose_after_each_block_quotes_no_number_of_its_own():
    for run, _, prose in readme_blocks():
        figures = re.findall(r"\d+\.\d+|\d+x\b|\d+ of \d+", prose)
        assert not figures, f"figures after the {run} block: {figures}"


def relations(own: list[float], beats: list[bool], own_lp: float, random_lp: float) -> SimpleNamespace:
    return SimpleNamespace(table=pd.DataFrame({"own_drop": own, "beats_worst_random": beats,
                                               "own_first_lp_drop": own_lp, "random_first_lp_drop": random_lp}))


def test_targets_are_met_only_at_their_thresholds():
    met = target_checks(relations([30.0] * 12, [True] * 10 + [False] * 2, 1.25, 0.125))
    assert [t.met for t in met] == [True, True, True]
    assert [t.achieved for t in met] == ["30.0p", "10 of 12", "10.0x"]
    missed = target_checks(relations([29.9] * 12, [True] * 9 + [False] * 3, 1.2, 0.125))
    assert [t.met for t in missed] == [False, False, False]
    assert missed[1].required == "in >= 10 of 12"
    # six relations need five (10/12 of 6)
    assert target_checks(relations([40.0] * 6, [True] * 5 + [False], 1.0, 0.01))[1].met
