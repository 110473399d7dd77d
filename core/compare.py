"""Two runs side by side: how they relate, how far their top-k sets agree, how their effects differ.

Runs of the same model (the same model fingerprint in their manifests; other neuron definition, pooling, seed or
any other option) name the same neurons, so their top-k sets can be intersected per relation, against what two
random sets of those sizes would share (hypergeometric). Where the two runs' neuron definitions differ, flat ids
are numbered in different spaces: the sets are compared by (layer, module, index), inside the modules both
spaces have. Runs of different models share no neuron; only their effect tables can stand side by side.

Everything here reads the runs through core.store.RunStore (bound parameters only) and computes with
core.metrics and core.statistics; the Compare page only draws what these functions return.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from core.manifest import Manifest, module_sizes
from core.metrics import significance, summarise_relations
from core.share_state import Notices, clip
from core.statistics import hypergeom_overlap

ZERO = "zero"  # the paper's ablation: every run holds its effects at every k of the sweep
SYNTHETIC_FINGERPRINT = "synthetic"  # every synthetic run's model fingerprint: the shape tells them apart
# Manifest options that say where or how a run was made, not what it measured: never listed as a difference.
NOT_COMPARED = ("model", "facts", "dtype")
EFFECT_COLUMNS = ["relation", "baseline", "own_drop", "own_low", "own_high", "others_mean_drop", "random_drop",
                  "random_low", "random_high"]


@dataclass(frozen=True)
class Difference:
    """One setting in which the two runs differ, as text (`a`: the primary run's, `b`: the second run's)."""
    setting: str
    a: str
    b: str


@dataclass(frozen=True)
class Pairing:
    """How two runs relate, from their manifests alone (`a`: the sidebar's run, `b`: the second run)."""
    same_model: bool
    differences: tuple[Difference, ...]  # neuron definition, corpus and every option that changes results
    same_space: bool  # the same neuron space: a flat id names the same neuron in both runs
    common_modules: tuple[str, ...]  # modules both spaces have, of the same size per layer
    skipped_modules: tuple[str, ...]  # modules only one space has (or of different sizes): left out of the overlap
    layers: int  # layers both models have
    total: int  # N: neurons inside the common modules and layers (the population of the hypergeometric null)
    relations: tuple[str, ...]  # relations both runs have, in the primary run's order
    languages: tuple[str, ...]  # languages both runs have, in the primary run's order
    k_values: tuple[int, ...]  # k values both runs precomputed effects for (main k and sweep)
    k_limit: int  # the largest k both runs store ranks for: any k up to it can be intersected

    @property
    def comparable(self) -> bool:
        """Whether top-k sets can be intersected at all (same model, and some module in common)."""
        return self.same_model and self.total > 0


@dataclass(frozen=True, eq=False)
class OverlapComparison:
    """Per relation, the two runs' top-k sets in one language: sizes, shared, Jaccard and the chance level.

    `table` columns: relation, size_a, size_b, shared, jaccard, expected (k_a*k_b/N), ratio (shared/expected),
    p_more (hypergeometric P(X >= shared)). `by_position`: compared by (layer, module, index) because the
    neuron spaces differ (sizes are then the sets' members inside the common modules)."""
    k: int
    language: str
    total: int
    by_position: bool
    table: pd.DataFrame


@dataclass(frozen=True, eq=False)
class EffectsComparison:
    """Each run's per-relation effect summary at its own k in one language, merged by relation.

    `table`: relation, then for each run (suffix `_a`, `_b`) baseline, own_drop [own_low, own_high] (95%
    percentile bootstrap over prompts), others_mean_drop, random_drop [random_low, random_high] (95% bootstrap
    over random sets), all drops in accuracy points; and `own_difference` = own_drop_b - own_drop_a. A relation
    only one run has is there with the other run's columns empty."""
    language_a: str
    language_b: str
    k_a: int
    k_b: int
    table: pd.DataFrame
    ablation_a: str = ZERO
    ablation_b: str = ZERO


# ----- which runs, and how they relate ----------------------------------------------------------------------------
def second_run_choices(names: list[str], primary: str) -> list[str]:
    """The runs a second run can be: every discovered run but the sidebar's, in discovery order."""
    return [name for name in names if name != primary]


def pick_second_run(params: Mapping[str, str], primary: str, names: list[str], parsed: Notices,
                    key: str = "vs") -> str | None:
    """The link's second run when it names another discovered run; otherwise the first other run, with a notice
    saying why. None when the server has no other run. Only a name from `names` is ever returned."""
    choices = second_run_choices(names, primary)
    if not choices:
        return None
    raw = params.get(key)
    if raw is None or raw == "":
        return choices[0]
    if raw in choices:
        return raw
    if raw == primary:
        parsed.note(f"The second run '{clip(raw)}' in the link is the sidebar's run; comparing with {choices[0]}.")
    else:
        parsed.note(f"Unknown second run '{clip(raw)}' in the link; comparing with {choices[0]}.")
    return choices[0]


def model_identity(manifest: Manifest) -> tuple[str, str]:
    """What makes two runs' models the same: the model fingerprint (a hash of the weights). Synthetic runs all
    carry the fingerprint 'synthetic', so for them the shape (the model source) is part of it."""
    fingerprint = str(manifest.model["fingerprint"])
    synthetic = manifest.synthetic or fingerprint == SYNTHETIC_FINGERPRINT
    return fingerprint, str(manifest.model["source"]) if synthetic else ""


def top_limit(manifest: Manifest) -> int:
    """The largest rank a run keeps in its small top table (RunStore.top_limit)."""
    return max([int(manifest.k), *map(int, manifest.k_sweep)])


def _text(value) -> str:
    return "(not set)" if value is None else str(value)


def differences(a: Manifest, b: Manifest) -> tuple[Difference, ...]:
    """Every setting that changes results and differs: the neuron definition, the corpus, and each option of
    the manifests (an option only one run records is listed too)."""
    out = []
    ablations_a, ablations_b = getattr(a, "ablations", None), getattr(b, "ablations", None)
    if ablations_a != ablations_b:
        out.append(Difference("ablations stored", ", ".join(ablations_a or [ZERO]), ", ".join(ablations_b or [ZERO])))
    if a.neurons["definition"] != b.neurons["definition"]:
        out.append(Difference("neuron definition", a.neurons["definition"], b.neurons["definition"]))
    if a.corpus.get("fingerprint") != b.corpus.get("fingerprint"):
        out.append(Difference("facts corpus", _text(a.corpus.get("path")), _text(b.corpus.get("path"))))
    for name in sorted(set(a.options) | set(b.options)):
        if name in NOT_COMPARED or name == "definition":
            continue
        va, vb = a.options.get(name), b.options.get(name)
        if va != vb:
            out.append(Difference(name, _text(va), _text(vb)))
    return tuple(out)


def pair_runs(a: Manifest, b: Manifest) -> Pairing:
    """How run `b` relates to run `a`: same model or not, what differs, and what can be compared."""
    same_model = model_identity(a) == model_identity(b)
    sizes_a, sizes_b = dict(module_sizes(a)), dict(module_sizes(b))
    common = tuple(name for name in sizes_a if sizes_b.get(name) == sizes_a[name])
    skipped = tuple(name for name in [*sizes_a, *(n for n in sizes_b if n not in sizes_a)] if name not in common)
    layers = min(int(a.neurons["num_layers"]), int(b.neurons["num_layers"]))
    same_space = (same_model and list(module_sizes(a)) == list(module_sizes(b))
                  and int(a.neurons["num_layers"]) == int(b.neurons["num_layers"]))
    total = sum(sizes_a[name] for name in common) * layers if same_model else 0
    relations_b, languages_b = set(b.corpus["relations"]), set(b.corpus["languages"])
    k_b = {int(b.k), *map(int, b.k_sweep)}
    return Pairing(
        same_model=same_model, differences=differences(a, b), same_space=same_space,
        common_modules=common if same_model else (), skipped_modules=skipped if same_model else (),
        layers=layers, total=total,
        relations=tuple(r for r in a.corpus["relations"] if r in relations_b),
        languages=tuple(lang for lang in a.corpus["languages"] if lang in languages_b),
        k_values=tuple(sorted(k for k in {int(a.k), *map(int, a.k_sweep)} if k in k_b)),
        k_limit=min(top_limit(a), top_limit(b)),
    )


def default_k(a: Manifest, pairing: Pairing) -> int:
    """The k a comparison opens at: the primary run's main k when both runs precomputed it, else the largest k
    both precomputed, else the primary run's main k within what both store."""
    if int(a.k) in pairing.k_values:
        return int(a.k)
    if pairing.k_values:
        return pairing.k_values[-1]
    return max(1, min(int(a.k), pairing.k_limit))


def effect_k(k: int, pairing: Pairing) -> int | None:
    """The precomputed k both runs have effects for nearest to `k` (the smaller on a tie); None if none."""
    if not pairing.k_values:
        return None
    return min(pairing.k_values, key=lambda v: (abs(v - int(k)), v))


def describe_pair(name_a: str, a: Manifest, name_b: str, b: Manifest) -> pd.DataFrame:
    """The two manifests' facts one beside the other (rows: setting; columns: the run names and `differs`)."""
    def facts(m: Manifest) -> dict[str, str]:
        return {
            "model": str(m.model["source"]),
            "model fingerprint": str(m.model["fingerprint"])[:12],
            "architecture": f"{m.model['model_type']}, {m.neurons['num_layers']} layers",
            "neuron definition": str(m.neurons["definition"]),
            "neurons": f"{int(m.neurons['total']):,}",
            "main k": f"{int(m.k):,}",
            "k sweep": ", ".join(f"{int(k):,}" for k in m.k_sweep),
            "pooling": _text(m.options.get("pooling")),
            "seed": _text(m.options.get("seed")),
            "identification language": _text(m.options.get("identification_language", "en")),
            "facts": _text(m.corpus.get("path")),
            "relations": str(len(m.corpus["relations"])),
            "languages": ", ".join(m.corpus["languages"]),
            "synthetic": "yes" if m.synthetic else "no",
        }
    fa, fb = facts(a), facts(b)
    left, right = (name_a, name_b) if name_a != name_b else (f"{name_a} (A)", f"{name_b} (B)")
    return pd.DataFrame({"setting": list(fa), left: list(fa.values()), right: [fb[s] for s in fa],
                         "differs": ["yes" if fa[s] != fb[s] else "" for s in fa]})


# ----- top-k agreement (same model) --------------------------------------------------------------------------------
def _members(sets: pd.DataFrame, pairing: Pairing) -> dict[str, set]:
    """relation -> its members as comparable keys: flat ids in one space, else (layer, module, index) inside
    the common modules and layers."""
    if pairing.same_space:
        return {rel: set(g.neuron.astype(int)) for rel, g in sets.groupby("relation")}
    inside = sets[sets.module.isin(pairing.common_modules) & (sets.layer < pairing.layers)]
    return {rel: set(zip(g.layer.astype(int), g.module.astype(str), g["index"].astype(int)))
            for rel, g in inside.groupby("relation")}


def overlap_table(sets_a: pd.DataFrame, sets_b: pd.DataFrame, pairing: Pairing,
                  relations: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Per relation: |A|, |B|, shared, Jaccard, the chance level |A||B|/N, shared / chance and the
    hypergeometric p of sharing at least this many (`sets_*`: RunStore.top_sets of each run)."""
    columns = ["relation", "size_a", "size_b", "shared", "jaccard", "expected", "ratio", "p_more"]
    if not pairing.comparable:
        return pd.DataFrame(columns=columns)
    ma, mb = _members(sets_a, pairing), _members(sets_b, pairing)
    rows = []
    for rel in relations:
        a, b = ma.get(rel, set()), mb.get(rel, set())
        shared = len(a & b)
        union = len(a | b)
        rows.append(dict(relation=rel, size_a=len(a), size_b=len(b), shared=shared,
                         jaccard=shared / union if union else np.nan))
    out = pd.DataFrame(rows, columns=columns[:5])
    if out.empty:
        return pd.DataFrame(columns=columns)
    null = hypergeom_overlap(out.shared.to_numpy(), out.size_a.to_numpy(), out.size_b.to_numpy(), pairing.total)
    out["expected"] = null["expected"]
    out["ratio"] = np.where(out.expected > 0, out.shared / out.expected.where(out.expected > 0), np.nan)
    out["p_more"] = null["p_more"]
    return out


def compare_overlap(store_a, store_b, pairing: Pairing, k: int, language: str) -> OverlapComparison:
    """Both runs' top-k sets per common relation in `language`, intersected (see overlap_table)."""
    k = int(k)
    if not pairing.comparable:
        return OverlapComparison(k, language, pairing.total, not pairing.same_space, overlap_table(
            pd.DataFrame(), pd.DataFrame(), pairing, []))
    sets_a = store_a.top_sets(k, language, pairing.relations)
    sets_b = store_b.top_sets(k, language, pairing.relations)
    return OverlapComparison(k, language, pairing.total, not pairing.same_space,
                             overlap_table(sets_a, sets_b, pairing, pairing.relations))


# ----- effects ----------------------------------------------------------------------------------------------------
def own_intervals(store, k: int, language: str, ablation: str = ZERO, template_kind: str = "train") -> pd.DataFrame:
    """relation, own_low, own_high: the own top-k drop's 95% percentile-bootstrap interval over prompts, paired
    with the baseline (core.metrics.significance), for any ablation the run holds."""
    paired = store.paired_outcomes(int(k), language, template_kind, ablation)
    return significance(paired)[["relation", "own_low", "own_high"]]


def effect_summary(store, k: int, language: str, template_kind: str = "train", ablation: str = ZERO) -> pd.DataFrame:
    """One run's per-relation effects at a precomputed k: core.metrics.summarise_relations (baseline, own drop,
    others' mean drop, random sets' mean drop with its interval over sets) with the own drop's interval over
    prompts (own_intervals). `ablation`: zero, or another the run holds (at its main k only). Empty (with the
    columns) when the run has no effects there."""
    table = store.ablation_summary(template_kind, ablation)
    k = int(k)
    top = table[(table.kind == "top") & (table.k == k) & (table.language == language)]
    if top.empty:
        return pd.DataFrame(columns=EFFECT_COLUMNS)
    summary = summarise_relations(table, k, language)
    intervals = own_intervals(store, k, language, ablation, template_kind)
    out = summary.merge(intervals, on="relation", how="left")
    for column in EFFECT_COLUMNS:
        if column not in out:
            out[column] = np.nan
    return out[EFFECT_COLUMNS].reset_index(drop=True)


def merge_effects(a: pd.DataFrame, b: pd.DataFrame, relations_a: list[str], relations_b: list[str]) -> pd.DataFrame:
    """Two effect_summary tables merged by relation (suffixes _a, _b), with own_difference = b - a; the
    primary run's relations first, in its order, then the second run's others."""
    order = list(dict.fromkeys([*relations_a, *relations_b]))
    left = a.set_index("relation").add_suffix("_a")
    right = b.set_index("relation").add_suffix("_b")
    out = left.join(right, how="outer").reindex([r for r in order if r in set(a.relation) | set(b.relation)])
    out["own_difference"] = out.own_drop_b - out.own_drop_a
    return out.rename_axis("relation").reset_index()


def effect_ks(k: int, pairing: Pairing, a: Manifest, b: Manifest, ablation_a: str = ZERO,
              ablation_b: str = ZERO) -> tuple[int | None, int | None]:
    """The k each run's effects are read at. Same model: the precomputed k both have nearest to `k` (effect_k);
    an ablation other than zero exists at a run's main k only, so then each run's main k. Different models:
    each run's main k."""
    if not pairing.same_model or ablation_a != ZERO or ablation_b != ZERO:
        return int(a.k), int(b.k)
    shared = effect_k(k, pairing)
    return shared, shared


def compare_effects(store_a, store_b, k_a: int, k_b: int, language_a: str, language_b: str,
                    ablation_a: str = ZERO, ablation_b: str = ZERO) -> EffectsComparison:
    """Each run's effect summary at its own k, language and ablation, merged by relation (see
    EffectsComparison)."""
    a = effect_summary(store_a, k_a, language_a, ablation=ablation_a)
    b = effect_summary(store_b, k_b, language_b, ablation=ablation_b)
    return EffectsComparison(language_a, language_b, int(k_a), int(k_b),
                             merge_effects(a, b, store_a.relations, store_b.relations), ablation_a, ablation_b)
