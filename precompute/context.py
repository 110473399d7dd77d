"""What one precompute run works with: its options checked against the corpus and the model's config, its
prompts, its neuron space and k, and (after load_model) the model and its hooks. A plain dataclass built
by functions, so that a stage can be handed one without anything else happening."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from core.adapters import neuron_space_for
from core.facts import FactCorpus, Prompt
from core.hooks import NeuronHooks, neuron_hooks
from core.importers import load_facts
from core.loading import LoadedModel, load_causal_lm, load_config, model_fingerprint, resolve_model_dir
from core.manifest import Manifest
from core.neurons import NeuronSpace
from core.run_layout import CorpusFacts, ModelFacts, ablations_on_disk, build_manifest, package_versions
from precompute.options import RunOptions, resolve_k, resolve_sweep
from precompute.processes import ProcessGroup


class RunMismatchError(RuntimeError):
    pass


class RunInputError(ValueError):
    """The model, corpus or processes cannot make this run; the message says which and what to do."""


@dataclass
class RunContext:
    options: RunOptions
    workers: ProcessGroup
    log: Callable[..., None]
    corpus: FactCorpus
    languages: list[str]
    space: NeuronSpace
    k: int
    k_sweep: list[int]
    prompts: pd.DataFrame  # every prompt of the run, prompt_id = its row (all_prompts)
    lm: LoadedModel | None = None  # set by load_model
    hooks: NeuronHooks | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, summed over resumes
    resources: dict = field(default_factory=dict)  # processes, peak memory per stage

    @property
    def out(self) -> Path:
        return Path(self.options.out)

    @property
    def relations(self) -> list[str]:
        return self.corpus.relation_names

    @property
    def is_main(self) -> bool:
        return self.workers.is_main

    @cached_property
    def model_fingerprint(self) -> str:
        """Hashed once: the manifest is rewritten after every stage."""
        return model_fingerprint(self.lm.directory)

    def inputs(self) -> tuple[str, str, int]:
        """What every process must read alike: the main process writes what the others compute."""
        return self.corpus.fingerprint(), self.model_fingerprint, len(self.prompts)


def prepare_run(options: RunOptions, workers: ProcessGroup, log=print) -> RunContext:
    """The run's context from its options: the corpus read, languages and k checked against it and against
    the model's config (before any weights load). Raises ValueError for what these inputs cannot make."""
    if options.threads:
        torch.set_num_threads(options.threads)
    log = log if workers.is_main else (lambda *_: None)
    corpus = load_facts(Path(options.facts), options.min_facts, options.relations, log)
    languages = options.languages or corpus.languages
    unknown = sorted(set(languages) - set(corpus.languages))
    if unknown:
        raise ValueError(f"language(s) {', '.join(unknown)} not in the corpus ({', '.join(corpus.languages)})")
    if options.identification_language not in languages:
        raise ValueError(f"identification language {options.identification_language!r} is not among {languages}")
    # k is checked against the model's neuron count from its config, before the weights load.
    space = neuron_space_for(load_config(resolve_model_dir(options.model)), options.definition)
    k = resolve_k(options.k, space.total)
    k_sweep = resolve_sweep(options.k_sweep, k, space.total)
    return RunContext(options, workers, log, corpus, languages, space, k, k_sweep, all_prompts(corpus, languages),
                      resources={"processes": workers.world})


def load_model(ctx: RunContext) -> None:
    """Load the weights (onto this process's device) and hook the neurons."""
    ctx.lm = load_causal_lm(ctx.options.model, dtype=ctx.options.dtype,
                            device=ctx.workers.model_device(ctx.options.device))
    ctx.hooks = neuron_hooks(ctx.lm.model, ctx.space)


def all_prompts(corpus: FactCorpus, languages: list[str]) -> pd.DataFrame:
    """Every prompt of the run with a stable prompt_id (its position in this order); `alternatives` holds the
    other valid objects (a tuple, mostly empty), which judge answers but are not written to the run."""
    rows = []
    for rel in corpus.relation_names:
        for lang in languages:
            for kind in ("train", "heldout"):
                for p in corpus.prompts(relation=rel, language=lang, template_kind=kind):
                    templates = corpus.relations[rel].templates[lang][kind]
                    rows.append(dict(relation=rel, language=lang, template_kind=kind,
                                     template_index=templates.index(p.template), subject=p.subject,
                                     split=p.split, text=p.text, gold=p.gold, alternatives=p.alternatives))
    df = pd.DataFrame(rows)
    df.insert(0, "prompt_id", np.arange(len(df), dtype=np.int32))
    return df


def to_prompts(df: pd.DataFrame) -> list[Prompt]:
    return [Prompt(r.relation, r.language, r.subject, "", r.template_kind, r.split, r.text, r.gold,
                   tuple(getattr(r, "alternatives", ())))
            for r in df.itertuples(index=False)]


def run_manifest(ctx: RunContext, status: str) -> Manifest:
    cfg, o = ctx.lm.config, ctx.options
    model = ModelFacts(str(o.model), ctx.model_fingerprint, cfg.model_type,
                       getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None),
                       getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None), cfg.vocab_size, o.dtype)
    corpus = CorpusFacts(str(o.facts), ctx.corpus.fingerprint(), ctx.relations, ctx.languages,
                         ctx.corpus.prompt_suffix, int(len(ctx.prompts)))
    return build_manifest(status, model, ctx.space, corpus, o.fingerprint_fields(), ctx.k, ctx.k_sweep,
                          package_versions(), ctx.timings, ctx.resources, ablations=ablations_on_disk(ctx.out))
