"""Build a FactCorpus from other formats: LRE relation files and plain CSV."""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from core.facts import CORPUS_FILE, CorpusError, Fact, FactCorpus, Relation, global_split, load_corpus

PAPER_SUFFIX = "? Answer:"  # method.md: the paper appends this to every filled template
# method.md: the LRE relations the paper used (file stems of LRE's data/factual).
PAPER_RELATIONS = (
    "company_ceo", "company_hq", "landmark_in_country", "landmark_on_continent", "person_father", "person_mother",
    "person_occupation", "person_plays_instrument", "person_plays_position_in_sport", "person_plays_pro_sport",
    "product_by_company", "star_constellation",
)
# A held-out template for a relation whose every zero-shot template is also a trained one: a question, then the
# start of its answer, like LRE's own zero-shot templates and worded unlike any LRE template of the relation, so
# that held-out results measure another wording. Hand-written for the paper's relations; others get GENERIC.
QUESTION_TEMPLATES = {
    "company_ceo": "Who is the chief executive of {}? The chief executive is",
    "company_hq": "In which city does {} have its head office? Its head office is in",
    "landmark_in_country": "In which country can {} be found? It can be found in",
    "landmark_on_continent": "On which continent can {} be found? It can be found in",
    "person_father": "What was the name of the father of {}? His name was",
    "person_mother": "What was the name of the mother of {}? Her name was",
    "person_occupation": "What does {} do for a living? They work as a",
    "person_plays_instrument": "Which musical instrument is played by {}? The instrument is the",
    "person_plays_position_in_sport": "What is the playing position of {}? They play as a",
    "person_plays_pro_sport": "Which sport does {} play as a professional? The sport is",
    "product_by_company": "Which company makes {}? It is made by",
    "star_constellation": "In which constellation does the star {} lie? It lies in",
}
GENERIC_QUESTION = "What is the {what} of {{}}? It is"


def relation_name_from(text: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not name:
        raise CorpusError(f"cannot make a relation name from {text!r}")
    return name[:64]


def normalised(template: str) -> str:
    """A template as compared for duplicates: whitespace runs as one space, lowercase."""
    return " ".join(template.split()).lower()


@dataclass(frozen=True)
class LreRelation:
    """One LRE relation file, read: what an importer or a corpus builder picks from."""
    name: str  # from the file stem (relation_name_from)
    path: Path
    description: str  # LRE's `name`
    subject_kind: str  # properties.domain_name
    object_kind: str  # properties.range_name
    train: list[str]  # prompt_templates
    heldout: list[str]  # prompt_templates_zs without those equal to a trained one (normalised), or [question]
    heldout_dropped: list[str]  # zero-shot templates left out as equal to a trained one or to an earlier one
    heldout_generated: bool  # no zero-shot template remained: heldout is question_template()'s
    facts: list[tuple[str, list[str]]]  # (subject, its distinct objects in file order), one per subject
    samples: int  # raw samples in the file

    def report(self) -> str:
        """One line: the held-out templates kept, and why any were dropped or written."""
        kept = f"{self.name}: {len(self.train)} trained, {len(self.heldout)} held-out template(s)"
        if self.heldout_generated:
            kept += " (every zero-shot template is a trained one: a question written for it)"
        elif self.heldout_dropped:
            kept += f" ({len(self.heldout_dropped)} zero-shot template(s) dropped as repeats)"
        extra = sum(len(objects) > 1 for _, objects in self.facts)
        return kept + f"; {len(self.facts)} subjects ({self.samples} samples)" + (
            f", {extra} with alternative objects" if extra else "")


def question_template(name: str, object_kind: str) -> str:
    """The held-out template written for a relation without a usable zero-shot one: QUESTION_TEMPLATES, else a
    question about the object kind (LRE's range_name), else about the relation's name."""
    what = object_kind.strip() or name.replace("_", " ")
    return QUESTION_TEMPLATES.get(name, GENERIC_QUESTION.format(what=what))


def heldout_templates(name: str, train: Sequence[str], zero_shot: Sequence[str], object_kind: str
                      ) -> tuple[list[str], list[str], bool]:
    """(held-out kept, dropped, generated): zero-shot templates that are not a trained one or a repeat."""
    seen = {normalised(t) for t in train}
    kept, dropped = [], []
    for template in zero_shot:
        (dropped if normalised(template) in seen else kept).append(template)
        seen.add(normalised(template))
    if kept:
        return kept, dropped, False
    return [question_template(name, object_kind)], dropped, True


def unique_subjects(samples: Sequence[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(subject, distinct objects) per subject in first-seen order: LRE repeats some subjects, with the same
    object or with another valid one."""
    objects: dict[str, list[str]] = {}
    for subject, obj in samples:
        found = objects.setdefault(subject, [])
        if obj not in found:
            found.append(obj)
    return list(objects.items())


def _lre_files(source: Path) -> dict[str, Path]:
    """Relation name -> file, for a folder of *.json (searched recursively) or one file."""
    files = sorted(source.rglob("*.json")) if source.is_dir() else [source]
    if not files:
        raise CorpusError(f"no LRE relation files (*.json) under {source}")
    named: dict[str, Path] = {}
    for path in files:
        name = relation_name_from(path.stem)
        if name in named:  # e.g. father.json and Father.json: one relation would silently replace the other
            raise CorpusError(f"{named[name]} and {path} both give relation {name}; rename or remove one")
        named[name] = path
    return named


def _read_lre_file(name: str, path: Path) -> LreRelation:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        samples = [(str(s["subject"]), str(s["object"])) for s in data["samples"]]
        train = [str(t) for t in data["prompt_templates"]]
        zero_shot = [str(t) for t in data.get("prompt_templates_zs", [])]
        props = dict(data.get("properties", {}))
        description = str(data.get("name", name))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorpusError(f"{path} is not an LRE relation file (needs name, prompt_templates, samples "
                          f"of subject and object): {exc!r}") from exc
    object_kind = str(props.get("range_name", ""))
    heldout, dropped, generated = heldout_templates(name, train, zero_shot, object_kind)
    return LreRelation(name, path, description, str(props.get("domain_name", "")), object_kind, train, heldout,
                       dropped, generated, unique_subjects(samples), len(samples))


def read_lre_relations(source: Path, names: Sequence[str] | None = None, min_facts: int = 0
                       ) -> dict[str, LreRelation]:
    """LRE relation files (a folder of *.json, or one file), by relation name (the file stem), sorted.

    `names`: exactly these relations (an unknown name is a CorpusError naming it and the available ones);
    otherwise every relation with at least `min_facts` distinct subjects. Naming relations and asking for a
    minimum are exclusive (ValueError): the names decide, so a size rule would only hide a named relation."""
    if names is not None and min_facts:
        raise ValueError("name the relations or give a minimum number of facts, not both")
    files = _lre_files(Path(source))
    if names is not None:
        unknown = [n for n in names if n not in files]
        if unknown:
            raise CorpusError(f"no LRE relation file for {', '.join(unknown)} under {source}; available: "
                              f"{', '.join(sorted(files))}")
        files = {n: files[n] for n in names}
    relations = {name: _read_lre_file(name, files[name]) for name in sorted(files)}
    kept = {name: rel for name, rel in relations.items() if len(rel.facts) >= min_facts}
    if not kept:
        raise CorpusError(f"no LRE relation under {source} has at least {min_facts} distinct subjects")
    return kept


def lre_corpus(relations: dict[str, LreRelation], evaluation_count: int = 50, seed: int = 0,
               prompt_suffix: str = PAPER_SUFFIX, description: str = "") -> FactCorpus:
    """The corpus of read LRE relations: English templates (trained, held-out), one fact per subject with its
    first object as the label and the others as alternatives, one split over all relations (global_split)."""
    split = global_split({n: [s for s, _ in r.facts] for n, r in relations.items()}, evaluation_count, seed)
    corpus = {}
    for name, rel in relations.items():
        facts = [Fact(subject, {"en": objects[0]}, split[subject], {"en": objects[1:]} if len(objects) > 1 else {})
                 for subject, objects in rel.facts]
        corpus[name] = Relation(name, rel.description, rel.subject_kind, rel.object_kind, False,
                                {"en": {"train": list(rel.train), "heldout": list(rel.heldout)}}, facts)
    return _finish(corpus, prompt_suffix, description)


def import_lre(
    source: Path, evaluation_count: int = 50, seed: int = 0, prompt_suffix: str = PAPER_SUFFIX,
    min_facts: int = 0, relations: Sequence[str] | None = None,
) -> FactCorpus:
    """LRE (Hernandez et al. 2024) relation files: a folder of `*.json` or one file (read_lre_relations, then
    lre_corpus). `prompt_templates` become the trained templates; `prompt_templates_zs`, less those equal to a
    trained one, the held-out ones; the language is English."""
    read = read_lre_relations(Path(source), relations, min_facts)
    return lre_corpus(read, evaluation_count, seed, prompt_suffix, f"imported from LRE files at {Path(source).name}")


def _finish(relations: dict[str, Relation], prompt_suffix: str, description: str) -> FactCorpus:
    languages = sorted({lang for rel in relations.values() for lang in rel.templates})
    corpus = FactCorpus(relations, languages, prompt_suffix, description)
    corpus.validate()
    return corpus


def _facts_with_split(relations: dict[str, list[tuple[str, dict[str, str]]]], evaluation_count: int,
                      seed: int) -> dict[str, list[Fact]]:
    """Facts per relation, one per subject (the first row's objects), split by global_split."""
    split = global_split({r: [s for s, _ in pairs] for r, pairs in relations.items()}, evaluation_count, seed)
    facts = {}
    for rel, pairs in relations.items():
        seen: set[str] = set()
        facts[rel] = []
        for subject, objects in pairs:
            if subject not in seen:
                seen.add(subject)
                facts[rel].append(Fact(subject, objects, split[subject]))
    return facts


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a UTF-8 CSV with the `required` columns; CorpusError naming the file and line otherwise."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, strict=True)  # strict: an unclosed quote is an error, not one long field
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise CorpusError(f"{path} lacks column(s) {', '.join(missing)}; needs {', '.join(required)}")
            rows = []
            for row in reader:
                short = [c for c in required if row.get(c) is None]
                if short:
                    raise CorpusError(f"{path} line {reader.line_num} has no value for {', '.join(short)}")
                rows.append(row)
            return rows
    except FileNotFoundError as exc:
        raise CorpusError(f"{path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except csv.Error as exc:
        raise CorpusError(f"{path} is not valid CSV after line {reader.line_num} ({exc}); check its quotes") from exc


def import_csv(
    facts_csv: Path, templates_csv: Path, evaluation_count: int = 50, seed: int = 0, prompt_suffix: str = ""
) -> FactCorpus:
    """Facts CSV: relation, subject, object[, language]; templates CSV: relation, language, template[, kind].

    A fact row without language (or language "en") gives the object every language
    falls back to; rows with a language give that language's label.
    """
    fact_rows = _read_csv(Path(facts_csv), ("relation", "subject", "object"))
    template_rows = _read_csv(Path(templates_csv), ("relation", "language", "template"))
    templates: dict[str, dict[str, dict[str, list[str]]]] = {}
    for row in template_rows:
        kind = (row.get("kind") or "train").strip() or "train"
        rel = relation_name_from(row["relation"])
        templates.setdefault(rel, {}).setdefault(row["language"].strip(), {"train": [], "heldout": []}).setdefault(
            kind, []
        ).append(row["template"])
    objects: dict[str, dict[str, dict[str, str]]] = {}
    for row in fact_rows:
        rel = relation_name_from(row["relation"])
        lang = (row.get("language") or "en").strip() or "en"
        objects.setdefault(rel, {}).setdefault(row["subject"].strip(), {})[lang] = row["object"].strip()
    unknown = sorted(set(objects) - set(templates))
    if unknown:
        raise CorpusError(f"{templates_csv} has no templates for relation(s): {', '.join(unknown)}")
    pairs = {rel: list(objects[rel].items()) for rel in sorted(objects)}
    for rel, rel_pairs in pairs.items():
        missing_en = [s for s, o in rel_pairs if "en" not in o]
        if missing_en:
            raise CorpusError(f"relation {rel}: subject(s) without a default (en) object: {missing_en[:3]}")
    facts = _facts_with_split(pairs, evaluation_count, seed)
    relations = {rel: Relation(rel, rel, "", "", False, templates[rel], facts[rel]) for rel in pairs}
    return _finish(relations, prompt_suffix, f"imported from {Path(facts_csv).name}")


def load_facts(path: Path, min_facts: int = 0, relations: Sequence[str] | None = None,
               log: Callable[[str], None] | None = None) -> FactCorpus:
    """What `precompute run --facts` accepts: a corpus folder (with corpus.json), or LRE relation files
    (a folder of *.json, such as LRE's data/factual, or one file) imported with the paper's settings:
    50 evaluation facts per relation and the "? Answer:" suffix. `relations`: only these (for a corpus folder
    too); `min_facts`: LRE relations with at least this many distinct subjects. `log` gets one line per imported
    LRE relation (its held-out templates and subjects)."""
    path = Path(path)
    is_lre = (path.is_dir() and not (path / CORPUS_FILE).exists() and any(path.rglob("*.json"))) or (
        path.is_file() and path.suffix == ".json" and path.name != CORPUS_FILE)
    if is_lre:
        read = read_lre_relations(path, relations, min_facts)
        for rel in read.values():
            (log or (lambda _: None))(rel.report())
        return lre_corpus(read, description=f"imported from LRE files at {path.name}")
    return select_relations(load_corpus(path), relations)


def select_relations(corpus: FactCorpus, names: Sequence[str] | None) -> FactCorpus:
    """The corpus with only the relations `names` (all when None); CorpusError naming unknown ones."""
    if names is None:
        return corpus
    unknown = [n for n in names if n not in corpus.relations]
    if unknown:
        raise CorpusError(f"relation(s) {', '.join(unknown)} not in the corpus; available: "
                          f"{', '.join(corpus.relation_names)}")
    return FactCorpus({n: corpus.relations[n] for n in sorted(names)}, corpus.languages, corpus.prompt_suffix,
                      corpus.description)
