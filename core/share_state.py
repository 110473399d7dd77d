"""Every view's state as URL query parameters, and back, with invalid values corrected and explained.

`parse_*` functions never raise on user input: they return the value to use and,
when the URL's value could not be used, a notice saying what was changed. The
values they accept come from whitelists (runs, relations, languages, modules)
or are parsed as numbers, so nothing from a URL reaches a path, a model id or SQL.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from core.neurons import NeuronId, NeuronSpace
from core.parquet_io import remove_dead_temporaries, write_bytes_atomic

MAX_URL_PROMPT = 300  # longer prompts travel compressed (see "prompts in links")
MAX_PROMPT_CHARS = 2000
MAX_ABLATED_NEURONS = 50_000
MAX_LISTED = 64
NEURON_TEXT = re.compile(r"^\s*L?(\d{1,6})\s*[.:/]\s*([A-Za-z_][A-Za-z0-9_]{0,31})\s*[.:/\[]\s*(\d{1,9})\]?\s*$")
SNAPSHOT_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class Notices:
    """What the link's values needed correcting, said to the user; the parsers add, the page shows them."""
    notices: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notices.append(text)


def _clip(text: str, n: int = 40) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text if len(text) <= n else text[: n - 1] + "…"


def pick_one(params: Mapping[str, str], key: str, allowed: list[str], default: str, parsed: Notices, label: str) -> str:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    if raw in allowed:
        return raw
    parsed.note(f"Unknown {label} '{_clip(raw)}' in the link; showing {default}.")
    return default


def pick_many(params: Mapping[str, str], key: str, allowed: list[str], default: list[str], parsed: Notices,
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


def pick_int(params: Mapping[str, str], key: str, low: int, high: int, default: int, parsed: Notices, label: str) -> int:
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


def pick_precomputed(params: Mapping[str, str], key: str, values: list[int], default: int, parsed: Notices,
                     label: str) -> int:
    """A k the run has figures for: the link's, or the nearest precomputed one with a notice."""
    wanted = pick_int(params, key, min(values), max(values), default, parsed, label)
    if wanted in values:
        return wanted
    nearest = min(values, key=lambda v: (abs(v - wanted), v))
    parsed.note(f"{label} {wanted:,} was not precomputed; showing the nearest precomputed {label}, {nearest:,}.")
    return nearest


def pick_range(params: Mapping[str, str], key: str, low: int, high: int, parsed: Notices, label: str) -> tuple[int, int]:
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


def parse_neuron_list(text: str, space: NeuronSpace) -> tuple[list[NeuronId], list[str]]:
    """A comma-separated list (a link's or a text box's) -> the neurons, each once and in order, and the items
    that are no neuron of this model; at most MAX_LISTED items are read."""
    out, bad = [], []
    for item in [t for t in str(text).split(",") if t.strip()][:MAX_LISTED]:
        try:
            out.append(parse_neuron(item, space))
        except ValueError:
            bad.append(item.strip())
    return list(dict.fromkeys(out)), bad


def pick_neurons(params: Mapping[str, str], key: str, space: NeuronSpace, parsed: Notices) -> list[NeuronId]:
    neurons, bad = parse_neuron_list(params.get(key) or "", space)
    if bad:
        parsed.note(f"Ignored {len(bad)} neuron(s) in the link that this model does not have: "
                    f"{', '.join(_clip(b, 24) for b in bad[:3])}.")
    return neurons


# ----- prompts in links -------------------------------------------------------------------------------------------
# A short prompt travels readable as `prompt`; a longer one compressed in the link itself as `pz` (zlib, URL-safe
# base64), so links need no server state. 2,000 random emoji compress to ~5,500 characters and random CJK to
# ~5,900, inside MAX_PZ_CHARS; only a prompt that compresses worse (random characters from all of Unicode) is
# stored as a snapshot file on the server, `snap=<its hash>`, in a folder capped in files and bytes.
PROMPT_KEYS = ("prompt", "pz", "snap")  # every query key that can carry a prompt
MAX_PZ_CHARS = 6_000  # with the other parameters the whole URL stays well under 8 KB
MAX_PROMPT_BYTES = 4 * MAX_PROMPT_CHARS  # UTF-8: 4 bytes a character at most; decompression stops here
PZ_TEXT = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_SNAPSHOTS = 1_000
MAX_SNAPSHOT_BYTES = 20 << 20
SNAPSHOT_FILE_BYTES = 6 * MAX_PROMPT_CHARS + 16  # the largest snapshot file: JSON escapes a character in 6 bytes
_SNAPSHOT_LOCK = threading.Lock()


def _utf8(prompt: str) -> bytes:
    """The prompt as UTF-8; a lone surrogate (not text, cannot travel) becomes '?'."""
    return prompt.encode("utf-8", "replace")


def compress_prompt(prompt: str) -> str:
    return base64.urlsafe_b64encode(zlib.compress(_utf8(prompt), 9)).decode("ascii").rstrip("=")


def decompress_prompt(pz: str) -> str | None:
    """The prompt a `pz` value carries, or None for anything that is not one: too long, not base64, not zlib,
    inflating past MAX_PROMPT_BYTES (a zip bomb stops there), or not UTF-8."""
    pz = str(pz)
    if len(pz) > MAX_PZ_CHARS or not PZ_TEXT.match(pz):
        return None
    try:
        data = base64.urlsafe_b64decode(pz + "=" * (-len(pz) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, MAX_PROMPT_BYTES)
        if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
            return None  # truncated, more than a prompt's worth, or trailing bytes
        return raw.decode("utf-8")
    except (ValueError, zlib.error):  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


def snapshot_id(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def save_snapshot(prompt: str, folder: Path) -> str:
    """Store a long prompt as <id>.json (id = its hash) and return the id for the link. Concurrent saves of one
    prompt each write their own temporary file and rename it, so every one succeeds and the file is whole."""
    prompt = prompt[:MAX_PROMPT_CHARS]  # what a link may carry, so every file stays under SNAPSHOT_FILE_BYTES
    sid = snapshot_id(prompt)
    path = Path(folder) / f"{sid}.json"
    # One saver at a time in this process, so an eviction that listed the folder earlier cannot delete the file
    # this save has just written or marked used (a link is read right after it is made).
    with _SNAPSHOT_LOCK:
        try:
            os.utime(path)  # saved before: now the most recently used, the last to be evicted
        except FileNotFoundError:
            write_bytes_atomic(json.dumps({"prompt": prompt}, ensure_ascii=False).encode("utf-8", "replace"), path)
            evict_snapshots(Path(folder), keep=path)
    return sid


def evict_snapshots(folder: Path, keep: Path | None = None) -> None:
    """Keep at most MAX_SNAPSHOTS files and MAX_SNAPSHOT_BYTES: when either could be passed, delete the least
    recently used down to 90% of both, so the full pass over the folder runs once per many saves."""
    names = [name for name in os.listdir(folder) if name.endswith(".json")]
    if len(names) <= MAX_SNAPSHOTS and len(names) * SNAPSHOT_FILE_BYTES <= MAX_SNAPSHOT_BYTES:
        return  # within both caps whatever the files' sizes
    remove_dead_temporaries(folder)
    entries = []
    for name in names:
        path = folder / name
        try:
            stat = path.stat()
        except FileNotFoundError:  # evicted by another server process meanwhile
            continue
        entries.append((stat.st_mtime_ns, name, path, stat.st_size))
    entries.sort(reverse=True)  # newest first
    count = size = 0
    for _, _, path, bytes_ in entries:
        count, size = count + 1, size + bytes_
        if (count > 0.9 * MAX_SNAPSHOTS or size > 0.9 * MAX_SNAPSHOT_BYTES) and path != keep:
            path.unlink(missing_ok=True)


def load_snapshot(sid: str, folder: Path) -> str | None:
    if not SNAPSHOT_ID.match(str(sid)):  # the id is a hash: nothing else ever names a file
        return None
    path = Path(folder) / f"{sid}.json"
    try:
        prompt = json.loads(path.read_text(encoding="utf-8"))["prompt"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return prompt if isinstance(prompt, str) else None


def prompt_params(prompt: str, folder: Path) -> dict[str, str]:
    """The query parameters that carry `prompt` (cut to MAX_PROMPT_CHARS): readable when short, compressed
    into the link when that fits, else a snapshot id."""
    prompt = _utf8(prompt[:MAX_PROMPT_CHARS]).decode("utf-8")
    if len(prompt) <= MAX_URL_PROMPT:
        return {"prompt": prompt}
    pz = compress_prompt(prompt)
    if len(pz) <= MAX_PZ_CHARS:
        return {"pz": pz}
    return {"snap": save_snapshot(prompt, folder)}


def pick_prompt(params: Mapping[str, str], folder: Path, default: str, parsed: Notices) -> str:
    if params.get("snap"):
        text = load_snapshot(params["snap"], folder)
        if text is None:
            parsed.note("The prompt snapshot in the link no longer exists; showing the default prompt.")
            return default
        return _cut(text, parsed)
    if params.get("pz"):
        text = decompress_prompt(params["pz"])
        if text is None:
            parsed.note("The compressed prompt in the link is damaged or too long; showing the default prompt.")
            return default
        return _cut(text, parsed)
    raw = params.get("prompt")
    if raw is None:
        return default
    return _cut(str(raw), parsed)


def _cut(text: str, parsed: Notices) -> str:
    if len(text) > MAX_PROMPT_CHARS:
        parsed.note(f"The prompt in the link had {len(text):,} characters; it was cut to {MAX_PROMPT_CHARS:,}.")
        return text[:MAX_PROMPT_CHARS]
    return text


def encode_list(items: Iterable[str]) -> str:
    return ",".join(items)
