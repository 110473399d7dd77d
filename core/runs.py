"""Which runs exist: folders with a manifest.json under the runs directory, found by the server itself.

A run is named by its folder name; a URL can only pick one of the names found
here (a whitelist), never a path.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.paths import REPO_ROOT
from core.manifest import MANIFEST

RUNS_DIR_ENV = "RELATION_NEURONS_RUNS_DIR"
DEFAULT_RUNS_DIR = REPO_ROOT / "data" / "runs"
DEFAULT_RUN = "demo"
RUN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


@dataclass(frozen=True)
class RunRef:
    name: str
    path: Path


def runs_dir(override: str | os.PathLike | None = None) -> Path:
    if override:
        return Path(override)
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)


def model_path(source: str) -> Path:
    """Where a run's model is: manifests of runs made in the repository name it relative to the repository;
    anything else (an absolute path, a cached hub id) is used as written."""
    path = Path(source)
    if not path.is_absolute() and (REPO_ROOT / path).exists():
        return REPO_ROOT / path
    return path


def discover_runs(directory: Path) -> dict[str, RunRef]:
    """name -> run, for every subfolder holding a manifest (sorted, demo first)."""
    found = {}
    if directory.is_dir():
        for child in sorted(directory.iterdir()):
            if child.is_dir() and RUN_NAME.match(child.name) and (child / MANIFEST).exists():
                found[child.name] = RunRef(child.name, child)
    if DEFAULT_RUN in found:
        found = {DEFAULT_RUN: found[DEFAULT_RUN], **{k: v for k, v in found.items() if k != DEFAULT_RUN}}
    return found
