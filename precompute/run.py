"""`precompute run`: the paper's pipeline as resumable stages writing Parquet under one run folder.

Stages (method.md): baseline -> identification sets -> capture -> scoring -> effects.
Every output file is written atomically; a stage's unit of work whose file
exists is skipped, so a killed run resumes where it stopped and ends with the
same bytes as an uninterrupted one.
"""
from __future__ import annotations

import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from core.adapters import neuron_space_for
from core.capture import capture_pooled
from core.effects import evaluate_prompts
from core.facts import FactCorpus, Prompt, load_corpus
from core.hooks import neuron_hooks
from core.loading import load_causal_lm, model_fingerprint
from core.manifest import MANIFEST, SCHEMA_VERSION, Manifest, ManifestError, read_manifest, write_manifest
from core.neurons import NeuronSpace
from core.parquet_io import partition_dir, read_parquet, write_parquet_atomic
from core.scoring import average_precision
from precompute.options import RunOptions, resolve_k

PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow")
SCORE_CHUNK = 65536
TOP_PROMPTS = 5  # per neuron and language, for the neuron page


class RunMismatchError(RuntimeError):
    pass


def all_prompts(corpus: FactCorpus, languages: list[str]) -> pd.DataFrame:
    """Every prompt of the run with a stable prompt_id (its position in this order)."""
    rows = []
    for rel in corpus.relation_names:
        for lang in languages:
            for kind in ("train", "heldout"):
                for p in corpus.prompts(relation=rel, language=lang, template_kind=kind):
                    templates = corpus.relations[rel].templates[lang][kind]
                    rows.append(dict(relation=rel, language=lang, template_kind=kind,
                                     template_index=templates.index(p.template), subject=p.subject,
                                     split=p.split, text=p.text, gold=p.gold))
    df = pd.DataFrame(rows)
    df.insert(0, "prompt_id", np.arange(len(df), dtype=np.int32))
    return df


def _to_prompts(df: pd.DataFrame) -> list[Prompt]:
    return [Prompt(r.relation, r.language, r.subject, "", r.template_kind, r.split, r.text, r.gold)
            for r in df.itertuples(index=False)]


def _outcome_frame(df: pd.DataFrame, outcomes) -> pd.DataFrame:
    return pd.DataFrame({
        "prompt_id": df["prompt_id"].to_numpy(np.int32),
        "generated": [o.generated for o in outcomes],
        "correct": np.array([o.correct for o in outcomes], dtype=bool),
        "gold_first_logprob": np.array([o.gold_first_logprob for o in outcomes], dtype=np.float32),
        "gold_logprob": np.array([o.gold_logprob for o in outcomes], dtype=np.float32),
    })


class PrecomputeRun:
    def __init__(self, options: RunOptions, log=print):
        self.o = options
        self.log = log
        self.out = Path(options.out)
        if options.threads:
            torch.set_num_threads(options.threads)
        self.corpus = load_corpus(Path(options.facts))
        self.languages = options.languages or self.corpus.languages
        unknown = sorted(set(self.languages) - set(self.corpus.languages))
        if unknown:
            raise ValueError(f"language(s) {', '.join(unknown)} not in the corpus ({', '.join(self.corpus.languages)})")
        if options.identification_language not in self.languages:
            raise ValueError(f"identification language {options.identification_language!r} is not among {self.languages}")
        self.lm = load_causal_lm(options.model, dtype=options.dtype, device=options.device)
        self.space: NeuronSpace = neuron_space_for(self.lm.config, options.definition)
        self.hooks = neuron_hooks(self.lm.model, self.space)
        self.k = resolve_k(options.k, self.space.total)
        self.k_sweep = sorted({resolve_k(k, self.space.total) for k in options.k_sweep} | {self.k})
        self.prompts = all_prompts(self.corpus, self.languages)
        self.timings: dict[str, float] = {}

    # ----- manifest -------------------------------------------------------------------------
    def _manifest(self, status: str) -> Manifest:
        cfg = self.lm.config
        return Manifest(
            schema_version=SCHEMA_VERSION,
            status=status,
            model={
                "source": str(self.o.model),
                "fingerprint": model_fingerprint(self.lm.directory),
                "model_type": cfg.model_type,
                "num_layers": self.space.num_layers,
                "hidden_size": getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None),
                "intermediate_size": getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None),
                "vocab_size": cfg.vocab_size,
                "dtype": self.o.dtype,
            },
            neurons={
                "definition": self.space.definition,
                "total": self.space.total,
                "num_layers": self.space.num_layers,
                "per_layer": self.space.per_layer,
                "modules": {m.name: m.size for m in self.space.modules},
                "module_order": list(self.space.module_names),
            },
            corpus={
                "path": str(self.o.facts),
                "fingerprint": self.corpus.fingerprint(),
                "relations": self.corpus.relation_names,
                "languages": self.languages,
                "prompt_suffix": self.corpus.prompt_suffix,
                "prompts": int(len(self.prompts)),
            },
            options=self.o.fingerprint_fields(),
            k=self.k,
            k_sweep=self.k_sweep,
            packages={"python": platform.python_version(), **{p: metadata.version(p) for p in PACKAGES}},
            timings=self.timings,
        )

    def _check_resumable(self) -> None:
        if not (self.out / MANIFEST).exists():
            return
        try:
            old = read_manifest(self.out)
        except ManifestError as exc:
            raise RunMismatchError(f"{self.out} holds a run that cannot be resumed ({exc}); use a new --out") from exc
        new = self._manifest("running")
        for key, a, b in [("model", old.model["fingerprint"], new.model["fingerprint"]),
                          ("corpus", old.corpus["fingerprint"], new.corpus["fingerprint"]),
                          ("options", old.options, new.options)]:
            if a != b:
                raise RunMismatchError(
                    f"{self.out} holds a run with a different {key}; resume only with the same model, "
                    "corpus and options, or choose a new --out")
        self.timings.update(old.timings)

    # ----- stages ---------------------------------------------------------------------------
    def run(self) -> Manifest:
        self._check_resumable()
        self.out.mkdir(parents=True, exist_ok=True)
        write_manifest(self._manifest("running"), self.out)
        self.log(f"model {self.o.model}: {self.space.describe()}; k={self.k:,}, sweep {self.k_sweep}")
        for name, stage in [("baseline", self.stage_baseline), ("identification", self.stage_identification),
                            ("capture", self.stage_capture), ("scoring", self.stage_scoring),
                            ("effects", self.stage_effects)]:
            started = time.time()
            did = stage()
            if did:
                self.timings[name] = round(self.timings.get(name, 0.0) + time.time() - started, 2)
            write_manifest(self._manifest("running"), self.out)
        manifest = self._manifest("complete")
        write_manifest(manifest, self.out)
        return manifest

    def _todo(self, units, path_of):
        return [u for u in units if not path_of(u).exists()]

    def baseline_path(self, rel: str, lang: str) -> Path:
        return partition_dir(self.out / "baseline", relation=rel, language=lang) / "part-0.parquet"

    def stage_baseline(self) -> bool:
        units = [(r, l) for r in self.corpus.relation_names for l in self.languages]
        todo = self._todo(units, lambda u: self.baseline_path(*u))
        if not todo:
            return False
        bar = tqdm(total=int(sum(((self.prompts.relation == r) & (self.prompts.language == l)).sum() for r, l in todo)),
                   desc="baseline: greedy 2-token answers", unit="prompt")
        for rel, lang in todo:
            df = self.prompts[(self.prompts.relation == rel) & (self.prompts.language == lang)]
            outcomes = evaluate_prompts(self.lm.model, self.lm.tokenizer, _to_prompts(df), self.o.batch_size)
            frame = df.drop(columns=["relation", "language"]).reset_index(drop=True)
            frame = pd.concat([frame, _outcome_frame(df, outcomes).drop(columns=["prompt_id"])], axis=1)
            write_parquet_atomic(frame, self.baseline_path(rel, lang))
            bar.update(len(df))
        bar.close()
        return True

    def baseline(self) -> pd.DataFrame:
        parts = []
        for rel in self.corpus.relation_names:
            for lang in self.languages:
                part = read_parquet(self.baseline_path(rel, lang))
                part["relation"], part["language"] = rel, lang
                parts.append(part)
        return pd.concat(parts, ignore_index=True).sort_values("prompt_id").reset_index(drop=True)

    def identification_path(self, rel: str, lang: str) -> Path:
        return partition_dir(self.out / "identification", relation=rel, language=lang) / "part-0.parquet"

    def stage_identification(self) -> bool:
        units = [(r, l) for r in self.corpus.relation_names for l in self.languages]
        todo = self._todo(units, lambda u: self.identification_path(*u))
        if not todo:
            return False
        base = self.baseline()
        valid = base[(base.split == "identification") & (base.template_kind == "train") & base.correct]
        for rel, lang in tqdm(todo, desc="identification sets", unit="set"):
            in_lang = valid[valid.language == lang]
            positives = in_lang[in_lang.relation == rel].prompt_id.to_numpy()
            pool = in_lang[in_lang.relation != rel].prompt_id.to_numpy()
            r_index, l_index = self.corpus.relation_names.index(rel), self.corpus.languages.index(lang)
            rng = np.random.default_rng([self.o.seed, r_index, l_index])
            count = min(int(round(self.o.negatives_ratio * len(positives))), len(pool))
            negatives = np.sort(rng.choice(pool, count, replace=False)) if count else np.array([], dtype=np.int32)
            frame = pd.DataFrame({
                "prompt_id": np.concatenate([positives, negatives]).astype(np.int32),
                "positive": np.concatenate([np.ones(len(positives), bool), np.zeros(len(negatives), bool)]),
            })
            write_parquet_atomic(frame, self.identification_path(rel, lang))
        return True

    def identification(self, rel: str, lang: str) -> pd.DataFrame:
        return read_parquet(self.identification_path(rel, lang))

    def capture_paths(self, lang: str) -> tuple[Path, Path]:
        work = partition_dir(self.out / "work", language=lang)
        return work / "activations.npy", work / "prompt_ids.npy"

    def stage_capture(self) -> bool:
        todo = [l for l in self.languages if not self.capture_paths(l)[0].exists()
                and self._scores_missing(l)]
        if not todo:
            return False
        for lang in todo:
            ids = np.unique(np.concatenate([self.identification(r, lang).prompt_id.to_numpy()
                                            for r in self.corpus.relation_names])).astype(np.int32)
            texts = self.prompts.set_index("prompt_id").loc[ids, "text"].tolist()
            acts_path, ids_path = self.capture_paths(lang)
            acts_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = acts_path.with_name(".activations.npy.tmp")
            # A memory-mapped matrix: a 7B model's capture never has to fit in RAM.
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(ids), self.space.total))
            with tqdm(total=len(ids), desc=f"capture ({lang}): {self.o.pooling}-pooled activations", unit="prompt") as bar:
                capture_pooled(self.hooks, self.lm.tokenizer, texts, self.o.pooling, self.o.batch_size,
                               out=out, on_batch=bar.update)
            out.flush()
            del out
            np.save(ids_path, ids)
            tmp.replace(acts_path)
        return True

    def scores_path(self, rel: str, lang: str) -> Path:
        return partition_dir(self.out / "scores", relation=rel, language=lang) / "part-0.parquet"

    def _scores_missing(self, lang: str) -> bool:
        return not self.top_prompts_path(lang).exists() or any(
            not self.scores_path(r, lang).exists() for r in self.corpus.relation_names)

    def stage_scoring(self) -> bool:
        todo_langs = [l for l in self.languages if self._scores_missing(l)]
        if not todo_langs:
            return False
        n = self.space.total
        layer, module_pos, index = self.space.decompose(np.arange(n))
        module_names = np.array(self.space.module_names)[module_pos]
        for lang in todo_langs:
            acts_path, ids_path = self.capture_paths(lang)
            acts = np.load(acts_path, mmap_mode="r")
            row_of = {int(p): i for i, p in enumerate(np.load(ids_path))}
            rels = [r for r in self.corpus.relation_names if not self.scores_path(r, lang).exists()]
            sets = {}
            for rel in rels:
                ident = self.identification(rel, lang)
                sets[rel] = (np.array([row_of[int(p)] for p in ident.prompt_id]), np.array(ident.positive, dtype=bool))
            result = {rel: {k: np.empty(n) for k in ("ap", "mean_pos", "median_pos", "mean_neg")} for rel in rels}
            captured_ids = np.load(ids_path)
            top_rows = min(TOP_PROMPTS, len(captured_ids))
            top_prompt = np.empty((n, top_rows), dtype=np.int32)
            top_value = np.empty((n, top_rows), dtype=np.float32)
            with tqdm(total=n * len(rels), desc=f"scoring ({lang}): average precision", unit="neuron") as bar:
                for lo in range(0, n, SCORE_CHUNK):
                    hi = min(lo + SCORE_CHUNK, n)
                    block = np.ascontiguousarray(acts[:, lo:hi])
                    # The prompts where each neuron is highest, for the neuron page (stable order on ties).
                    best = np.argsort(-block, axis=0, kind="stable")[:top_rows].T
                    top_prompt[lo:hi] = captured_ids[best]
                    top_value[lo:hi] = np.take_along_axis(block.T, best, axis=1)
                    for rel in rels:
                        rows, labels = sets[rel]
                        if labels.all() or not labels.any():
                            raise RuntimeError(f"relation {rel} ({lang}) has no positives or no negatives "
                                               "among validated prompts: the model answers too few correctly")
                        x = block[rows]
                        r = result[rel]
                        r["ap"][lo:hi] = average_precision(torch.from_numpy(x), torch.from_numpy(labels)).numpy()
                        r["mean_pos"][lo:hi] = x[labels].mean(0)
                        r["median_pos"][lo:hi] = np.median(x[labels], axis=0)
                        r["mean_neg"][lo:hi] = x[~labels].mean(0)
                        bar.update(hi - lo)
            for rel in rels:
                r = result[rel]
                order = np.argsort(-r["ap"], kind="stable")
                rank = np.empty(n, dtype=np.int32)
                rank[order] = np.arange(1, n + 1, dtype=np.int32)
                frame = pd.DataFrame({
                    "neuron": np.arange(n, dtype=np.int32), "layer": layer.astype(np.int16),
                    "module": pd.Categorical(module_names, categories=list(self.space.module_names)),
                    "index": index.astype(np.int32), "ap": r["ap"].astype(np.float32), "rank": rank,
                    "mean_pos": r["mean_pos"].astype(np.float32), "median_pos": r["median_pos"].astype(np.float32),
                    "mean_neg": r["mean_neg"].astype(np.float32),
                })
                write_parquet_atomic(frame, self.scores_path(rel, lang))
            if not self.top_prompts_path(lang).exists():
                frame = pd.DataFrame({
                    "neuron": np.repeat(np.arange(n, dtype=np.int32), top_rows),
                    "place": np.tile(np.arange(1, top_rows + 1, dtype=np.int16), n),
                    "prompt_id": top_prompt.reshape(-1), "value": top_value.reshape(-1),
                })
                write_parquet_atomic(frame, self.top_prompts_path(lang))
        return True

    def top_prompts_path(self, lang: str) -> Path:
        return partition_dir(self.out / "top_prompts", language=lang) / "part-0.parquet"

    def ranking(self, rel: str, lang: str | None = None) -> np.ndarray:
        """Flat neuron ids of `rel` by decreasing AP (rank 1 first)."""
        scores = read_parquet(self.scores_path(rel, lang or self.o.identification_language))
        return scores.sort_values("rank").neuron.to_numpy()

    # ----- effects --------------------------------------------------------------------------
    def effect_prompts(self) -> pd.DataFrame:
        df = self.prompts[self.prompts.split == "evaluation"]
        if self.o.effect_templates is not None:
            df = df[(df.template_kind == "heldout") | (df.template_index < self.o.effect_templates)]
        return df.reset_index(drop=True)

    def conditions(self) -> list[dict]:
        """Every ablation to measure: each relation's top-k and rank ranges, and random sets."""
        out = []
        for rel in self.corpus.relation_names:
            previous = 0
            for k in self.k_sweep:
                out.append(dict(ablated=rel, kind="top", k_from=0, k=k, seed=-1))
                if previous:
                    out.append(dict(ablated=rel, kind="range", k_from=previous, k=k, seed=-1))
                previous = k
        for k in self.k_sweep:
            for s in range(self.o.random_seeds):
                out.append(dict(ablated="random", kind="random", k_from=0, k=k, seed=s))
        return out

    def effect_path(self, c: dict) -> Path:
        name = f"{c['kind']}-{c['k_from']}" + (f"-seed{c['seed']}" if c["kind"] == "random" else "")
        return partition_dir(self.out / "effects", ablated=c["ablated"], k=c["k"]) / f"{name}.parquet"

    def neuron_set(self, c: dict, rankings: dict[str, np.ndarray]) -> np.ndarray:
        if c["kind"] == "random":
            rng = np.random.default_rng([self.o.seed, 7919, c["k"], c["seed"]])
            return np.sort(rng.choice(self.space.total, c["k"], replace=False))
        return np.sort(rankings[c["ablated"]][c["k_from"] : c["k"]])

    def stage_effects(self) -> bool:
        todo = [c for c in self.conditions() if not self.effect_path(c).exists()]
        if not todo:
            return False
        rankings = {rel: self.ranking(rel) for rel in self.corpus.relation_names}
        df = self.effect_prompts()
        prompts = _to_prompts(df)
        with tqdm(total=len(todo) * len(df), desc="effects: ablated answers", unit="prompt") as bar:
            for c in todo:
                neurons = [self.space.neuron(i) for i in self.neuron_set(c, rankings)]
                with self.hooks.ablate(neurons):
                    outcomes = evaluate_prompts(self.lm.model, self.lm.tokenizer, prompts, self.o.batch_size)
                frame = _outcome_frame(df, outcomes).drop(columns=["generated"])
                frame.insert(1, "relation", df.relation.to_numpy())
                frame.insert(2, "language", df.language.to_numpy())
                frame.insert(3, "template_kind", df.template_kind.to_numpy())
                for key in ("kind", "k_from", "seed"):
                    frame[key] = c[key]
                write_parquet_atomic(frame, self.effect_path(c))
                bar.update(len(df))
        return True


def run_precompute(options: RunOptions, log=print) -> Manifest:
    return PrecomputeRun(options, log).run()
