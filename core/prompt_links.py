"""A prompt in a share link: plain when short, compressed in the link when longer, a capped snapshot file only
when even that would not fit; every decoder bounded and never raising on what a link holds."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import zlib
from pathlib import Path
from typing import Mapping

from core.parquet_io import remove_dead_temporaries, write_bytes_atomic
from core.share_state import Notices, clip

MAX_URL_PROMPT = 300  # longer prompts travel compressed
MAX_PROMPT_CHARS = 2000
SNAPSHOT_ID = re.compile(r"^[0-9a-f]{16}$")

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


