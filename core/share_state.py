"""Every view's state as URL query parameters, and back, with invalid values corrected and explained.

`parse_*` functions never raise on user input: they return the value to use and,
when the URL's value could not be used, a notice saying what was changed. The
values they accept come from whitelists (runs, relations, languages, modules)
or are parsed as numbers, so nothing from a URL reaches a path, a model id or SQL.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from core.neurons import NeuronId, NeuronSpace
from core.parquet_io import write_bytes_atomic

MAX_URL_PROMPT = 300  # longer prompts travel as a snapshot id
MAX_PROMPT_CHARS = 2000
MAX_ABLATED_NEURONS = 50_000
MAX_LISTED = 64
NEURON_TEXT = re.compile(r"^\s*L?(\d{1,6})\s*[.:/]\s*([A-Za-z_][A-Za-z0-9_]{0,31})\s*[.:/\[]\s*(\d{1,9})\]?\s*$")
SNAPSHOT_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class Parsed:
    values: dict = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notices.append(text)


def _clip(text: str, n: int = 40) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text if len(text) <= n else text[: n - 1] + "…"


def pick_one(params: Mapping[str, str], key: str, allowed: list[str], default: str, parsed: Parsed, label: str) -> str:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    if raw in allowed:
        return raw
    parsed.note(f"Unknown {label} '{_clip(raw)}' in the link; showing {default}.")
    return default


def pick_many(params: Mapping[str, str], key: str, allowed: list[str], default: list[str], parsed: Parsed,
              label: str) -> list[str]:
    raw = params.get(key)
    if raw is None:
        return list(default)
    items = [x for x in str(raw).split(",") if x][:MAX_LISTED]
    good = [x for x in items if x in allowed]
    bad = [x for x in items if x not in allowed]
    if bad:
        parsed.note(f"Ignored unknown {label}(s) in the link: {', '.join(_clip(b, 24) for b in bad[:5])}.")
    return list(dict.fromkeys(good))


def pick_int(params: Mapping[str, str], key: str, low: int, high: int, default: int, parsed: Parsed, label: str) -> int:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        parsed.note(f"{label} '{_clip(raw)}' in the link is not a whole number; showing {default}.")
        return default
    if value < low or value > high:
        clamped = min(max(value, low), high)
        parsed.note(f"{label} {value:,} is outside {low:,}–{high:,}; showing {clamped:,}.")
        return clamped
    return value


def pick_range(params: Mapping[str, str], key: str, low: int, high: int, parsed: Parsed, label: str) -> tuple[int, int]:
    raw = params.get(key)
    if not raw:
        return low, high
    match = re.fullmatch(r"\s*(\d{1,6})\s*-\s*(\d{1,6})\s*", str(raw))
    if not match:
        parsed.note(f"{label} '{_clip(raw)}' in the link is not a range like 0-3; showing all.")
        return low, high
    a, b = sorted((int(match.group(1)), int(match.group(2))))
    a, b = max(a, low), min(b, high)
    if a > b:
        parsed.note(f"{label} {match.group(0)} has no layer of this model ({low}-{high}); showing all.")
        return low, high
    return a, b


def parse_neuron(text: str, space: NeuronSpace) -> NeuronId:
    """"L2.gate_proj[17]", "2.gate_proj.17" or a flat id "1234" -> NeuronId; ValueError with a reason otherwise."""
    text = str(text).strip()
    if re.fullmatch(r"\d{1,9}", text):
        return space.neuron(int(text))
    match = NEURON_TEXT.match(text)
    if not match:
        raise ValueError(f"'{_clip(text)}' is not a neuron; write layer.module.index, e.g. 2.gate_proj.17")
    neuron = NeuronId(int(match.group(1)), match.group(2), int(match.group(3)))
    if not space.contains(neuron):
        raise ValueError(f"neuron {neuron} does not exist in this model ({space.describe()})")
    return neuron


def format_neuron(neuron: NeuronId) -> str:
    return f"{neuron.layer}.{neuron.module}.{neuron.index}"


def pick_neurons(params: Mapping[str, str], key: str, space: NeuronSpace, parsed: Parsed) -> list[NeuronId]:
    raw = params.get(key)
    if not raw:
        return []
    out, bad = [], []
    for item in str(raw).split(",")[:MAX_LISTED]:
        try:
            out.append(parse_neuron(item, space))
        except ValueError:
            bad.append(item)
    if bad:
        parsed.note(f"Ignored {len(bad)} neuron(s) in the link that this model does not have: "
                    f"{', '.join(_clip(b, 24) for b in bad[:3])}.")
    return list(dict.fromkeys(out))


# ----- prompt snapshots -------------------------------------------------------------------------
def snapshot_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def save_snapshot(prompt: str, folder: Path) -> str:
    """Store a long prompt as <id>.json (id = its hash) and return the id for the link."""
    sid = snapshot_id(prompt)
    path = Path(folder) / f"{sid}.json"
    if not path.exists():
        write_bytes_atomic(json.dumps({"prompt": prompt}, ensure_ascii=False).encode("utf-8", "surrogatepass"), path)
    return sid


def load_snapshot(sid: str, folder: Path) -> str | None:
    if not SNAPSHOT_ID.match(str(sid)):  # the id is a hash: nothing else ever names a file
        return None
    path = Path(folder) / f"{sid}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))["prompt"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prompt_params(prompt: str, folder: Path) -> dict[str, str]:
    """The query parameters that carry `prompt`: inline when short, else a snapshot id."""
    if len(prompt) <= MAX_URL_PROMPT:
        return {"prompt": prompt}
    return {"snap": save_snapshot(prompt, folder)}


def pick_prompt(params: Mapping[str, str], folder: Path, default: str, parsed: Parsed) -> str:
    if params.get("snap"):
        text = load_snapshot(params["snap"], folder)
        if text is None:
            parsed.note("The prompt snapshot in the link no longer exists; showing the default prompt.")
            return default
        return text[:MAX_PROMPT_CHARS]
    raw = params.get("prompt")
    if raw is None:
        return default
    if len(raw) > MAX_PROMPT_CHARS:
        parsed.note(f"The prompt in the link had {len(raw):,} characters; it was cut to {MAX_PROMPT_CHARS:,}.")
        return raw[:MAX_PROMPT_CHARS]
    return raw


def encode_list(items: Iterable[str]) -> str:
    return ",".join(items)
