"""Where the embedded default lives."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL_DIR = REPO_ROOT / "data" / "models" / "demo"
DEMO_CORPUS_DIR = REPO_ROOT / "data" / "facts" / "demo"
DEMO_RUN_DIR = REPO_ROOT / "data" / "runs" / "demo"
