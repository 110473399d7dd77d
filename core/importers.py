"""Build a FactCorpus from other formats: LRE relation files and plain CSV."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from core.facts import CORPUS_FILE, CorpusError, Fact, FactCorpus, Relation, load_corpus, split_subjects

PAPER_SUFFIX = "? Answer:"  # method.md: the paper appends this to every filled template


def relation_name_from(text: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if not name:
        raise CorpusError(f"cannot make a relation name from {text!r}")
    return name[:64]


def _finish(relations: dict[str, Relation], prompt_suffix: str, description: str) -> FactCorpus:
    languages = sorted({lang for rel in relations.values() for lang in rel.templates})
    corpus = FactCorpus(relations, languages, prompt_suffix, description)
    corpus.validate()
    return corpus


def _facts_with_split(pairs: list[tuple[str, dict[str, str]]], evaluation_count: int, seed: int) -> list[Fact]:
    split = split_subjects([s for s, _ in pairs], evaluation_count, seed)
    seen: set[str] = set()
    facts = []
    for subject, objects in pairs:
        if subject in seen:  # one object per subject; LRE has a few duplicates
            continue
        seen.add(subject)
        facts.append(Fact(subject, objects, split[subject]))
    return facts


def import_lre(
    source: Path, evaluation_count: int = 50, seed: int = 0, prompt_suffix: str = PAPER_SUFFIX,
    min_facts: int = 0,
) -> FactCorpus:
    """LRE (Hernandez et al. 2024) relation files: a folder of `*.json` or one file.

    `prompt_templates` become the main ("train") templates and `prompt_templates_zs`
    the held-out ones; the language is English.
    """
    source = Path(source)
    files = sorted(source.rglob("*.json")) if source.is_dir() else [source]
    if not files:
        raise CorpusError(f"no LRE relation files (*.json) under {source}")
    relations: dict[str, Relation] = {}
    read_from: dict[str, Path] = {}
    for i, path in enumerate(files):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            samples = list(data["samples"])
            templates = [str(t) for t in data["prompt_templates"]]
            pairs = [(str(s["subject"]), {"en": str(s["object"])}) for s in samples]
            props = dict(data.get("properties", {}))
            heldout = [str(t) for t in data.get("prompt_templates_zs", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorpusError(f"{path} is not an LRE relation file (needs name, prompt_templates, samples "
                              f"of subject and object): {exc!r}") from exc
        if len(samples) < min_facts:
            continue
        name = relation_name_from(path.stem if source.is_dir() else str(data.get("name", path.stem)))
        if name in read_from:  # e.g. father.json and Father.json: one relation would silently replace the other
            raise CorpusError(f"{read_from[name]} and {path} both give relation {name}; rename or remove one")
        read_from[name] = path
        relations[name] = Relation(
            name=name,
            description=str(data.get("name", name)),
            subject_kind=str(props.get("domain_name", "")),
            object_kind=str(props.get("range_name", "")),
            synthetic=False,
            templates={"en": {"train": templates, "heldout": heldout}},
            facts=_facts_with_split(pairs, evaluation_count, seed + i),
        )
    if not relations:
        raise CorpusError(f"no LRE relation under {source} has at least {min_facts} facts")
    return _finish(relations, prompt_suffix, f"imported from LRE files at {source.name}")


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
    relations = {}
    for i, rel in enumerate(sorted(objects)):
        pairs = [(subject, objs) for subject, objs in objects[rel].items()]
        missing_en = [s for s, o in pairs if "en" not in o]
        if missing_en:
            raise CorpusError(f"relation {rel}: subject(s) without a default (en) object: {missing_en[:3]}")
        relations[rel] = Relation(rel, rel, "", "", False, templates[rel], _facts_with_split(pairs, evaluation_count, seed + i))
    return _finish(relations, prompt_suffix, f"imported from {Path(facts_csv).name}")


def load_facts(path: Path, min_facts: int = 0) -> FactCorpus:
    """What `precompute run --facts` accepts: a corpus folder (with corpus.json), or LRE relation files
    (a folder of *.json, such as LRE's data/factual, or one file) imported with the paper's settings:
    50 evaluation facts per relation and the "? Answer:" suffix."""
    path = Path(path)
    if path.is_dir() and not (path / CORPUS_FILE).exists() and any(path.rglob("*.json")):
        return import_lre(path, min_facts=min_facts)
    if path.is_file() and path.suffix == ".json" and path.name != CORPUS_FILE:
        return import_lre(path, min_facts=min_facts)
    return load_corpus(path)
