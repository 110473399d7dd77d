"""`python -m precompute build-lre12`: the real-entity corpus data/facts/lre12 from the paper's 12 LRE files.

English templates are LRE's own (its trained templates first, filled to five from the project's templates;
held-out: an LRE zero-shot template that differs from every trained one, else the project's). German, French
and Spanish templates are the project's (data/facts/templates.json, written for these 12 relations). Objects of
closed sets (countries, continents, occupations, instruments, sports, positions, constellations) are translated
(data/facts/lre12_translations.json); names of people, companies and cities stay as they are.

A seeded subset of each relation's facts is used (`facts_per_relation` distinct subjects, so that a small
model can learn them in minutes), split once for all relations: a subject is evaluation in every relation or
identification in every relation.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.facts import Fact, FactCorpus, Relation, global_split, save_corpus
from core.importers import PAPER_RELATIONS, normalised, read_lre_relations

TEMPLATES_PER_LANGUAGE = 5  # trained templates per relation and language, as the demo corpus has
LANGUAGES = ("en", "de", "fr", "es")
ATTRIBUTION = ("Facts and English templates from the LRE dataset (Hernandez et al. 2024, "
               "github.com/evandez/relations, MIT licence: see LICENSE-LRE); German, French and Spanish templates "
               "and translated object labels by this project")


@dataclass(frozen=True)
class Lre12Options:
    lre: Path
    templates: Path = Path("data/facts/templates.json")
    translations: Path = Path("data/facts/lre12_translations.json")
    facts_per_relation: int = 110
    evaluation_count: int = 50
    seed: int = 0


def english_templates(lre_train: list[str], lre_heldout: list[str], ours: dict[str, list[str]]) -> dict[str, list[str]]:
    """LRE's trained templates first, filled to five with ours; held-out: LRE's first zero-shot template unlike
    every trained one, else our held-out one."""
    train: list[str] = []
    for template in [*lre_train, *ours["train"]]:
        if normalised(template) not in {normalised(t) for t in train} and len(train) < TEMPLATES_PER_LANGUAGE:
            train.append(template)
    seen = {normalised(t) for t in train}
    heldout = [t for t in lre_heldout if normalised(t) not in seen][:1] or ours["heldout"][:1]
    return {"train": train, "heldout": heldout}


def translated(label: str, table: dict[str, dict[str, str]] | None) -> dict[str, str]:
    """The object in every language: a closed set's translation, else the label itself (names stay)."""
    if table is None:
        return {"en": label}
    if label not in table:
        raise ValueError(f"object {label!r} has no translation in the translations file; add it there")
    return {"en": label, **{lang: table[label][lang] for lang in LANGUAGES if lang != "en"}}


def build_lre12(options: Lre12Options) -> FactCorpus:
    lre = read_lre_relations(options.lre, PAPER_RELATIONS)
    ours = json.loads(Path(options.templates).read_text(encoding="utf-8"))["relations"]
    translations = json.loads(Path(options.translations).read_text(encoding="utf-8"))["relations"]
    rng = random.Random(options.seed)
    chosen: dict[str, list[tuple[str, list[str]]]] = {}
    for name in PAPER_RELATIONS:
        facts = sorted(lre[name].facts)  # (subject, [objects]) with distinct subjects, in a fixed order
        chosen[name] = sorted(rng.sample(facts, min(options.facts_per_relation, len(facts))))
    split = global_split({name: [s for s, _ in facts] for name, facts in chosen.items()}, options.evaluation_count,
                         options.seed)
    relations = {}
    for name in PAPER_RELATIONS:
        table = translations.get(name)
        facts = []
        for subject, objects in chosen[name]:
            labels = [translated(o, table) for o in objects]
            alternatives = {lang: [l[lang] for l in labels[1:]] for lang in labels[0]} if len(labels) > 1 else {}
            facts.append(Fact(subject, labels[0], split[subject], alternatives))
        mine = ours[name]
        rel = lre[name]
        # LRE's zero-shot template where one differs from the trained ones; not the importer's generic question
        zero_shot = [] if rel.heldout_generated else rel.heldout
        templates = {"en": english_templates(rel.train, zero_shot, mine["templates"]["en"]),
                     **{lang: mine["templates"][lang] for lang in LANGUAGES if lang != "en"}}
        relations[name] = Relation(name, lre[name].description, mine["subject_kind"], mine["object_kind"], False,
                                   templates, facts)
    corpus = FactCorpus(relations, list(LANGUAGES), "", ATTRIBUTION)
    corpus.validate()
    return corpus


def write_lre12(options: Lre12Options, out: Path) -> FactCorpus:
    corpus = build_lre12(options)
    save_corpus(corpus, out)
    shutil.copyfile(Path(options.lre) / "LICENSE", Path(out) / "LICENSE-LRE")
    return corpus
