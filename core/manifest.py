"""A run's manifest.json: what was run, on what, with which options; read by the app."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.parquet_io import write_bytes_atomic

SCHEMA_VERSION = 1
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
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"{path} has schema version {version}; this version of the app reads {SCHEMA_VERSION}: "
            "rerun `python -m precompute run` for this model to rebuild the run"
        )
    try:
        return Manifest(**data)
    except TypeError as exc:
        raise ManifestError(f"{path} lacks or has unknown fields ({exc})") from exc
