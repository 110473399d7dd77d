"""`precompute build-lre12` on small LRE files the test writes: the paper's 12 relations, LRE's English
templates first, one subject split for all relations, closed-set objects translated, alternatives kept."""
import json

import pytest

from core.facts import load_corpus
from core.importers import PAPER_RELATIONS
from precompute.lre12 import Lre12Options, write_lre12

CLOSED = {"landmark_on_continent": {"Europe": {"de": "Europa", "fr": "Europe", "es": "Europa"},
                                    "Asia": {"de": "Asien", "fr": "Asie", "es": "Asia"}}}


def lre_file(folder, name: str, samples: list[tuple[str, str]]) -> None:
    data = {"name": name.replace("_", " "), "prompt_templates": ["{} relates to", "The object of {} is"],
            "prompt_templates_zs": ["the object of {} is", "Tell me: {} relates to what?"],
            "properties": {"domain_name": "thing", "range_name": "object"},
            "samples": [{"subject": s, "object": o} for s, o in samples]}
    (folder / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture
def sources(tmp_path):
    lre = tmp_path / "lre"
    lre.mkdir()
    (lre / "LICENSE").write_text("MIT License (fixture)\n")
    for name in PAPER_RELATIONS:
        if name == "landmark_on_continent":
            samples = [(f"Landmark {i}", "Europe" if i % 2 else "Asia") for i in range(20)]
        else:  # persons 0..19 appear in every person relation: the split must be one for all of them
            samples = [(f"Person {i}", f"{name} object {i}") for i in range(20)]
        if name == "person_father":
            samples.append(("Person 3", "second father"))  # a second valid object for one subject
        lre_file(lre, name, samples)
    ours = {"relations": {name: {"subject_kind": "thing", "object_kind": "object", "templates": {
        lang: {"train": [f"{lang} {name} {i} {{}}" for i in range(5)] + (["the object of {} is"] if lang == "en" else []),
               "heldout": [f"{lang} held {{}}"]} for lang in ("en", "de", "fr", "es")}} for name in PAPER_RELATIONS}}
    (tmp_path / "templates.json").write_text(json.dumps(ours), encoding="utf-8")
    (tmp_path / "translations.json").write_text(json.dumps({"relations": CLOSED}), encoding="utf-8")
    return tmp_path


def test_build_lre12_from_fixture_files(sources):
    options = Lre12Options(sources / "lre", sources / "templates.json", sources / "translations.json",
                           facts_per_relation=16, evaluation_count=4, seed=0)
    write_lre12(options, sources / "out")
    corpus = load_corpus(sources / "out")
    assert sorted(corpus.relations) == sorted(PAPER_RELATIONS) and corpus.languages == ["en", "de", "fr", "es"]
    assert (sources / "out" / "LICENSE-LRE").read_text() == "MIT License (fixture)\n"
    father = corpus.relations["person_father"]
    # LRE's two trained templates first, then the project's, five in all; the zero-shot template equal to a
    # trained one (by case) is not held out, the other is
    assert father.templates["en"]["train"][:2] == ["{} relates to", "The object of {} is"]
    assert len(father.templates["en"]["train"]) == 5
    assert father.templates["en"]["heldout"] == ["Tell me: {} relates to what?"]
    assert father.templates["de"] == {"train": [f"de person_father {i} {{}}" for i in range(5)],
                                      "heldout": ["de held {}"]}
    # one split for every relation: a person is evaluation everywhere or nowhere
    split_of: dict[str, set[str]] = {}
    for rel in corpus.relations.values():
        assert len(rel.facts) == 16  # a seeded subset of the 20
        assert sum(f.split == "evaluation" for f in rel.facts) >= 1
        for f in rel.facts:
            split_of.setdefault(f.subject, set()).add(f.split)
    assert all(len(s) == 1 for s in split_of.values())
    continent = {f.subject: f for f in corpus.relations["landmark_on_continent"].facts}
    some = next(iter(continent.values()))
    assert some.objects["de"] in {"Europa", "Asien"} and some.object_in("es") in {"Europa", "Asia"}
    rerun = sources / "again"
    write_lre12(Lre12Options(sources / "lre", sources / "templates.json", sources / "translations.json",
                             facts_per_relation=20, evaluation_count=4, seed=0), rerun)
    person3 = [f for f in load_corpus(rerun).relations["person_father"].facts if f.subject == "Person 3"]
    assert person3[0].object_in("en") == "person_father object 3"
    assert person3[0].alternatives_in("en") == ["second father"]  # every valid object kept


def test_an_object_without_translation_is_refused(sources):
    (sources / "translations.json").write_text(json.dumps({"relations": {"landmark_on_continent": {
        "Europe": {"de": "Europa", "fr": "Europe", "es": "Europa"}}}}), encoding="utf-8")
    options = Lre12Options(sources / "lre", sources / "templates.json", sources / "translations.json",
                           facts_per_relation=12, evaluation_count=4, seed=0)
    with pytest.raises(ValueError, match="'Asia' has no translation"):
        write_lre12(options, sources / "out")
