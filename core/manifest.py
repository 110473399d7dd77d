"""A run's manifest.json: what was run, on what, with which options; read by the app."""
from __future__ import annotations

import json
import re
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from core.parquet_io import PARTITION_VALUE, write_bytes_atomic

SCHEMA_VERSION = 2  # 2: random_sets, single_neuron, null_top tables; scores.sign; options of the checks
MANIFEST = "manifest.json"


class ManifestError(ValueError):
    pass


@dataclass
class Manifest:
    schema_version: int
    status: str  # "running" or "complete"
    model: dict  # source, fingerprint, model_type, dims
    neurons: dict  # definition, total, per_layer, modules {name: size}, num_layers
    corpus: dict  # path, fingerprint, relations, languages
    options: dict
    k: int  # the main k (paper: 3,000 of 835,584 = 0.36%)
    k_sweep: list[int]
    packages: dict
    timings: dict = field(default_factory=dict)
    resources: dict = field(default_factory=dict)  # processes, peak memory per stage
    synthetic: bool = False  # True for generated stand-in runs (not from a model)
    notes: str = ""
    ablations: list = field(default_factory=lambda: ["zero"])  # core.ablation keys whose effects the run holds

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"


def module_sizes(manifest: "Manifest") -> list[tuple[str, int]]:
    """(module, neurons per layer) in flat-id order. The JSON object of sizes is written with sorted keys,
    so the order lives in its own list."""
    n = manifest.neurons
    return [(name, int(n["modules"][name])) for name in n["module_order"]]


def neuron_space(manifest: "Manifest"):
    """The run's neuron space (ids and counts; module paths are the adapter's business)."""
    from core.neurons import ModuleSpec, NeuronSpace

    n = manifest.neurons
    return NeuronSpace(n["num_layers"], tuple(ModuleSpec(name, "", "output", size) for name, size in module_sizes(manifest)),
                       n["definition"])


def write_manifest(manifest: Manifest, run_dir: Path) -> None:
    write_bytes_atomic(manifest.to_json().encode(), Path(run_dir) / MANIFEST)


def read_manifest(run_dir: Path) -> Manifest:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        raise ManifestError(f"{path} is missing: this folder is not a precomputed run")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); rerun precompute to rewrite it") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"{path} holds a JSON {type(data).__name__}, not a run's manifest object; rerun precompute")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        older = " (made before critical neurons, significance tests and the overlap null were stored)" if (
            _is_int(version) and version < SCHEMA_VERSION) else ""
        raise ManifestError(
            f"{path} has schema version {_show(version)}{older}; this version of the app reads {SCHEMA_VERSION}: "
            "rerun `python -m precompute run` for this model, with the same options, to rebuild the run"
        )
    return _checked(data, path)


# ----- the schema: every field the app, the store and precompute read, with its type and bounds ------------------
ABLATION_NAME = re.compile(r"zero|mean|scale-?[0-9.e+-]{1,16}")  # core.ablation.ablation_key's names
REQUIRED = ("schema_version", "status", "model", "neurons", "corpus", "options", "k", "k_sweep", "packages")
STATUSES = ("running", "complete")


def _show(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


class _Fields:
    """Reads one JSON object's fields, raising ManifestError naming the file and the field on any mismatch."""

    def __init__(self, data, path: Path, prefix: str = ""):
        self.path, self.prefix = path, prefix
        if not isinstance(data, dict):
            raise self.error(prefix.rstrip(".") or "manifest", data, "an object")
        self.data = data

    def error(self, name: str, value, expected: str) -> ManifestError:
        return ManifestError(f"{self.path}: field {name} is {_show(value)}, expected {expected}; "
                             "rerun `python -m precompute run` to rewrite the manifest")

    def get(self, key: str, expected: str, ok, required: bool = True):
        name = self.prefix + key
        if key not in self.data:
            if required:
                raise ManifestError(f"{self.path}: field {name} is missing; rerun `python -m precompute run`")
            return None
        value = self.data[key]
        if not ok(value):
            raise self.error(name, value, expected)
        return value

    def text(self, key: str, required: bool = True) -> str | None:
        return self.get(key, "text", lambda v: isinstance(v, str), required)

    def count(self, key: str, low: int = 1, high: int | None = None) -> int:
        expected = f"a whole number from {low:,}" + (f" to {high:,}" if high is not None else "")
        return self.get(key, expected, lambda v: _is_int(v) and v >= low and (high is None or v <= high))

    def names(self, key: str) -> list[str]:
        """A non-empty list of distinct names, each usable as a folder name of the run's tables."""
        return self.get(key, "a non-empty list of distinct names of letters, digits and _.+-",
                        lambda v: isinstance(v, list) and len(v) > 0 and len(set(map(str, v))) == len(v)
                        and all(isinstance(x, str) and PARTITION_VALUE.match(x) for x in v))

    def section(self, key: str, required: bool = True) -> "_Fields | None":
        if key not in self.data and not required:
            return None
        return _Fields(self.get(key, "an object", lambda v: isinstance(v, dict)), self.path, f"{self.prefix}{key}.")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _checked(data: dict, path: Path) -> Manifest:
    top = _Fields(data, path)
    known = {f.name for f in fields(Manifest)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(f"{path}: unknown field(s) {', '.join(map(_show, unknown))}; this app reads {SCHEMA_VERSION}")
    for key in REQUIRED:
        top.get(key, "present", lambda v: True)
    top.get("status", f"one of {', '.join(STATUSES)}", lambda v: v in STATUSES)
    model = top.section("model")
    for key in ("source", "fingerprint", "model_type"):
        model.text(key)
    neurons = top.section("neurons")
    neurons.text("definition")
    layers = neurons.count("num_layers")
    modules = neurons.get("modules", "an object of module names and positive sizes",
                          lambda v: isinstance(v, dict) and v and all(_is_int(x) and x > 0 for x in v.values()))
    neurons.get("module_order", f"a list of exactly the modules {_show(sorted(modules))}",
                lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v) and len(v) == len(modules)
                and set(v) == set(modules))
    per_layer = sum(modules.values())
    neurons.get("per_layer", f"{per_layer:,} (the modules' sizes summed)", lambda v: _is_int(v) and v == per_layer,
                required=False)
    total = neurons.get("total", f"{layers * per_layer:,} (num_layers x the modules' sizes)",
                        lambda v: _is_int(v) and v == layers * per_layer)
    corpus = top.section("corpus")
    corpus.names("relations")
    corpus.names("languages")
    options = top.section("options")
    options.text("pooling")
    options.text("identification_language", required=False)
    options.get("negatives_ratio", "a finite number above 0", lambda v: _is_number(v) and v > 0)
    options.get("seed", "a whole number", _is_int)
    options.get("critical_threshold", "a finite number above 0", lambda v: _is_number(v) and v > 0, required=False)
    options.get("direction", "positive or either", lambda v: v in ("positive", "either"), required=False)
    top.count("k", 1, total)
    top.get("k_sweep", f"a non-empty list of whole numbers from 1 to {total:,}",
            lambda v: isinstance(v, list) and v and all(_is_int(x) and 1 <= x <= total for x in v))
    for key in ("packages", "timings", "resources"):
        top.section(key, required=False)
    top.get("synthetic", "true or false", lambda v: isinstance(v, bool), required=False)
    top.text("notes", required=False)
    top.get("ablations", "a list of ablation names (zero, mean, scale2, ...)",
            lambda v: isinstance(v, list) and all(isinstance(x, str) and ABLATION_NAME.fullmatch(x) for x in v),
            required=False)
    return Manifest(**data)
