"""Every view's state as URL query parameters, and back, with invalid values corrected and explained.

`parse_*` functions never raise on user input: they return the value to use and,
when the URL's value could not be used, a notice saying what was changed. The
values they accept come from whitelists (runs, relations, languages, modules)
or are parsed as numbers, so nothing from a URL reaches a path, a model id or SQL.
"""
from __future__ import annotations

import math

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from core.neurons import NeuronId, NeuronSpace

MAX_LISTED = 64
NEURON_TEXT = re.compile(r"^\s*L?(\d{1,6})\s*[.:/]\s*([A-Za-z_][A-Za-z0-9_]{0,31})\s*[.:/\[]\s*(\d{1,9})\]?\s*$")


@dataclass
class Notices:
    """What the link's values needed correcting, said to the user; the parsers add, the page shows them."""
    notices: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notices.append(text)


def clip(text: str, n: int = 40) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text if len(text) <= n else text[: n - 1] + "…"


def pick_one(params: Mapping[str, str], key: str, allowed: list[str], default: str, parsed: Notices, label: str) -> str:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    if raw in allowed:
        return raw
    parsed.note(f"Unknown {label} '{clip(raw)}' in the link; showing {default}.")
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
        parsed.note(f"Ignored unknown {label}(s) in the link: {', '.join(clip(b, 24) for b in bad[:5])}.")
    return list(dict.fromkeys(good))


def _pick_number(params: Mapping[str, str], key: str, low, high, default, parsed: Notices, label: str, parse,
                 kind: str, show):
    """The link's `key` parsed by `parse` (ValueError: not a number of this `kind`), clamped to low..high with a
    notice; `show` formats a number for the notice."""
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = parse(str(raw).strip())
    except ValueError:
        parsed.note(f"{label} '{clip(raw)}' in the link is not {kind}; showing {show(default)}.")
        return default
    if value < low or value > high:
        clamped = min(max(value, low), high)
        parsed.note(f"{label} {clip(show(value))} is outside {show(low)}–{show(high)}; showing {show(clamped)}.")
        return clamped
    return value


def pick_int(params: Mapping[str, str], key: str, low: int, high: int, default: int, parsed: Notices, label: str) -> int:
    return _pick_number(params, key, low, high, default, parsed, label, int, "a whole number", lambda v: f"{v:,}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # "nan" and "inf" parse as floats but are no factor
        raise ValueError(text)
    return value


def pick_float(params: Mapping[str, str], key: str, low: float, high: float, default: float, parsed: Notices,
               label: str) -> float:
    return _pick_number(params, key, low, high, default, parsed, label, _finite_float, "a number", lambda v: f"{v:g}")


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
        parsed.note(f"{label} '{clip(raw)}' in the link is not a range like 0-3; showing all.")
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
        raise ValueError(f"'{clip(text)}' is not a neuron; write layer.module.index, e.g. 2.gate_proj.17")
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
                    f"{', '.join(clip(b, 24) for b in bad[:3])}.")
    return neurons


def encode_list(items: Iterable[str]) -> str:
    return ",".join(items)
