"""Command-line values checked when they are parsed, so a bad option stops the command at once with one line
naming it, before any model loads or stage runs (argparse reports an ArgumentTypeError with the option's name)."""
from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

from core.facts import CORPUS_FILE, LANGUAGE_CODE, RELATION_NAME
from core.manifest import MANIFEST
from precompute.options import parse_k

DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d{1,3})?)$")
MIN_SCORE_MEMORY_MIB = 16  # below this a 7B model's scoring would read a handful of columns at a time


class OptionError(ValueError):
    """Options that are each valid but do not go together (found after parsing, still before any work)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (`error: ...`) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _convert(text: str, convert, what: str):
    try:
        return convert(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def int_at_least(low: int):
    def parse(text: str) -> int:
        value = _convert(text, int, "a whole number")
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum of {low}")
        return value

    parse.__name__ = f"whole number >= {low}"
    return parse


def positive_float(text: str) -> float:
    value = _convert(text, float, "a number")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
    return value


def fraction(text: str) -> float:
    """A share from 0 to 1 (accuracy targets)."""
    value = _convert(text, float, "a number")
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def k_value(text: str) -> str:
    try:
        parse_k(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return str(text).strip()


def k_list(text: str) -> list[str]:
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one k, e.g. 10,50,200")
    return [k_value(item) for item in items]


def language(text: str) -> str:
    if not LANGUAGE_CODE.match(str(text)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a 2-3 letter lowercase language code")
    return str(text)


def language_list(text: str) -> list[str]:
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one language, e.g. en,de")
    return list(dict.fromkeys(language(item) for item in items))


def relation_list(text: str) -> list[str]:
    """Comma-separated relation names as a corpus or LRE's file stems write them (company_ceo,person_father)."""
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one relation, e.g. company_ceo,person_father")
    bad = [item for item in items if not RELATION_NAME.match(item)]
    if bad:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, bad))}: a relation name is lowercase letters, "
                                         "digits and underscores, e.g. company_ceo")
    return list(dict.fromkeys(items))


def device(text: str) -> str:
    if not DEVICE.match(str(text)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: cpu, cuda, cuda:N, mps or auto")
    return str(text)


def existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist")
    return path


def output_folder(marker: str | None):
    """A folder the command may write: new, empty, or already holding its own kind of output (the file
    `marker`: a run's manifest to resume, a corpus to rewrite). Never a file, a folder under a file, an
    unwritable place, or someone else's non-empty folder."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.exists() and not path.is_dir():
            raise argparse.ArgumentTypeError(f"{path} is a file, not a folder")
        existing = next((p for p in [path, *path.parents] if p.exists()), Path("."))
        if not existing.is_dir():
            raise argparse.ArgumentTypeError(f"{path} cannot be made: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"{path} cannot be written: {existing} is read-only")
        if path.is_dir() and marker is not None and any(path.iterdir()) and not (path / marker).exists():
            raise argparse.ArgumentTypeError(
                f"{path} is a non-empty folder without {marker}; refusing to write into it: choose a new folder")
        return path

    return parse


run_folder = output_folder(MANIFEST)
corpus_folder = output_folder(CORPUS_FILE)
model_folder = output_folder("config.json")
