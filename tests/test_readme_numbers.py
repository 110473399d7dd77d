"""The README quotes the demo run's figures exactly as `python -m precompute summary --markdown` prints them,
and its prose quotes no figure of its own outside that block."""
import re

import pytest

from core.paths import DEMO_RUN_DIR
from precompute.summary import markdown_summary

from conftest import ROOT

START, END = "<!-- summary: python -m precompute summary --markdown -->", "<!-- /summary -->"

pytestmark = pytest.mark.skipif(not (DEMO_RUN_DIR / "manifest.json").exists(), reason="demo run not built")


def readme_section() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    block, tail = rest.split(END, 1)
    section = tail.split("\n## ", 1)[0]  # the prose after the block, up to the next section
    return block.strip(), section


def test_the_readme_block_is_the_summary_of_the_committed_demo_run():
    block, _ = readme_section()
    assert block == markdown_summary(DEMO_RUN_DIR).strip()


def test_the_prose_after_the_block_quotes_no_number_of_its_own():
    _, prose = readme_section()
    figures = re.findall(r"\d+\.\d+|\d+x\b|\d+ of \d+", prose)
    assert not figures, f"figures outside the generated block: {figures}"
