"""`precompute run`: the paper's pipeline as resumable stages writing Parquet under one run folder.

Stages (method.md): baseline -> identification sets -> capture -> scoring -> effects.
Every output file is written atomically; a stage's unit of work whose file
exists is skipped, so a killed run resumes where it stopped and ends with the
same bytes as an uninterrupted one.

Started by `accelerate launch` or `torchrun`, the model's passes (baseline,
capture, effects) are split by batch over the processes (precompute.workers);
the main process decides the work, gathers the results and writes them once.
"""
from __future__ import annotations

import platform
import time
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from core.adapters import neuron_space_for
from core.capture import capture_pooled
from core.effects import EvalTokens, Outcome, eval_batches, evaluate_batch, tokenize_for_eval
from core.facts import FactCorpus, Prompt
from core.generation import model_device
from core.hooks import neuron_hooks
from core.importers import load_facts
from core.loading import load_causal_lm, load_config, model_fingerprint, resolve_model_dir
from core.manifest import MANIFEST, SCHEMA_VERSION, Manifest, ManifestError, read_manifest, write_manifest
from core.neurons import NeuronSpace
from core.mapped import NpyColumns, release_pages
from core.parquet_io import partition_dir, read_parquet, remove_dead_temporaries, write_parquet_atomic
from core.peak_memory import read_peak, reset_peak
from core.score_stream import LabelledRows, score_stream
from precompute.options import RunOptions, resolve_k, resolve_sweep
from precompute.workers import Workers

PACKAGES = ("torch", "transformers", "accelerate", "tokenizers", "safetensors", "numpy", "pandas", "pyarrow")
TOP_PROMPTS = 5  # per neuron and language, for the neuron page


class RunMismatchError(RuntimeError):
    pass


class RunInputError(ValueError):
    """The model, corpus or processes cannot make this run; the message says which and what to do."""


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
    def __init__(self, options: RunOptions, log=print, workers: Workers | None = None):
        self.o = options
        self.workers = workers or Workers()
        self.log = log if self.workers.is_main else (lambda *_: None)
        self.out = Path(options.out)
        if options.threads:
            torch.set_num_threads(options.threads)
        self.corpus = load_facts(Path(options.facts), options.min_facts)
        self.languages = options.languages or self.corpus.languages
        unknown = sorted(set(self.languages) - set(self.corpus.languages))
        if unknown:
            raise ValueError(f"language(s) {', '.join(unknown)} not in the corpus ({', '.join(self.corpus.languages)})")
        if options.identification_language not in self.languages:
            raise ValueError(f"identification language {options.identification_language!r} is not among {self.languages}")
        # k is checked against the model's neuron count from its config, before the weights load.
        self.space: NeuronSpace = neuron_space_for(load_config(resolve_model_dir(options.model)), options.definition)
        self.k = resolve_k(options.k, self.space.total)
        self.k_sweep = resolve_sweep(options.k_sweep, self.k, self.space.total)
        self.lm = load_causal_lm(options.model, dtype=options.dtype, device=self.workers.model_device(options.device))
        self.hooks = neuron_hooks(self.lm.model, self.space)
        self.prompts = all_prompts(self.corpus, self.languages)
        self.timings: dict[str, float] = {}
        self.resources: dict = {"processes": self.workers.world}

    # ----- manifest -------------------------------------------------------------------------
    def _manifest(self, status: str) -> Manifest:
        cfg = self.lm.config
        return Manifest(
            schema_version=SCHEMA_VERSION,
            status=status,
            model={
                "source": str(self.o.model),
                "fingerprint": self.model_fingerprint,
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
            resources=self.resources,
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
        self.resources = {**old.resources, "processes": self.workers.world}

    # ----- stages ---------------------------------------------------------------------------
    @cached_property
    def model_fingerprint(self) -> str:
        """Hashed once: the manifest is rewritten after every stage."""
        return model_fingerprint(self.lm.directory)

    # ----- processes ------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.workers.is_main

    def _on_main(self, work):
        """Run `work` on the main process only; every process gets its result, or raises its error."""
        result, error = None, None
        if self.is_main:
            try:
                result = work()
            except Exception as exc:  # handed to every process, so none waits forever for the others
                error = exc
        result, error = self.workers.broadcast((result, error))
        if error is not None:
            error.raised_on_main_process = True  # so only the main process reports it
            raise error
        return result

    def _bar(self, **kwargs) -> tqdm:
        return tqdm(disable=not self.is_main, **kwargs)

    def _start(self) -> None:
        self._check_resumable()
        self.out.mkdir(parents=True, exist_ok=True)
        remove_dead_temporaries(self.out)  # half-written files of a killed run (never read: not *.parquet)
        write_manifest(self._manifest("running"), self.out)

    def _inputs(self) -> tuple[str, str, int]:
        return self.corpus.fingerprint(), self.model_fingerprint, len(self.prompts)

    def _check_same_inputs(self) -> None:
        """Every process must read the same corpus and model: the main one writes what the others compute."""
        if self.workers.world == 1:
            return
        seen = self.workers.gather(self._inputs())

        def compare() -> None:
            for rank, inputs in enumerate(seen):
                if inputs != seen[0]:
                    what = [name for name, a, b in zip(("corpus", "model", "prompt count"), seen[0], inputs) if a != b]
                    raise RunInputError(f"process {rank} reads a different {' and '.join(what)} than process 0: give "
                                        "every machine the same --facts and --model files")

        self._on_main(compare)

    def run(self) -> Manifest:
        self._check_same_inputs()
        self._on_main(self._start)
        self.log(f"model {self.o.model}: {self.space.describe()}; k={self.k:,}, sweep {self.k_sweep}"
                 + (f"; {self.workers.world} processes" if self.workers.world > 1 else ""))
        for name, stage in [("baseline", self.stage_baseline), ("identification", self.stage_identification),
                            ("capture", self.stage_capture), ("scoring", self.stage_scoring),
                            ("effects", self.stage_effects)]:
            started = time.time()
            reset_peak()
            did = stage()
            peaks = self.workers.gather(read_peak())
            if self.is_main and did:
                self.timings[name] = round(self.timings.get(name, 0.0) + time.time() - started, 2)
                # The largest process's peak: what one machine (or one GPU) must hold.
                self.resources[name] = {key: max(p.get(key, 0.0) for p in peaks) for key in peaks[0]}
                self.log(f"{name}: {self.timings[name]:.1f} s, peak " + ", ".join(
                    f"{key.removeprefix('peak_').replace('_mib', '')} {value:,.0f} MiB"
                    for key, value in self.resources[name].items()))
            if self.is_main:
                write_manifest(self._manifest("running"), self.out)
        manifest = self._manifest("complete")
        if self.is_main:
            write_manifest(manifest, self.out)
        self.workers.barrier()
        return manifest

    def _evaluate(self, prompts: list[Prompt], tokens: list[EvalTokens] | None = None) -> list[Outcome] | None:
        """Greedy answers for `prompts`, batches split over the processes; all of them on the main process."""
        tokens = tokens if tokens is not None else tokenize_for_eval(self.lm.tokenizer, prompts)
        mine: dict[int, Outcome] = {}
        for idx in self.workers.mine(eval_batches(tokens, self.o.batch_size)):
            mine.update(zip(idx, evaluate_batch(self.lm.model, self.lm.tokenizer, prompts, tokens, idx)))
        parts = self.workers.gather(mine)
        if parts is None:
            return None
        merged = {i: o for part in parts for i, o in part.items()}
        return [merged[i] for i in range(len(prompts))]

    def _todo(self, units, path_of):
        return [u for u in units if not path_of(u).exists()]

    def baseline_path(self, rel: str, lang: str) -> Path:
        return partition_dir(self.out / "baseline", relation=rel, language=lang) / "part-0.parquet"

    def stage_baseline(self) -> bool:
        units = [(r, l) for r in self.corpus.relation_names for l in self.languages]
        todo = self._on_main(lambda: self._todo(units, lambda u: self.baseline_path(*u)))
        if not todo:
            return False
        bar = self._bar(total=int(sum(((self.prompts.relation == r) & (self.prompts.language == l)).sum() for r, l in todo)),
                        desc="baseline: greedy 2-token answers", unit="prompt")
        for rel, lang in todo:
            df = self.prompts[(self.prompts.relation == rel) & (self.prompts.language == lang)]
            outcomes = self._evaluate(_to_prompts(df))
            if self.is_main:
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
        return self._on_main(self._identify)

    def _identify(self) -> bool:
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
            if not len(positives) or not len(pool):
                asked = int(((base.relation == rel) & (base.language == lang) & (base.split == "identification")
                             & (base.template_kind == "train")).sum())
                raise RunInputError(
                    f"relation {rel} ({lang}): the model answers {len(positives)} of its {asked} identification "
                    f"prompts correctly{'' if len(positives) else ', so there is nothing to find neurons from'}"
                    f"{'' if len(pool) else ' and no other relation has a correct answer to serve as negatives'}; "
                    "drop the relation or language, or use a model that knows these facts")
            r_index, l_index = self.corpus.relation_names.index(rel), self.corpus.languages.index(lang)
            rng = np.random.default_rng([self.o.seed, r_index, l_index])
            # At least one negative: a tiny --negatives-ratio must not leave average precision without any.
            count = min(max(1, int(round(self.o.negatives_ratio * len(positives)))), len(pool))
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

    def _capture_todo(self) -> list[tuple[str, np.ndarray]]:
        """(language, prompt ids to capture) for each language whose capture and scores are missing."""
        todo = []
        for lang in self.languages:
            if self.capture_paths(lang)[0].exists() or not self._scores_missing(lang):
                continue
            ids = np.unique(np.concatenate([self.identification(r, lang).prompt_id.to_numpy()
                                            for r in self.corpus.relation_names])).astype(np.int32)
            todo.append((lang, ids))
        return todo

    def stage_capture(self) -> bool:
        todo = self._on_main(self._capture_todo)
        if not todo:
            return False
        world, rank = self.workers.world, self.workers.rank
        for lang, ids in todo:
            texts = self.prompts.set_index("prompt_id").loc[ids, "text"].tolist()
            acts_path, ids_path = self.capture_paths(lang)
            out = None
            if self.is_main:
                acts_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = acts_path.with_name(".activations.npy.tmp")
                # A memory-mapped matrix: a 7B model's capture never has to fit in RAM.
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(ids), self.space.total))
            batches = [(lo, min(lo + self.o.batch_size, len(ids))) for lo in range(0, len(ids), self.o.batch_size)]
            with self._bar(total=len(ids), desc=f"capture ({lang}): {self.o.pooling}-pooled activations", unit="prompt") as bar:
                for first in range(0, len(batches), world):
                    round_ = batches[first : first + world]
                    sent = None
                    if rank < len(round_):
                        lo, hi = round_[rank]
                        pooled = capture_pooled(self.hooks, self.lm.tokenizer, texts[lo:hi], self.o.pooling,
                                                self.o.batch_size, out=out[lo:hi] if out is not None else None)
                        sent = None if self.is_main else (lo, pooled)
                    for item in self.workers.gather(sent) or []:
                        if item is not None:
                            out[item[0] : item[0] + len(item[1])] = item[1]
                    if out is not None:
                        release_pages(out)  # written rows go to the file; resident memory stays one round
                    bar.update(round_[-1][1] - round_[0][0])
            if self.is_main:
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
        return self._on_main(self._score)

    def _score(self) -> bool:
        todo_langs = [l for l in self.languages if self._scores_missing(l)]
        if not todo_langs:
            return False
        n = self.space.total
        layer, module_pos, index = self.space.decompose(np.arange(n))
        module_names = np.array(self.space.module_names)[module_pos]
        device = model_device(self.lm.model)
        device = str(device) if device.type == "cuda" else "cpu"  # AP's sorts on the GPU when there is one
        for lang in todo_langs:
            acts_path, ids_path = self.capture_paths(lang)
            acts = NpyColumns(acts_path)
            captured_ids = np.load(ids_path)
            row_of = {int(p): i for i, p in enumerate(captured_ids)}
            rels = [r for r in self.corpus.relation_names if not self.scores_path(r, lang).exists()]
            sets = {}
            for rel in rels:
                ident = self.identification(rel, lang)
                sets[rel] = LabelledRows(np.array([row_of[int(p)] for p in ident.prompt_id]),
                                         np.array(ident.positive, dtype=bool))
            with tqdm(total=n * len(rels), desc=f"scoring ({lang}): average precision", unit="neuron") as bar:
                # Identification already refused a relation without positives or negatives.
                scored = score_stream(acts, sets, captured_ids, TOP_PROMPTS, self.o.score_memory_mib << 20,
                                      device, on_progress=bar.update)
            for rel in rels:
                r = scored.stats[rel]
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
                top_rows = scored.top_prompt.shape[1]
                frame = pd.DataFrame({
                    "neuron": np.repeat(np.arange(n, dtype=np.int32), top_rows),
                    "place": np.tile(np.arange(1, top_rows + 1, dtype=np.int16), n),
                    "prompt_id": scored.top_prompt.reshape(-1), "value": scored.top_value.reshape(-1),
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

    def _effects_todo(self) -> list[tuple[dict, np.ndarray]]:
        todo = [c for c in self.conditions() if not self.effect_path(c).exists()]
        if not todo:
            return []
        rankings = {rel: self.ranking(rel) for rel in self.corpus.relation_names}
        return [(c, self.neuron_set(c, rankings)) for c in todo]

    def stage_effects(self) -> bool:
        todo = self._on_main(self._effects_todo)
        if not todo:
            return False
        df = self.effect_prompts()
        prompts = _to_prompts(df)
        tokens = tokenize_for_eval(self.lm.tokenizer, prompts)
        with self._bar(total=len(todo) * len(df), desc="effects: ablated answers", unit="prompt") as bar:
            for c, neuron_set in todo:
                with self.hooks.ablate([self.space.neuron(i) for i in neuron_set]):
                    outcomes = self._evaluate(prompts, tokens)
                if self.is_main:
                    frame = _outcome_frame(df, outcomes).drop(columns=["generated"])
                    frame.insert(1, "relation", df.relation.to_numpy())
                    frame.insert(2, "language", df.language.to_numpy())
                    frame.insert(3, "template_kind", df.template_kind.to_numpy())
                    for key in ("kind", "k_from", "seed"):
                        frame[key] = c[key]
                    write_parquet_atomic(frame, self.effect_path(c))
                bar.update(len(df))
        return True


def run_precompute(options: RunOptions, log=print, workers: Workers | None = None) -> Manifest:
    return PrecomputeRun(options, log, workers).run()
