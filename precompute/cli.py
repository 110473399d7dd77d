"""`python -m precompute ...`: every offline step of the project, one subcommand each."""
from __future__ import annotations

import argparse
import math
import json
import sys
from pathlib import Path

from core.loading import DTYPES
from precompute.arguments import (MIN_SCORE_MEMORY_MIB, OneLineParser, OptionError, corpus_folder, device,
                                  existing_path, fraction, int_at_least, k_list, k_value, language, language_list,
                                  model_folder, positive_float, relation_list, run_folder)

DEFAULT_TEMPLATES = Path("data/facts/templates.json")
DEFAULT_CORPUS = Path("data/facts/demo")
DEFAULT_MODEL = Path("data/models/demo")
SEED = int_at_least(0)  # numpy's generators take no negative seed


def _cmd_build_corpus(args) -> int:
    from core.facts import save_corpus
    from precompute.demo_corpus import build_demo_corpus

    corpus = build_demo_corpus(args.templates, seed=args.seed)
    save_corpus(corpus, args.out)
    facts = sum(len(r.facts) for r in corpus.relations.values())
    print(f"wrote {args.out}: {len(corpus.relations)} relations, {facts} facts, languages {', '.join(corpus.languages)}")
    return 0


def chosen_relations(args) -> list[str] | None:
    """--relations or --paper-relations (None: every relation); either one with --min-facts is refused: the
    names decide which relations are used, so a size rule could only drop a named one."""
    from core.importers import PAPER_RELATIONS

    names = list(PAPER_RELATIONS) if args.paper_relations else args.relations
    if names is not None and args.min_facts:
        raise OptionError(f"--min-facts {args.min_facts} with {'--paper-relations' if args.paper_relations else '--relations'}: "
                          "naming the relations already chooses them; drop --min-facts")
    return names


def add_relation_options(p: argparse.ArgumentParser, min_facts_default: int, min_facts_help: str) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--relations", type=relation_list,
                       help="comma-separated relations to use (LRE: file stems, e.g. company_ceo,person_father)")
    group.add_argument("--paper-relations", action="store_true",
                       help="the paper's 12 LRE relations (method.md), whatever their size")
    p.add_argument("--min-facts", type=int_at_least(0), default=min_facts_default, help=min_facts_help)


def _cmd_import_lre(args) -> int:
    from core.facts import save_corpus
    from core.importers import lre_corpus, read_lre_relations

    relations = read_lre_relations(args.source, chosen_relations(args), args.min_facts)
    corpus = lre_corpus(relations, evaluation_count=args.evaluation_count, seed=args.seed,
                        prompt_suffix=args.prompt_suffix, description=f"imported from LRE files at {args.source.name}")
    save_corpus(corpus, args.out)
    for rel in relations.values():
        print(rel.report())
    print(f"wrote {args.out}: {len(corpus.relations)} relations ({', '.join(corpus.relation_names)})")
    return 0


def _cmd_import_csv(args) -> int:
    from core.facts import save_corpus
    from core.importers import import_csv

    corpus = import_csv(args.facts, args.templates, evaluation_count=args.evaluation_count, seed=args.seed,
                        prompt_suffix=args.prompt_suffix)
    save_corpus(corpus, args.out)
    print(f"wrote {args.out}: {len(corpus.relations)} relations ({', '.join(corpus.relation_names)})")
    return 0


def _cmd_build_lre12(args) -> int:
    from precompute.lre12 import Lre12Options, write_lre12

    corpus = write_lre12(Lre12Options(args.lre, args.templates, args.translations, args.facts_per_relation,
                                      args.evaluation_count, args.seed), args.out)
    for name, rel in corpus.relations.items():
        evaluation = sum(f.split == "evaluation" for f in rel.facts)
        print(f"{name:32s} {len(rel.facts):4d} facts ({evaluation} evaluation), "
              f"{len(rel.templates['en']['train'])} + {len(rel.templates['en']['heldout'])} English templates")
    print(f"wrote {args.out}: {len(corpus.relations)} relations, languages {', '.join(corpus.languages)}")
    return 0


def _cmd_train_demo(args) -> int:
    from core.facts import load_corpus
    from precompute.demo_model import DemoModelConfig, train_demo_model

    if args.hidden_size % args.heads:
        raise OptionError(f"--hidden-size {args.hidden_size} is not a multiple of --heads {args.heads}")
    cfg = DemoModelConfig(
        hidden_size=args.hidden_size, intermediate_size=args.intermediate_size, num_layers=args.layers,
        num_heads=args.heads, epochs=args.epochs, templates_per_fact=args.templates_per_fact,
        learning_rate=args.learning_rate, seed=args.seed, threads=args.threads, loss_on=args.loss_on,
        vocab_size=args.vocab_size,
    )
    summary = train_demo_model(load_corpus(args.facts), args.out, cfg)
    print(f"saved {args.out}: {summary['parameters']:,} parameters, trained in {summary['training_seconds']:.0f} s")
    return 0


def _cmd_accuracy(args) -> int:
    import torch

    from core.facts import load_corpus
    from core.loading import load_causal_lm
    from precompute.accuracy import measure_recall, pooled

    torch.set_num_threads(args.threads)
    corpus = load_corpus(args.facts)
    lm = load_causal_lm(args.model, dtype=args.dtype, device=args.device)
    rows = measure_recall(lm, corpus, batch_size=args.batch_size)
    langs = corpus.languages
    print(f"\nGreedy 2-token prefix accuracy of {args.model} on {args.facts}")
    print(f"{'relation':32s} " + " ".join(f"{lang + ' train':>9s} {lang + ' held':>8s}" for lang in langs))
    for rel in corpus.relation_names:
        cells = [f"{pooled(rows, relation=rel, language=lang, template_kind='train'):9.1%} "
                 f"{pooled(rows, relation=rel, language=lang, template_kind='heldout'):8.1%}" for lang in langs]
        print(f"{rel:32s} " + " ".join(cells))
    print(f"{'all relations':32s} " + " ".join(
        f"{pooled(rows, language=lang, template_kind='train'):9.1%} {pooled(rows, language=lang, template_kind='heldout'):8.1%}"
        for lang in langs))
    failing = [lang for lang in langs if pooled(rows, language=lang, template_kind="train") < args.target]
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    if failing:
        print(f"\nTARGET NOT MET: training-template accuracy below {args.target:.0%} in {', '.join(failing)}")
        return 1
    print(f"\ntarget met: training-template accuracy >= {args.target:.0%} in every language "
          f"({', '.join(langs)}); held-out templates reported, not targeted")
    return 0


def _cmd_run(args) -> int:
    from precompute.options import RunOptions
    from precompute.run import RunMismatchError, run_precompute
    from precompute.summary import print_summary
    from precompute.processes import ProcessGroup

    if args.languages and args.identification_language not in args.languages:
        raise OptionError(f"--identification-language {args.identification_language} is not among --languages "
                          f"{','.join(args.languages)}")
    options = RunOptions(
        model=args.model, facts=str(args.facts), out=str(args.out), definition=args.definition, k=args.k,
        k_sweep=args.k_sweep, languages=args.languages,
        identification_language=args.identification_language, negatives_ratio=args.negatives_ratio,
        pooling=args.pooling, seed=args.seed, random_seeds=args.random_seeds, effect_templates=args.effect_templates,
        batch_size=args.batch_size, dtype=args.dtype, device=args.device, threads=args.threads,
        score_memory_mib=args.score_memory_mib, min_facts=args.min_facts, relations=chosen_relations(args),
        min_positives=args.min_positives, answer_floor=args.answer_floor, direction=args.direction,
        null_seeds=args.null_seeds, critical=args.critical, critical_prompts=args.critical_prompts,
        critical_threshold=args.critical_threshold, critical_neurons=args.critical_neurons,
        random_exclude_critical=args.random_exclude_critical, ablation=args.ablation,
        ablation_factor=args.ablation_factor,
    )
    if (args.ablation == "scale") != (args.ablation_factor is not None):
        raise OptionError("--ablation-factor goes with --ablation scale, and scale needs it (e.g. --ablation-factor 2)")
    if args.ablation_factor is not None and not math.isfinite(args.ablation_factor):
        raise OptionError(f"--ablation-factor must be a finite number, not {args.ablation_factor}")
    if args.random_exclude_critical and not args.critical:
        raise OptionError("--random-exclude-critical needs the critical-neuron screen; drop --no-critical")
    workers = ProcessGroup.from_environment()
    try:
        run_precompute(options, workers=workers)
    except (RunMismatchError, ValueError) as exc:  # errors about the inputs; anything else keeps its traceback
        if workers.is_main or not getattr(exc, "raised_on_main_process", False):
            print(f"error{'' if workers.is_main else f' (process {workers.rank})'}: {exc}", file=sys.stderr)
        return 2
    finally:
        workers.close()
    if workers.is_main:
        print_summary(args.out)
        _index_for_explorer(args.out)
    return 0


def _index_for_explorer(run_dir: Path) -> None:
    """Build the run's DuckDB store now, so the explorer opens the run at once."""
    import time

    from core.store import RunStore

    started = time.time()
    RunStore(run_dir).close()
    print(f"indexed {run_dir} for the explorer in {time.time() - started:.1f} s")


def _cmd_synthetic_run(args) -> int:
    import time

    from precompute.synthetic_run import SyntheticRun

    started = time.time()
    run = SyntheticRun(args.shape, args.out, seed=args.seed)
    try:
        manifest = run.write()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*.parquet"))
    print(f"wrote {args.out} in {time.time() - started:.0f} s: SYNTHETIC {args.shape}-shaped run, "
          f"{manifest.neurons['total']:,} neurons x {len(run.relations)} relations x {len(run.languages)} languages, "
          f"Parquet {size / 2**20:,.0f} MiB")
    _index_for_explorer(args.out)
    return 0


def _cmd_summary(args) -> int:
    from core.manifest import read_manifest
    from precompute.summary import markdown_summary, print_summary

    languages = read_manifest(args.run).corpus["languages"]
    if args.language not in languages:
        raise OptionError(f"--language {args.language} is not a language of {args.run} ({', '.join(languages)})")
    if args.markdown:
        print(markdown_summary(args.run, args.language))
    else:
        print_summary(args.run, args.language)
    return 0


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m precompute", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-corpus", help="write the synthetic demo facts corpus from the templates file")
    p.add_argument("--templates", type=existing_path, default=DEFAULT_TEMPLATES)
    p.add_argument("--out", type=corpus_folder, default=DEFAULT_CORPUS)
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_build_corpus)

    p = sub.add_parser("import-lre", help="convert LRE relation files (a folder of *.json) into a corpus")
    p.add_argument("source", type=existing_path)
    p.add_argument("--out", type=corpus_folder, required=True)
    p.add_argument("--evaluation-count", type=int_at_least(1), default=50, help="facts held out per relation (default 50)")
    add_relation_options(p, 0, "skip relations with fewer distinct subjects (not with --relations or "
                               "--paper-relations)")
    p.add_argument("--prompt-suffix", default="? Answer:", help="appended to every filled template")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_import_lre)

    p = sub.add_parser("import-csv", help="convert a facts CSV and a templates CSV into a corpus")
    p.add_argument("facts", type=existing_path, help="CSV with relation,subject,object[,language]")
    p.add_argument("templates", type=existing_path, help="CSV with relation,language,template[,kind]")
    p.add_argument("--out", type=corpus_folder, required=True)
    p.add_argument("--evaluation-count", type=int_at_least(1), default=50)
    p.add_argument("--prompt-suffix", default="")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_import_csv)

    from precompute.demo_model import MIN_DEMO_VOCAB, DemoModelConfig

    d = DemoModelConfig()
    p = sub.add_parser("build-lre12", help="build data/facts/lre12: the paper's 12 LRE relations with real entities, "
                                          "in en, de, fr and es",
                       description="A seeded subset of each LRE relation's facts, one subject split for all relations, "
                                   "LRE's English templates and the project's German, French and Spanish ones, closed-set "
                                   "objects translated (data/facts/lre12_translations.json).")
    p.add_argument("--lre", type=existing_path, default=Path("../shared/data/lre"),
                   help="the LRE relation files (default ../shared/data/lre)")
    p.add_argument("--templates", type=existing_path, default=DEFAULT_TEMPLATES)
    p.add_argument("--translations", type=existing_path, default=Path("data/facts/lre12_translations.json"))
    p.add_argument("--facts-per-relation", type=int_at_least(2), default=110)
    p.add_argument("--evaluation-count", type=int_at_least(1), default=50)
    p.add_argument("--out", type=corpus_folder, default=Path("data/facts/lre12"))
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_build_lre12)

    p = sub.add_parser("train-demo", help="train the embedded demo model (CPU, deterministic from --seed)")
    p.add_argument("--facts", type=existing_path, default=DEFAULT_CORPUS)
    p.add_argument("--out", type=model_folder, default=DEFAULT_MODEL)
    p.add_argument("--hidden-size", type=int_at_least(1), default=d.hidden_size)
    p.add_argument("--intermediate-size", type=int_at_least(1), default=d.intermediate_size)
    p.add_argument("--layers", type=int_at_least(1), default=d.num_layers)
    p.add_argument("--heads", type=int_at_least(1), default=d.num_heads)
    p.add_argument("--vocab-size", type=int_at_least(MIN_DEMO_VOCAB), default=d.vocab_size)
    p.add_argument("--epochs", type=int_at_least(1), default=d.epochs)
    p.add_argument("--templates-per-fact", type=int_at_least(1), default=d.templates_per_fact)
    p.add_argument("--learning-rate", type=positive_float, default=d.learning_rate)
    p.add_argument("--loss-on", choices=("all", "object"), default=d.loss_on)
    p.add_argument("--seed", type=SEED, default=d.seed)
    p.add_argument("--threads", type=int_at_least(1), default=d.threads)
    p.set_defaults(func=_cmd_train_demo)

    from core.adapters import DEFINITIONS
    from core.capture import POOLINGS
    from precompute.options import PAPER_K_SWEEP, RunOptions

    o = RunOptions(model="", facts="", out="")
    p = sub.add_parser("run", help="find relation neurons and measure their ablation effects into data/runs/NAME",
                       description="The paper's pipeline (baseline, identification, capture, AP scoring, effects) with the checks a "
                                   "reviewer asks for (a permutation null for overlap, critical single neurons). "
                                   "Resumable: rerun the same command to continue a killed run. Data-parallel: "
                                   "`accelerate launch --multi_gpu --num_processes N -m precompute run ...` (or torchrun) "
                                   "splits the model's passes over N processes and writes what one process would.")
    p.add_argument("--model", required=True, help="local model directory or an id in the local HF cache")
    p.add_argument("--facts", type=existing_path, required=True,
                   help="corpus folder (see data/facts/README.md), or LRE relation files (e.g. relations/data/factual)")
    add_relation_options(p, o.min_facts, "LRE --facts only: skip relations with fewer distinct subjects (not with "
                                          "--relations or --paper-relations)")
    p.add_argument("--min-positives", type=int_at_least(1), default=o.min_positives,
                   help="stop after the baseline when a relation x language has fewer correctly answered "
                        f"identification prompts, naming all such (default {o.min_positives})")
    p.add_argument("--answer-floor", action="store_true",
                   help="beyond the paper: an answer shorter than 3 characters is correct only when it spells the "
                        "gold's own first two tokens (the paper's prefix rule lets 'fe' count for 'Fernand')")
    p.add_argument("--out", type=run_folder, required=True,
                   help="run folder, e.g. data/runs/NAME: new, empty, or a run of the same inputs to resume")
    p.add_argument("--definition", choices=DEFINITIONS, default=o.definition,
                   help="neurons: paper = gate/up/down outputs; intermediate = down_proj input; paper+attention")
    p.add_argument("--k", type=k_value, default=o.k, help="neurons per relation: a count (3000), fraction (0.0036) or percentage (0.36%%)")
    p.add_argument("--k-sweep", type=k_list, default=",".join(PAPER_K_SWEEP),
                   help="comma-separated k values for the sweep (default: the paper's, up to the model's size)")
    p.add_argument("--languages", type=language_list, help="comma-separated languages (default: all of the corpus)")
    p.add_argument("--identification-language", type=language, default=o.identification_language)
    p.add_argument("--negatives-ratio", type=positive_float, default=o.negatives_ratio)
    p.add_argument("--pooling", choices=POOLINGS, default=o.pooling)
    p.add_argument("--seed", type=SEED, default=o.seed)
    # At least one random set: every view compares a relation's neurons with random ones of the same size.
    p.add_argument("--random-seeds", type=int_at_least(1), default=o.random_seeds,
                   help="random neuron sets per k (default 10)")
    p.add_argument("--effect-templates", type=int_at_least(1), default=None,
                   help="train templates per relation and language in the effects stage (default: all)")
    p.add_argument("--direction", choices=("positive", "either"), default=o.direction,
                   help="positive (the paper): AP of the raw activation; either: also AP of the negated activation, "
                        "keeping the better side and its sign (finds neurons that mark a relation by being lower)")
    p.add_argument("--null-seeds", type=int_at_least(0), default=o.null_seeds,
                   help="identifications with relation labels permuted among the identification prompts, for the "
                        f"overlap's null (default {o.null_seeds}; 0: none)")
    p.add_argument("--critical", action=argparse.BooleanOptionalAction, default=o.critical,
                   help="screen single-neuron ablations for critical neurons (default on)")
    p.add_argument("--critical-prompts", type=int_at_least(1), default=o.critical_prompts,
                   help=f"evaluation prompts per relation in the single-neuron screen (default {o.critical_prompts})")
    p.add_argument("--critical-threshold", type=positive_float, default=o.critical_threshold,
                   help="accuracy points a single neuron must cost a relation to count as critical "
                        f"(default {o.critical_threshold:g})")
    p.add_argument("--critical-neurons", type=int_at_least(1), default=o.critical_neurons,
                   help="screen every neuron of a model with up to this many; a larger model screens the union of "
                        f"all relations' top-k plus a uniform sample of this many (default {o.critical_neurons:,})")
    p.add_argument("--random-exclude-critical", action="store_true",
                   help="also draw random sets at the main k from the neurons that are not critical (the plain "
                        "uniform sets stay)")
    p.add_argument("--ablation", choices=("zero", "mean", "scale"), default=o.ablation,
                   help="beyond the paper: zero (the paper's, default); mean: each neuron set to its mean over the "
                        "identification prompts; scale: multiplied by --ablation-factor (negative flips, >1 "
                        "amplifies). A mode other than zero evaluates the main k (each relation's top-k and the "
                        "random sets) into mode_effects/, beside the zero sweep, on a new or finished run of the "
                        "same options")
    p.add_argument("--ablation-factor", type=float, default=None, help="the factor of --ablation scale")
    p.add_argument("--batch-size", type=int_at_least(1), default=o.batch_size)
    p.add_argument("--dtype", default=o.dtype, choices=DTYPES)
    p.add_argument("--device", type=device, default=o.device,
                   help="cpu, cuda, cuda:N or auto (accelerate device_map over this machine's GPUs); under "
                        "accelerate launch or torchrun, cuda means each process's own GPU")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="CPU threads for torch")
    p.add_argument("--score-memory-mib", type=int_at_least(MIN_SCORE_MEMORY_MIB), default=o.score_memory_mib,
                   help="RAM for the capture columns scored at a time (the capture itself stays on disk)")
    p.set_defaults(func=_cmd_run)

    from precompute.synthetic_run import SHAPES

    p = sub.add_parser("synthetic-run", help="write a generated run with the exact shape of a Llama-2 run (load testing)",
                       description="Every table of a real run, drawn at random with the row counts of the chosen "
                                   "model; marked synthetic in its manifest and in the app.")
    p.add_argument("--shape", choices=sorted(SHAPES), default="llama-2-7b")
    p.add_argument("--out", type=run_folder, required=True)
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(func=_cmd_synthetic_run)

    p = sub.add_parser("summary", help="print a finished run's per-relation table (--markdown: the README section)")
    p.add_argument("--run", type=existing_path, default=Path("data/runs/demo"))
    p.add_argument("--language", type=language, default="en")
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("accuracy", help="print greedy 2-token recall per relation and language; exit 1 below target")
    p.add_argument("--model", default=str(DEFAULT_MODEL))
    p.add_argument("--facts", type=existing_path, default=DEFAULT_CORPUS)
    p.add_argument("--target", type=fraction, default=0.95)
    p.add_argument("--batch-size", type=int_at_least(1), default=256)
    p.add_argument("--dtype", default="float32", choices=DTYPES)
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--threads", type=int_at_least(1), default=2)
    p.add_argument("--json", help="also write the rows to this JSON file")
    p.set_defaults(func=_cmd_accuracy)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0), or a bad option already reported on one line (2)
        return exc.code if isinstance(exc.code, int) else 2
    from core.facts import CorpusError
    from core.loading import ModelLoadError
    from core.manifest import ManifestError

    try:
        return args.func(args)
    except (OptionError, CorpusError, ModelLoadError, ManifestError, OSError) as exc:
        # Bad inputs, and files that cannot be read or written: one line naming them, no traceback.
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
