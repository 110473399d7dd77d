"""Where a run folder keeps what: its tables, their hive partitions and file names, the effect conditions,
and the manifest. Every writer (precompute run, precompute synthetic-run) names its files here and
nowhere else; README "Run folder schema" describes the same layout.

    baseline/relation=R/language=L/part-0.parquet
    identification/relation=R/language=L/part-0.parquet
    scores/relation=R/language=L/part-0.parquet
    top_prompts/language=L/part-0.parquet
    effects/ablated=R|random|random_noncritical/k=K/{top,range,random}-K_FROM[-seedS].parquet
    random_sets/part-0.parquet          the neurons of every random condition (k, seed, family)
    single_neuron/part-0.parquet        every screened neuron's single ablation, per relation (critical neurons)
    null_top/seed=S/part-0.parquet      top-ranked neurons with relation labels permuted (the overlap null)
    distributions/relation=R/language=L/part-0.parquet   pooled-activation quantiles of positives and negatives
    work/language=L/activations.npy, prompt_ids.npy   (the capture; not read by the app)
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Sequence

from core.manifest import SCHEMA_VERSION, Manifest
from core.neurons import NeuronSpace
from core.parquet_io import partition_dir

TABLES = ("baseline", "identification", "scores", "effects", "top_prompts", "random_sets", "single_neuron",
          "null_top", "distributions", "neuron_means", "mode_effects")
# Tables a run may lack without anything being wrong: runs made before they existed, and runs with zero
# ablation only (mode_effects). Pages that read them say what is missing; the sidebar does not warn.
OPTIONAL_TABLES = ("distributions", "neuron_means", "mode_effects")
WORK = "work"  # the capture's folder
PART = "part-0.parquet"  # the one file of a relation x language (or language) partition
TOP_PLACES = 5  # top prompts kept per neuron and language
EFFECT_KINDS = ("top", "range", "random")
RANDOM = "random"  # the `ablated` partition of random neuron sets
# Random sets drawn from the neurons that are not critical (--random-exclude-critical): a second family,
# beside the paper's plain uniform draw, at the main k.
RANDOM_NONCRITICAL = "random_noncritical"
RANDOM_FAMILIES = (RANDOM, RANDOM_NONCRITICAL)
NO_SEED = -1  # the seed column of top and range conditions


# ----- tables ---------------------------------------------------------------------------------------------------
def baseline_path(run_dir: Path, relation: str, language: str) -> Path:
    return partition_dir(Path(run_dir) / "baseline", relation=relation, language=language) / PART


def identification_path(run_dir: Path, relation: str, language: str) -> Path:
    return partition_dir(Path(run_dir) / "identification", relation=relation, language=language) / PART


def scores_path(run_dir: Path, relation: str, language: str) -> Path:
    return partition_dir(Path(run_dir) / "scores", relation=relation, language=language) / PART


def top_prompts_path(run_dir: Path, language: str) -> Path:
    return partition_dir(Path(run_dir) / "top_prompts", language=language) / PART


def random_sets_path(run_dir: Path) -> Path:
    return Path(run_dir) / "random_sets" / PART


def single_neuron_path(run_dir: Path) -> Path:
    return Path(run_dir) / "single_neuron" / PART


def null_top_path(run_dir: Path, seed: int) -> Path:
    return partition_dir(Path(run_dir) / "null_top", seed=seed) / PART


def distributions_path(run_dir: Path, relation: str, language: str) -> Path:
    return partition_dir(Path(run_dir) / "distributions", relation=relation, language=language) / PART


def neuron_means_path(run_dir: Path, language: str) -> Path:
    return partition_dir(Path(run_dir) / "neuron_means", language=language) / PART


def capture_paths(run_dir: Path, language: str) -> tuple[Path, Path]:
    """(activations.npy, prompt_ids.npy) of one language's capture."""
    work = partition_dir(Path(run_dir) / WORK, language=language)
    return work / "activations.npy", work / "prompt_ids.npy"


# ----- effect conditions ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One ablation: `ablated` (a relation, or a random family) with neurons of ranks k_from+1..k zeroed (kind
    top: k_from = 0; range: between two k of the sweep), or k random neurons drawn with `seed` (kind random;
    ablated "random": uniform over every neuron, "random_noncritical": over the neurons that are not critical)."""
    ablated: str
    kind: str
    k_from: int
    k: int
    seed: int = NO_SEED

    @property
    def file_name(self) -> str:
        """top-0.parquet, range-10.parquet, random-0-seed3.parquet"""
        return f"{self.kind}-{self.k_from}" + (f"-seed{self.seed}" if self.kind == RANDOM else "") + ".parquet"


def conditions(relations: list[str], k_sweep: list[int], random_seeds: int,
               noncritical_k: int | None = None) -> list[Condition]:
    """Every ablation of a run, in the order they are computed: per relation its top-k at each k of the sweep
    and the rank range between each pair of consecutive k; then `random_seeds` random sets of each k; then,
    when `noncritical_k` is given, as many random sets of that k drawn from the non-critical neurons."""
    out = []
    for rel in relations:
        previous = 0
        for k in k_sweep:
            out.append(Condition(rel, "top", 0, k))
            if previous:
                out.append(Condition(rel, "range", previous, k))
            previous = k
    out += [Condition(RANDOM, RANDOM, 0, k, s) for k in k_sweep for s in range(random_seeds)]
    if noncritical_k is not None:
        out += [Condition(RANDOM_NONCRITICAL, RANDOM, 0, noncritical_k, s) for s in range(random_seeds)]
    return out


def mode_conditions(relations: list[str], k: int, random_seeds: int, noncritical_k: int | None = None
                    ) -> list[Condition]:
    """The conditions an ablation mode other than zero evaluates: the main k only (each relation's top-k and the
    random sets of that k), a tenth of the zero sweep's work and files."""
    return conditions(relations, [k], random_seeds, noncritical_k)


def mode_effect_path(run_dir: Path, ablation_key: str, c: Condition) -> Path:
    """Effects of a non-zero ablation (core.ablation's key: mean, scale2, ...), beside the zero ones."""
    return partition_dir(Path(run_dir) / "mode_effects", ablation=ablation_key, ablated=c.ablated, k=c.k) / c.file_name


def effect_path(run_dir: Path, c: Condition) -> Path:
    return partition_dir(Path(run_dir) / "effects", ablated=c.ablated, k=c.k) / c.file_name


def run_files(run_dir: Path, relations: list[str], languages: list[str], k_sweep: list[int],
              random_seeds: int, noncritical_k: int | None = None, null_seeds: int = 0,
              critical: bool = False, identification_language: str = "en", k: int | None = None,
              ablations: Sequence[str] = ("zero",)) -> list[Path]:
    """Every Parquet file a complete run of these relations, languages, sweep and options holds."""
    units = [(r, l) for r in relations for l in languages]
    return [*(path(run_dir, r, l) for path in (baseline_path, identification_path, scores_path) for r, l in units),
            *(top_prompts_path(run_dir, l) for l in languages),
            *(effect_path(run_dir, c) for c in conditions(relations, k_sweep, random_seeds, noncritical_k)),
            random_sets_path(run_dir),
            *([single_neuron_path(run_dir)] if critical else []),
            *(null_top_path(run_dir, s) for s in range(null_seeds)),
            *(distributions_path(run_dir, r, l) for r, l in units),
            neuron_means_path(run_dir, identification_language),
            *(mode_effect_path(run_dir, a, c) for a in ablations if a != "zero"
              for c in mode_conditions(relations, k, random_seeds, noncritical_k))]


# ----- manifest -------------------------------------------------------------------------------------------------
PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow")


@dataclass(frozen=True)
class ModelFacts:
    source: str
    fingerprint: str
    model_type: str
    hidden_size: int | None
    intermediate_size: int | None
    vocab_size: int
    dtype: str


@dataclass(frozen=True)
class CorpusFacts:
    path: str
    fingerprint: str
    relations: list[str]
    languages: list[str]
    prompt_suffix: str
    prompts: int


def package_versions(names=PACKAGES) -> dict:
    return {"python": platform.python_version(), **{p: metadata.version(p) for p in names}}


def build_manifest(status: str, model: ModelFacts, space: NeuronSpace, corpus: CorpusFacts, options: dict, k: int,
                   k_sweep: list[int], packages: dict, timings: dict | None = None, resources: dict | None = None,
                   synthetic: bool = False, notes: str = "", ablations: list[str] | None = None) -> Manifest:
    """The manifest of a run made of these facts (`packages`: package_versions() of the writer)."""
    return Manifest(
        schema_version=SCHEMA_VERSION,
        status=status,
        model={"source": model.source, "fingerprint": model.fingerprint, "model_type": model.model_type,
               "num_layers": space.num_layers, "hidden_size": model.hidden_size,
               "intermediate_size": model.intermediate_size, "vocab_size": model.vocab_size, "dtype": model.dtype},
        neurons={"definition": space.definition, "total": space.total, "num_layers": space.num_layers,
                 "per_layer": space.per_layer, "modules": {m.name: m.size for m in space.modules},
                 "module_order": list(space.module_names)},
        corpus={"path": corpus.path, "fingerprint": corpus.fingerprint, "relations": corpus.relations,
                "languages": corpus.languages, "prompt_suffix": corpus.prompt_suffix, "prompts": corpus.prompts},
        options=options,
        k=k,
        k_sweep=k_sweep,
        packages=packages,
        timings={} if timings is None else timings,
        resources={} if resources is None else resources,
        synthetic=synthetic,
        notes=notes,
        ablations=["zero"] if ablations is None else ablations,
    )


def ablations_on_disk(run_dir: Path) -> list[str]:
    """zero, then every other ablation whose effects the run folder holds (mode_effects/ablation=KEY)."""
    folder = Path(run_dir) / "mode_effects"
    others = sorted(p.name.split("=", 1)[1] for p in folder.glob("ablation=*")) if folder.exists() else []
    return ["zero", *others]
