"""Helpers to read what an AppTest page drew: chart data, downloads, notices."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("overview", "overlap", "layers", "neuron", "effects", "lab", "compare")


def run_page(page: str, query: dict[str, str] | None = None, timeout: int = 180) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    return at


def chart_frames(at: AppTest) -> list[pd.DataFrame]:
    frames = []
    for chart in at.get("vega_lite_chart"):
        for dataset in chart.proto.datasets:
            frames.append(pa.ipc.open_stream(dataset.data.data).read_all().to_pandas())
    return frames


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def has_tooltips(spec: dict) -> bool:
    text = json.dumps(spec)
    return '"tooltip"' in text


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, texts(at.error)
