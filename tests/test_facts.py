import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from core.paths import DEMO_CORPUS_DIR
from core.facts import CorpusError, load_corpus, save_corpus
from core.importers import import_csv, import_lre
from precompute.demo_corpus import build_demo_corpus

TEMPLATES = Path(__file__).resolve().parent.parent / "data" / "facts" / "templates.json"


@pytest.fixture(scope="module")
def demo():
    return load_corpus(DEMO_CORPUS_DIR)


def test_demo_corpus_shape(demo):
    assert len(demo.relations) >= 12
    assert set(demo.languages) >= {"en", "de", "fr", "es"}
    for rel in demo.relations.values():
        assert len(rel.facts) >= 100, rel.name
        for lang in demo.languages:
            kinds = rel.templates[lang]
            assert len(kinds["train"]) + len(kinds["heldout"]) >= 3, (rel.name, lang)
            assert len(kinds["heldout"]) >= 1 and len(kinds["train"]) >= 2
            assert not set(kinds["train"]) & set(kinds["heldout"])
        ident = {f.subject for f in rel.facts if f.split == "identification"}
        evals = {f.subject for f in rel.facts if f.split == "evaluation"}
        assert ident and evals and not ident & evals


def test_demo_corpus_split_is_global_and_subjects_are_shared(demo):
    split_of = {}
    for rel in demo.relations.values():
        for f in rel.facts:
            assert split_of.setdefault(f.subject, f.split) == f.split
    relations_per_subject = Counter(f.subject for rel in demo.relations.values() for f in rel.facts)
    assert max(relations_per_subject.values()) >= 3  # a person has a father, a mother, a sport...


def test_closely_related_relations_agree(demo):
    sport_of = {f.subject: f.objects["en"] for f in demo.relations["person_plays_pro_sport"].facts}
    values = json.loads(TEMPLATES.read_text())["values"]
    position_sport = {v["en"]: values["sport"][v["sport"]]["en"] for v in values["position"].values()}
    shared = [f for f in demo.relations["person_plays_position_in_sport"].facts if f.subject in sport_of]
    assert len(shared) >= 20
    for f in shared:
        assert position_sport[f.objects["en"]] == sport_of[f.subject]


def test_committed_corpus_is_what_the_builder_makes(demo, tmp_path):
    rebuilt = build_demo_corpus(TEMPLATES, seed=0)
    assert rebuilt.fingerprint() == demo.fingerprint()
    save_corpus(rebuilt, tmp_path / "c")
    assert load_corpus(tmp_path / "c").fingerprint() == demo.fingerprint()


def test_prompts_fill_templates(demo):
    prompts = demo.prompts(relation="person_father", language="de", template_kind="heldout")
    assert prompts and all("{}" not in p.text and p.subject in p.text for p in prompts)
    assert {p.language for p in prompts} == {"de"}
    occupation = demo.prompts(relation="person_occupation", language="fr")[0]
    assert occupation.gold == demo.relations["person_occupation"].facts[0].objects["fr"]


def test_loading_errors(tmp_path):
    with pytest.raises(CorpusError, match="corpus.json is missing"):
        load_corpus(tmp_path)
    (tmp_path / "corpus.json").write_text("{not json")
    with pytest.raises(CorpusError, match="not valid JSON"):
        load_corpus(tmp_path)
    (tmp_path / "corpus.json").write_text(json.dumps({"format": "relation-facts/1", "languages": ["en"], "relations": ["gone"]}))
    with pytest.raises(CorpusError, match="gone.json is missing"):
        load_corpus(tmp_path)


def _write_lre(folder: Path, name: str, count: int):
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "name": name.replace("_", " "),
        "prompt_templates": ["{} is led by", "The CEO of {} is"],
        "prompt_templates_zs": ["Who runs {}?"],
        "properties": {"relation_type": "factual", "domain_name": "company", "range_name": "person", "symmetric": False},
        "samples": [{"subject": f"Company{i}", "object": f"Person{i}"} for i in range(count)],
    }
    (folder / f"{name}.json").write_text(json.dumps(data))


def test_import_lre(tmp_path):
    _write_lre(tmp_path / "lre", "company_ceo", 120)
    _write_lre(tmp_path / "lre", "tiny_relation", 10)
    corpus = import_lre(tmp_path / "lre", evaluation_count=50, seed=1, min_facts=100)
    assert corpus.relation_names == ["company_ceo"]
    rel = corpus.relations["company_ceo"]
    assert Counter(f.split for f in rel.facts) == {"evaluation": 50, "identification": 70}
    assert rel.templates["en"] == {"train": ["{} is led by", "The CEO of {} is"], "heldout": ["Who runs {}?"]}
    prompt = corpus.prompts(relation="company_ceo", template_kind="train")[1]
    assert prompt.text.endswith("? Answer:") and prompt.gold.startswith("Person")
    save_corpus(corpus, tmp_path / "out")
    assert load_corpus(tmp_path / "out").fingerprint() == corpus.fingerprint()


def test_import_lre_rejects_other_json(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CorpusError, match="not an LRE relation file"):
        import_lre(tmp_path)


def test_import_csv(tmp_path):
    facts, templates = tmp_path / "facts.csv", tmp_path / "templates.csv"
    with open(facts, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["relation", "subject", "object", "language"])
        for i in range(30):
            w.writerow(["Country capital", f"Land{i}", f"City{i}", "en"])
            w.writerow(["Country capital", f"Land{i}", f"Stadt{i}", "de"])
    with open(templates, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["relation", "language", "template", "kind"])
        w.writerow(["Country capital", "en", "The capital of {} is", "train"])
        w.writerow(["Country capital", "en", "{}'s capital:", "heldout"])
        w.writerow(["Country capital", "de", "Die Hauptstadt von {} ist", "train"])
    corpus = import_csv(facts, templates, evaluation_count=10, seed=0)
    assert corpus.relation_names == ["country_capital"] and corpus.languages == ["de", "en"]
    de = corpus.prompts(language="de")
    assert len(de) == 30 and de[0].gold.startswith("Stadt")
    assert Counter(f.split for f in corpus.relations["country_capital"].facts)["evaluation"] == 10


def test_import_csv_errors(tmp_path):
    facts, templates = tmp_path / "facts.csv", tmp_path / "templates.csv"
    facts.write_text("relation,subject\nr,s\n")
    templates.write_text("relation,language,template\nr,en,{} is\n")
    with pytest.raises(CorpusError, match="lacks column"):
        import_csv(facts, templates)
    facts.write_text("relation,subject,object\nother,s,o\n")
    with pytest.raises(CorpusError, match="no templates for relation"):
        import_csv(facts, templates)
    templates.write_text("relation,language,template\nother,en,no slot here\n")
    with pytest.raises(CorpusError, match="exactly one"):
        import_csv(facts, templates)
