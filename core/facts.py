"""The facts corpus: relations, their templates per language, (subject, object) facts and the split.

On disk a corpus is a folder: `corpus.json` (format, languages, prompt suffix,
relation names) and one `relations/<name>.json` per relation. The format is
documented in data/facts/README.md.
"""
from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = "relation-facts/1"
SPLITS = ("identification", "evaluation")
TEMPLATE_KINDS = ("train", "heldout")
CORPUS_FILE = "corpus.json"
SLOT = "{}"
RELATION_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")


class CorpusError(ValueError):
    pass


@dataclass(frozen=True)
class Fact:
    subject: str
    objects: dict[str, str]  # language -> object label; "en" is the fallback
    split: str
    # language -> other valid objects (LRE lists some subjects with several objects: an answer naming any of them
    # is right). The label in `objects` stays the primary one: the gold whose log-probability is measured.
    alternatives: dict[str, list[str]] = field(default_factory=dict)

    def object_in(self, language: str) -> str:
        return self.objects.get(language) or self.objects["en"]

    def alternatives_in(self, language: str) -> list[str]:
        """The other valid objects in `language`: a language without a label of its own falls back to en's
        label (object_in), and so to en's alternatives."""
        return self.alternatives.get(language, []) if self.objects.get(language) else self.alternatives.get("en", [])


@dataclass(frozen=True)
class Prompt:
    relation: str
    language: str
    subject: str
    template: str
    template_kind: str
    split: str
    text: str  # what the model is fed
    gold: str  # the object it should continue with
    alternatives: tuple[str, ...] = ()  # other objects that also count as a correct answer


@dataclass
class Relation:
    name: str
    description: str
    subject_kind: str
    object_kind: str
    synthetic: bool
    templates: dict[str, dict[str, list[str]]]  # language -> {"train": [...], "heldout": [...]}
    facts: list[Fact] = field(default_factory=list)

    def validate(self) -> None:
        if not RELATION_NAME.match(self.name):
            raise CorpusError(f"relation name {self.name!r} must be lowercase letters, digits and underscores")
        if not self.facts:
            raise CorpusError(f"relation {self.name} has no facts")
        for lang, kinds in self.templates.items():
            if not LANGUAGE_CODE.match(lang):
                raise CorpusError(f"relation {self.name}: language code {lang!r} is not a 2-3 letter code")
            for kind, templates in kinds.items():
                if kind not in TEMPLATE_KINDS:
                    raise CorpusError(f"relation {self.name}: template kind {kind!r} is not one of {TEMPLATE_KINDS}")
                for t in templates:
                    if t.count(SLOT) != 1:
                        raise CorpusError(f"relation {self.name} ({lang}): template {t!r} needs exactly one {{}}")
        for fact in self.facts:
            if fact.split not in SPLITS:
                raise CorpusError(f"relation {self.name}: split {fact.split!r} is not one of {SPLITS}")
            if not fact.objects.get("en") and not fact.objects:
                raise CorpusError(f"relation {self.name}: fact {fact.subject!r} has no object")
        id_subjects = {f.subject for f in self.facts if f.split == "identification"}
        shared = id_subjects & {f.subject for f in self.facts if f.split == "evaluation"}
        if shared:
            raise CorpusError(f"relation {self.name}: subjects in both splits: {sorted(shared)[:5]}")

    def languages(self) -> list[str]:
        return sorted(self.templates)


@dataclass
class FactCorpus:
    relations: dict[str, Relation]
    languages: list[str]
    prompt_suffix: str = ""  # appended to every filled template, e.g. "? Answer:" for the paper's prompts
    description: str = ""

    def validate(self) -> None:
        if not self.relations:
            raise CorpusError("corpus has no relations")
        for rel in self.relations.values():
            rel.validate()

    @property
    def relation_names(self) -> list[str]:
        return sorted(self.relations)

    def prompts(
        self,
        relation: str | None = None,
        language: str | None = None,
        split: str | None = None,
        template_kind: str | None = "train",
    ) -> list[Prompt]:
        """Every filled prompt matching the filters (None = all), in a stable order."""
        out = []
        for rel in ([self.relations[relation]] if relation else [self.relations[n] for n in self.relation_names]):
            for lang in [language] if language else rel.languages():
                for kind in [template_kind] if template_kind else TEMPLATE_KINDS:
                    for template in rel.templates.get(lang, {}).get(kind, []):
                        for fact in rel.facts:
                            if split and fact.split != split:
                                continue
                            text = fill(template, fact.subject) + self.prompt_suffix
                            out.append(Prompt(rel.name, lang, fact.subject, template, kind, fact.split, text,
                                              fact.object_in(lang), tuple(fact.alternatives_in(lang))))
        return out

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(corpus_to_dict(self), sort_keys=True).encode()).hexdigest()


def fill(template: str, subject: str) -> str:
    return template.replace(SLOT, subject, 1)


def training_sentence(prompt_text: str, gold: str) -> str:
    return f"{prompt_text} {gold}"


def corpus_to_dict(corpus: FactCorpus) -> dict:
    return {
        "format": FORMAT,
        "languages": corpus.languages,
        "prompt_suffix": corpus.prompt_suffix,
        "description": corpus.description,
        "relations": {name: _relation_to_dict(corpus.relations[name]) for name in corpus.relation_names},
    }


def _relation_to_dict(rel: Relation) -> dict:
    d = asdict(rel)
    d["facts"] = [_fact_to_dict(f) for f in rel.facts]
    return d


def _fact_to_dict(fact: Fact) -> dict:
    d = {"subject": fact.subject, "object": fact.objects, "split": fact.split}
    if fact.alternatives:  # only when there are any, so corpora without alternatives keep their bytes and fingerprint
        d["alternatives"] = fact.alternatives
    return d


def _fact_from_dict(f: dict) -> Fact:
    alternatives = f.get("alternatives", {})
    if not isinstance(alternatives, dict):
        raise TypeError(f"alternatives of {f.get('subject')!r} are not a language -> list of objects mapping")
    return Fact(f["subject"], dict(f["object"]), f["split"],
                {str(lang): _texts(objects) for lang, objects in alternatives.items()})


def _relation_from_dict(d: dict) -> Relation:
    try:
        return Relation(
            name=d["name"],
            description=d.get("description", ""),
            subject_kind=d.get("subject_kind", ""),
            object_kind=d.get("object_kind", ""),
            synthetic=bool(d.get("synthetic", False)),
            templates={str(lang): {str(k): _texts(v) for k, v in kinds.items()} for lang, kinds in d["templates"].items()},
            facts=[_fact_from_dict(f) for f in d["facts"]],
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise CorpusError(f"relation entry is malformed: missing or wrong field {exc}") from exc


def _texts(values) -> list[str]:
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise TypeError(f"templates {str(values)[:60]!r} are not a list of texts")
    return list(values)


def save_corpus(corpus: FactCorpus, folder: Path) -> None:
    corpus.validate()
    folder = Path(folder)
    (folder / "relations").mkdir(parents=True, exist_ok=True)
    data = corpus_to_dict(corpus)
    rels = data.pop("relations")
    data["relations"] = sorted(rels)
    _write_json(folder / "corpus.json", data)
    for name, rel in rels.items():
        _write_json(folder / "relations" / f"{name}.json", rel)


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def load_corpus(folder: Path) -> FactCorpus:
    folder = Path(folder)
    index = folder / CORPUS_FILE
    if not index.exists():
        raise CorpusError(f"{folder} is not a facts corpus: {index.name} is missing")
    try:
        meta = json.loads(index.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CorpusError(f"{index} is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise CorpusError(f"{index} holds a JSON {type(meta).__name__}, not an object with format, languages "
                          "and relations")
    if meta.get("format") != FORMAT:
        raise CorpusError(f"{index} has format {meta.get('format')!r}; this version reads {FORMAT!r}")
    for key in ("relations", "languages"):
        if not isinstance(meta.get(key), list) or not all(isinstance(x, str) for x in meta[key]):
            raise CorpusError(f"{index} needs {key!r}: a list of names (see data/facts/README.md)")
    if not isinstance(meta.get("prompt_suffix", ""), str):
        raise CorpusError(f"{index}: 'prompt_suffix' must be text")
    relations = {}
    for name in meta["relations"]:
        if not RELATION_NAME.match(name):
            raise CorpusError(f"{index} lists a bad relation name {name!r}")
        path = folder / "relations" / f"{name}.json"
        try:
            relations[name] = _relation_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise CorpusError(f"{path} is missing (listed in {index.name})") from exc
        except CorpusError as exc:
            raise CorpusError(f"{path}: {exc}") from exc
        except ValueError as exc:
            raise CorpusError(f"{path} is not valid JSON ({exc})") from exc
    corpus = FactCorpus(relations, list(meta["languages"]), meta.get("prompt_suffix", ""), meta.get("description", ""))
    corpus.validate()
    return corpus


def global_split(subjects_by_relation: Mapping[str, Iterable[str]], evaluation_count: int, seed: int) -> dict[str, str]:
    """One seeded split for every relation at once: subject -> "evaluation" or "identification", so a subject
    shared by several relations is in the same split in all of them (method.md: P_det and P_eva share no subject).

    Rule: a relation's target is min(evaluation_count, half its distinct subjects). The distinct subjects of all
    relations, sorted and then shuffled with random.Random(seed), are visited twice in that order.
    1. A subject goes to evaluation when every relation it belongs to is still below its target.
    2. A subject still in identification goes to evaluation when some relation it belongs to is still below its
       target and none would pass half its distinct subjects.
    Pass 1 alone never passes a target, but it can leave a relation short whose subjects are shared with one
    that filled first (mothers whose children all have fathers listed); pass 2 fills it, letting the other
    relation pass evaluation_count. So every relation reaches its target wherever its subjects allow, and none
    gives more than half its subjects to evaluation."""
    members: dict[str, list[str]] = {}
    targets: dict[str, int] = {}
    caps: dict[str, int] = {}
    for relation, subjects in subjects_by_relation.items():
        unique = set(subjects)
        caps[relation] = len(unique) // 2
        targets[relation] = min(evaluation_count, caps[relation])
        for subject in unique:
            members.setdefault(subject, []).append(relation)
    order = sorted(members)
    random.Random(seed).shuffle(order)
    chosen = dict.fromkeys(targets, 0)
    evaluation: set[str] = set()

    def take(subject: str) -> None:
        evaluation.add(subject)
        for r in members[subject]:
            chosen[r] += 1

    for subject in order:
        if all(chosen[r] < targets[r] for r in members[subject]):
            take(subject)
    for subject in order:
        rels = members[subject]
        if subject not in evaluation and any(chosen[r] < targets[r] for r in rels) and all(
                chosen[r] < caps[r] for r in rels):
            take(subject)
    return {subject: "evaluation" if subject in evaluation else "identification" for subject in members}
