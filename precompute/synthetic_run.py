"""`precompute synthetic-run`: a generated run with the exact shape of a real model's run, for load testing.

Every table has the schema `precompute run` writes and the row counts a run of
that model would have: all neurons of the paper definition x relations x
languages in `scores`, five top prompts per neuron and language, effects for
the whole k sweep and 10 random seeds. The numbers are drawn, not measured,
and the manifest says so (`synthetic: true`, model source `synthetic:<shape>`),
which the app shows. The structure is drawn to look like the paper's: relation
neurons gather in the middle layers, person_father and person_mother share most
of theirs, and ablating a relation's neurons costs that relation far more than
random ones do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from core.adapters import neuron_space_for
from core.distributions import QUANTILE_COLUMNS, SIDES, distributions_frame
from core.manifest import Manifest, write_manifest
from core.neurons import NeuronSpace
from core.parquet_io import write_parquet_atomic
from core.run_layout import (RANDOM, TOP_PLACES, CorpusFacts, ModelFacts, baseline_path, build_manifest, conditions,
                             distributions_path, effect_path, identification_path, neuron_means_path, null_top_path,
                             package_versions, random_sets_path, scores_path, single_neuron_path, top_prompts_path)
from precompute.options import PAPER_K_SWEEP, RunOptions
from precompute.stages.effects import neuron_set
from precompute.stages.identification import validated
from precompute.stages.scoring import neuron_columns, scores_frame, top_prompts_frame


SYNTHETIC_NULL_SEEDS = 2  # permutation-null seeds drawn (random top ranks)
SYNTHETIC_SCREENED = 64  # neurons given a drawn single-neuron screen
SYNTHETIC_POOL = 1000  # identification prompts the drawn neuron means are said to average


@dataclass(frozen=True)
class Shape:
    num_layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int = 32000
    k: str = "3000"  # the paper's k for Llama-2-7B; a small shape needs a fraction


SHAPES = {
    "llama-2-7b": Shape(32, 4096, 11008),
    "llama-2-13b": Shape(40, 5120, 13824),
    "small": Shape(4, 64, 192, 1000, "5%"),  # for tests
}
PAPER_RELATIONS = ("company_ceo", "company_hq", "landmark_in_country", "landmark_on_continent", "person_father",
                   "person_mother", "person_occupation", "person_plays_instrument", "person_plays_position_in_sport",
                   "person_plays_pro_sport", "product_by_company", "star_constellation")
PAPER_LANGUAGES = ("en", "de", "es", "fr", "zh", "ja")
# Pairs whose drawn neuron sets overlap, and by how much (the paper: father/mother share 2,053 of 3,000).
SHARED = {("person_father", "person_mother"): 0.68, ("person_occupation", "person_plays_position_in_sport"): 0.1,
          ("person_plays_position_in_sport", "person_plays_pro_sport"): 0.2}


def llama_config(shape: Shape, **extra):
    """A LlamaConfig of this shape (heads of 128 dimensions, as Llama-2's); no weights."""
    from transformers import LlamaConfig

    heads = max(1, shape.hidden_size // 128)
    return LlamaConfig(hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
                       num_hidden_layers=shape.num_layers, num_attention_heads=heads, num_key_value_heads=heads,
                       vocab_size=shape.vocab_size, **extra)


def space_of(shape: Shape) -> NeuronSpace:
    return neuron_space_for(llama_config(shape), "paper")


class SyntheticRun:
    def __init__(self, shape_name: str, out: Path, relations=PAPER_RELATIONS, languages=PAPER_LANGUAGES,
                 facts_per_relation: int = 350, evaluation_facts: int = 50, k_sweep=PAPER_K_SWEEP,
                 k: str | None = None, random_seeds: int = 10, seed: int = 0):
        from precompute.options import resolve_k, resolve_sweep

        self.shape_name, self.shape = shape_name, SHAPES[shape_name]
        self.out = Path(out)
        self.relations, self.languages = list(relations), list(languages)
        self.facts, self.evaluation_facts = facts_per_relation, evaluation_facts
        self.space = space_of(self.shape)
        n = self.space.total
        k = k or self.shape.k
        self.k = resolve_k(k, n)
        self.k_sweep = resolve_sweep(k_sweep, self.k, n)
        self.random_seeds, self.seed = random_seeds, seed
        self.rng = np.random.default_rng(seed)
        self.options = RunOptions(model=f"synthetic:{shape_name}", facts="synthetic", out=str(out), k=k,
                                  k_sweep=[str(x) for x in k_sweep], random_seeds=random_seeds, seed=seed,
                                  effect_templates=1, null_seeds=SYNTHETIC_NULL_SEEDS,
                                  critical_neurons=SYNTHETIC_SCREENED)

    # ----- drawn structure ------------------------------------------------------------------
    def _middle_layer_weights(self) -> np.ndarray:
        layer, _, _ = self.space.decompose(np.arange(self.space.total))
        centre, width = self.shape.num_layers * 0.45, self.shape.num_layers * 0.18
        w = np.exp(-0.5 * ((layer - centre) / width) ** 2)
        return w / w.sum()

    def relation_sets(self) -> dict[str, np.ndarray]:
        """Each relation's strongest neurons (4x the top k, so the ranking past k is structured too)."""
        size = min(self.space.total // 4, 4 * max(self.k_sweep[-1] // 4, self.k))
        weights = self._middle_layer_weights()
        sets: dict[str, np.ndarray] = {}
        for rel in self.relations:
            own = self.rng.choice(self.space.total, size, replace=False, p=weights)
            for (a, b), share in SHARED.items():
                if rel == b and a in sets:
                    take = int(share * size)
                    own = np.concatenate([sets[a][:take], own[~np.isin(own, sets[a][:take])][: size - take]])
            sets[rel] = own
        return sets

    # ----- tables ---------------------------------------------------------------------------
    def prompts(self) -> pd.DataFrame:
        rows = []
        for rel in self.relations:
            for lang in self.languages:
                for kind, templates in (("train", 2), ("heldout", 1)):
                    for t in range(templates):
                        for i in range(self.facts):
                            split = "evaluation" if i < self.evaluation_facts else "identification"
                            rows.append((rel, lang, kind, t, f"{rel}-subject-{i}", split,
                                         f"[{lang}] {rel.replace('_', ' ')} template {t} of subject {i}? Answer:",
                                         f"object-{i % 97}"))
        df = pd.DataFrame(rows, columns=["relation", "language", "template_kind", "template_index", "subject", "split",
                                         "text", "gold"])
        df.insert(0, "prompt_id", np.arange(len(df), dtype=np.int32))
        return df

    def write(self) -> Manifest:
        if self.out.exists() and any(self.out.iterdir()):
            raise ValueError(f"{self.out} is not empty; a synthetic run is written only into a new folder, so it "
                             "can never mix with a real run")
        n = self.space.total
        fixed = neuron_columns(self.space)
        prompts = self.prompts()
        base_acc = dict(zip(self.relations, self.rng.uniform(0.55, 0.95, len(self.relations))))
        correct = self.rng.random(len(prompts)) < prompts.relation.map(base_acc).to_numpy()
        first_lp = np.where(correct, -self.rng.gamma(1.0, 0.3, len(prompts)), -self.rng.gamma(2.0, 1.5, len(prompts)))
        baseline = prompts.assign(generated=np.where(correct, prompts.gold, "other"), correct=correct,
                                  gold_first_logprob=first_lp.astype(np.float32),
                                  gold_logprob=(first_lp * 1.6).astype(np.float32))
        sets = self.relation_sets()
        units = [(r, l) for r in self.relations for l in self.languages]
        with tqdm(total=len(units) * 3 + len(self.languages), desc=f"synthetic {self.shape_name} run", unit="table") as bar:
            for rel, lang in units:
                part = baseline[(baseline.relation == rel) & (baseline.language == lang)]
                write_parquet_atomic(part.drop(columns=["relation", "language"]).reset_index(drop=True),
                                     baseline_path(self.out, rel, lang))
                valid = validated(baseline[baseline.language == lang])
                pos = valid[valid.relation == rel].prompt_id.to_numpy()
                neg = np.sort(self.rng.choice(valid[valid.relation != rel].prompt_id.to_numpy(),
                                              min(4 * len(pos), int((valid.relation != rel).sum())), replace=False))
                write_parquet_atomic(pd.DataFrame({"prompt_id": np.concatenate([pos, neg]).astype(np.int32),
                                                   "positive": np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]}),
                                     identification_path(self.out, rel, lang))
                bar.update(2)
                write_parquet_atomic(self._scores(fixed, sets[rel], lang), scores_path(self.out, rel, lang))
                bar.update()
            for lang in self.languages:
                ids = baseline[(baseline.language == lang) & (baseline.split == "identification")].prompt_id.to_numpy()
                value = np.sort(self.rng.gamma(2.0, 0.5, (n, TOP_PLACES)).astype(np.float32), axis=1)[:, ::-1]
                prompt_ids = self.rng.choice(ids, n * TOP_PLACES).astype(np.int32).reshape(n, TOP_PLACES)
                write_parquet_atomic(top_prompts_frame(prompt_ids, value), top_prompts_path(self.out, lang))
                bar.update()
        self._effects(baseline)
        self._checks(fixed)
        manifest = self.manifest(len(prompts))
        write_manifest(manifest, self.out)
        return manifest

    def _scores(self, fixed: dict, strongest: np.ndarray, lang: str) -> pd.DataFrame:
        n = self.space.total
        ap = self.rng.beta(2.0, 8.0, n).astype(np.float32) * 0.6
        # A language keeps most of the English set: the paper finds relation neurons transfer across languages.
        kept = strongest if lang == "en" else np.where(self.rng.random(len(strongest)) < 0.6, strongest,
                                                       self.rng.choice(n, len(strongest)))
        ap[kept] = np.sort(self.rng.uniform(0.55, 1.0, len(kept)).astype(np.float32))[::-1]
        mean_neg = self.rng.normal(0.0, 0.05, n).astype(np.float32)
        mean_pos = (mean_neg + ap * self.rng.gamma(2.0, 0.05, n)).astype(np.float32)
        return scores_frame(fixed, {"ap": ap, "sign": np.ones_like(ap), "mean_pos": mean_pos,
                                    "median_pos": mean_pos * 0.9, "mean_neg": mean_neg})

    def _effects(self, baseline: pd.DataFrame) -> None:
        evaluation = baseline[(baseline.split == "evaluation")
                              & ((baseline.template_kind == "heldout") | (baseline.template_index < 1))].reset_index(drop=True)
        total = self.space.total
        for c in tqdm(conditions(self.relations, self.k_sweep, self.random_seeds), desc="synthetic effects", unit="set"):
            strength = (c.k - c.k_from) / (c.k - c.k_from + 0.004 * total)
            own = (evaluation.relation == c.ablated).to_numpy()
            lose = np.where(own, 0.85 * strength, 0.04 * strength if c.kind != RANDOM else 0.01 * strength)
            broken = self.rng.random(len(evaluation)) < lose
            lp_drop = np.where(broken, self.rng.gamma(2.0, 1.0, len(evaluation)), self.rng.gamma(1.0, 0.05, len(evaluation)))
            frame = pd.DataFrame({
                "prompt_id": evaluation.prompt_id.to_numpy(np.int32), "relation": evaluation.relation.to_numpy(),
                "language": evaluation.language.to_numpy(), "template_kind": evaluation.template_kind.to_numpy(),
                "correct": evaluation.correct.to_numpy() & ~broken,
                "gold_first_logprob": (evaluation.gold_first_logprob - lp_drop).astype(np.float32).to_numpy(),
                "gold_logprob": (evaluation.gold_logprob - 1.6 * lp_drop).astype(np.float32).to_numpy(),
                "kind": c.kind, "k_from": c.k_from, "seed": c.seed,
            })
            write_parquet_atomic(frame, effect_path(self.out, c))

    def _checks(self, fixed: dict) -> None:
        """The reviewer checks' tables, drawn: the random sets' neurons (exactly as the effects stage draws
        them), random top ranks as the permutation null, a single-neuron screen of a few neurons that
        finds nothing critical, and drawn activation distributions of as many neurons."""
        total, limit = self.space.total, max([self.k, *self.k_sweep])
        sets = [pd.DataFrame({"family": c.ablated, "k": np.int32(c.k), "seed": np.int32(c.seed),
                              "neuron": neuron_set(c, {}, total, self.seed).astype(np.int32)})
                for c in conditions(self.relations, self.k_sweep, self.random_seeds) if c.kind == RANDOM]
        write_parquet_atomic(pd.concat(sets, ignore_index=True), random_sets_path(self.out))
        columns = pd.DataFrame(fixed)
        lang = self.options.identification_language
        for seed in range(SYNTHETIC_NULL_SEEDS):
            frames = [columns.iloc[np.sort(self.rng.choice(total, limit, replace=False))].assign(
                relation=rel, language=lang, rank=np.arange(1, limit + 1, dtype=np.int32)) for rel in self.relations]
            frame = pd.concat(frames, ignore_index=True)
            write_parquet_atomic(frame[["relation", "language", "rank", "neuron", "layer", "module", "index"]],
                                 null_top_path(self.out, seed))
        screened = np.sort(self.rng.choice(total, min(SYNTHETIC_SCREENED, total), replace=False))
        grid = pd.DataFrame([(n, r) for n in screened for r in self.relations], columns=["neuron", "relation"])
        screen = columns.merge(grid, on="neuron").assign(
            language=lang, sample_prompts=np.int32(4), sample_broken=np.int32(0),
            sample_first_lp_drop=self.rng.gamma(1.0, 0.01, len(grid)), prompts=np.int32(0), base_accuracy=np.nan,
            accuracy=np.nan, drop_points=np.nan)
        write_parquet_atomic(screen, single_neuron_path(self.out))
        # Activation distributions of as many drawn neurons, positives a little higher than negatives.
        stored = np.sort(self.rng.choice(total, min(SYNTHETIC_SCREENED, total), replace=False))
        for rel in self.relations:
            for lang in self.languages:
                stats = {}
                for side, shift, n in zip(SIDES, (0.3, 0.0), (40, 160)):
                    values = np.sort(self.rng.normal(shift, 0.2, (len(QUANTILE_COLUMNS), len(stored))), axis=0)
                    stats[side] = {"n": np.full(len(stored), n), "mean": values[len(values) // 2],
                                   **dict(zip(QUANTILE_COLUMNS, values))}
                write_parquet_atomic(distributions_frame(stored, np.zeros(len(stored), bool), stats),
                                     distributions_path(self.out, rel, lang))
        # Every neuron's mean over the identification pool (what mean ablation sets it to), drawn.
        lang = self.options.identification_language
        write_parquet_atomic(pd.DataFrame({"neuron": np.arange(total, dtype=np.int32),
                                           "mean": self.rng.normal(0.0, 0.2, total).astype(np.float32),
                                           "prompts": np.int32(SYNTHETIC_POOL)}), neuron_means_path(self.out, lang))

    def manifest(self, prompt_count: int) -> Manifest:
        shape = self.shape
        return build_manifest(
            "complete",
            ModelFacts(f"synthetic:{self.shape_name}", "synthetic", "llama", shape.hidden_size,
                       shape.intermediate_size, shape.vocab_size, "none"),
            self.space,
            CorpusFacts("synthetic", "synthetic", self.relations, self.languages, "? Answer:", prompt_count),
            self.options.fingerprint_fields(), self.k, self.k_sweep, package_versions(("numpy", "pandas", "pyarrow")),
            synthetic=True,
            notes=(f"SYNTHETIC: drawn by `python -m precompute synthetic-run --shape {self.shape_name}` with the exact "
                   f"shape of a {self.shape_name} run; no model was run and no number in it is a measurement."),
        )
