"""The LRE path as the paper used it: named relations (and the paper's preset), sizes in distinct subjects,
held-out templates that are not trained ones, one subject split over all relations, every valid object
accepted, a floor for very short answers, and every relation x language a model fails named at once.
Every test writes its own small LRE files."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.correctness import head_reader, is_correct
from core.facts import CorpusError, Prompt, global_split, load_corpus, save_corpus
from core.importers import (PAPER_RELATIONS, QUESTION_TEMPLATES, import_lre, load_facts, lre_corpus,
                            read_lre_relations)
from core.paths import DEMO_CORPUS_DIR
from precompute.cli import main
from precompute.context import RunInputError, to_prompts
from precompute.stages.baseline import PRECHECK_PROMPTS, precheck_sample, projected_shortfalls
from precompute.stages.identification import check_positives, floor_refusals, positive_counts, positives_line


def write_lre(folder: Path, stem: str, samples: list[tuple[str, str]], train=("The CEO of {} is",),
              zero_shot=("Who runs {}? It is",), range_name: str = "person") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps({
        "name": stem.replace("_", " "), "prompt_templates": list(train), "prompt_templates_zs": list(zero_shot),
        "properties": {"relation_type": "factual", "domain_name": "thing", "range_name": range_name,
                       "symmetric": False},
        "samples": [{"subject": s, "object": o} for s, o in samples]}))
    return path


def numbered(prefix: str, count: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"{prefix} {i}", f"Object {i}") for i in range(start, start + count)]


def one_line_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


# 1. naming relations ------------------------------------------------------------------------------------------

def test_the_paper_preset_is_the_twelve_relations_of_method_md():
    assert PAPER_RELATIONS == (
        "company_ceo", "company_hq", "landmark_in_country", "landmark_on_continent", "person_father",
        "person_mother", "person_occupation", "person_plays_instrument", "person_plays_position_in_sport",
        "person_plays_pro_sport", "product_by_company", "star_constellation")
    assert sorted(QUESTION_TEMPLATES) == sorted(PAPER_RELATIONS)
    assert all(t.count("{}") == 1 for t in QUESTION_TEMPLATES.values())


def test_named_relations_are_read_and_unknown_names_listed_with_the_available_ones(tmp_path, capsys):
    for stem in ("company_ceo", "person_father", "country_currency"):
        write_lre(tmp_path / "lre", stem, numbered(stem, 8))
    assert list(read_lre_relations(tmp_path / "lre", ["person_father", "company_ceo"])) == ["company_ceo",
                                                                                               "person_father"]
    with pytest.raises(CorpusError, match=r"no LRE relation file for star_constellation, nope under .*; available: "
                                          r"company_ceo, country_currency, person_father$"):
        read_lre_relations(tmp_path / "lre", ["company_ceo", "star_constellation", "nope"])
    err = one_line_error(capsys, ["import-lre", str(tmp_path / "lre"), "--out", str(tmp_path / "o"),
                                  "--paper-relations"])
    assert "company_hq, landmark_in_country" in err and "available: company_ceo, country_currency, person_father" in err
    assert not (tmp_path / "o").exists()
    assert main(["import-lre", str(tmp_path / "lre"), "--out", str(tmp_path / "two"), "--relations",
                 "person_father,company_ceo"]) == 0
    assert load_corpus(tmp_path / "two").relation_names == ["company_ceo", "person_father"]


def test_names_and_a_size_minimum_are_refused_together(tmp_path, capsys):
    write_lre(tmp_path / "lre", "company_ceo", numbered("c", 8))
    err = one_line_error(capsys, ["import-lre", str(tmp_path / "lre"), "--out", str(tmp_path / "o"),
                                  "--paper-relations", "--min-facts", "300"])
    assert "--min-facts 300 with --paper-relations" in err
    err = one_line_error(capsys, ["run", "--model", "none", "--facts", str(tmp_path / "lre"), "--out",
                                  str(tmp_path / "run"), "--relations", "company_ceo", "--min-facts", "5"])
    assert "--min-facts 5 with --relations" in err
    err = one_line_error(capsys, ["import-lre", str(tmp_path / "lre"), "--out", str(tmp_path / "o"),
                                  "--relations", "company_ceo", "--paper-relations"])
    assert "not allowed with argument" in err
    with pytest.raises(ValueError, match="not both"):
        import_lre(tmp_path / "lre", min_facts=3, relations=["company_ceo"])


def test_run_names_relations_of_a_corpus_folder_too(tmp_path, capsys):
    err = one_line_error(capsys, ["run", "--model", "none", "--facts", str(DEMO_CORPUS_DIR), "--out",
                                  str(tmp_path / "run"), "--relations", "person_father,person_uncle"])
    assert "relation(s) person_uncle not in the corpus; available: company_ceo," in err
    corpus = load_facts(DEMO_CORPUS_DIR, relations=["star_constellation", "person_father"])
    assert corpus.relation_names == ["person_father", "star_constellation"]


# 2. size in distinct subjects ---------------------------------------------------------------------------------

def test_min_facts_counts_distinct_subjects_not_samples(tmp_path):
    repeated = numbered("r", 3) * 3  # 9 samples, 3 subjects
    write_lre(tmp_path / "lre", "repeated", repeated)
    write_lre(tmp_path / "lre", "plain", numbered("p", 4))
    assert list(read_lre_relations(tmp_path / "lre", min_facts=4)) == ["plain"]
    both = read_lre_relations(tmp_path / "lre", min_facts=3)
    assert [(len(r.facts), r.samples) for r in both.values()] == [(4, 4), (3, 9)]
    with pytest.raises(CorpusError, match="at least 5 distinct subjects"):
        read_lre_relations(tmp_path / "lre", min_facts=5)


# 3. held-out templates ----------------------------------------------------------------------------------------

def test_heldout_templates_equal_to_a_trained_one_are_dropped_and_reported(tmp_path, capsys):
    write_lre(tmp_path / "lre", "company_ceo", numbered("c", 6), train=["{}'s CEO is", "The CEO of {} is"],
              zero_shot=["  the CEO of {}   IS", "Who leads {}? It is", "who leads {}?  It is"])
    write_lre(tmp_path / "lre", "person_father", numbered("p", 6), train=["{}'s father is named"],
              zero_shot=["{}'s Father is named "])
    write_lre(tmp_path / "lre", "country_currency", numbered("k", 6), train=["The currency of {} is"],
              zero_shot=[], range_name="currency")
    read = read_lre_relations(tmp_path / "lre")
    ceo, father, currency = read["company_ceo"], read["person_father"], read["country_currency"]
    assert (ceo.heldout, ceo.heldout_dropped, ceo.heldout_generated) == (
        ["Who leads {}? It is"], ["  the CEO of {}   IS", "who leads {}?  It is"], False)
    assert (father.heldout, father.heldout_generated) == ([QUESTION_TEMPLATES["person_father"]], True)
    assert father.heldout == ["What was the name of the father of {}? His name was"]
    assert currency.heldout == ["What is the currency of {}? It is"] and currency.heldout_dropped == []
    assert ceo.report() == ("company_ceo: 2 trained, 1 held-out template(s) (2 zero-shot template(s) dropped as "
                            "repeats); 6 subjects (6 samples)")
    assert father.report().startswith("person_father: 1 trained, 1 held-out template(s) (every zero-shot template "
                                      "is a trained one: a question written for it)")
    assert main(["import-lre", str(tmp_path / "lre"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[:3] == [ceo.report(), currency.report(), father.report()]
    templates = load_corpus(tmp_path / "out").relations["company_ceo"].templates["en"]
    assert templates == {"train": ["{}'s CEO is", "The CEO of {} is"], "heldout": ["Who leads {}? It is"]}


# 4. one split over all relations ------------------------------------------------------------------------------

def test_global_split_puts_a_shared_subject_in_one_split_and_fills_every_relation():
    relations = {"a": [f"s{i}" for i in range(20)], "b": [f"s{i}" for i in range(10, 30)],
                 "c": [f"t{i}" for i in range(10)], "d": ["s0", "s1", "s2", "s3"]}
    split = global_split(relations, evaluation_count=5, seed=3)
    assert sorted(split) == sorted({s for subjects in relations.values() for s in subjects})
    evaluation = {r: sum(split[s] == "evaluation" for s in subjects) for r, subjects in relations.items()}
    # d's subjects are all a's: pass 2 fills d (at most half its 4 subjects) and a passes 5, never its cap of 10
    assert evaluation == {"a": 6, "b": 5, "c": 5, "d": 2}
    assert split == global_split(relations, 5, 3)
    assert split != global_split(relations, 5, 4)


def test_lre_import_splits_subjects_the_same_way_in_every_relation(tmp_path):
    people = [f"Person {i}" for i in range(40)]
    write_lre(tmp_path / "lre", "person_father", [(p, f"Father {i}") for i, p in enumerate(people)])
    write_lre(tmp_path / "lre", "person_mother", [(p, f"Mother {i}") for i, p in enumerate(people[10:])])
    write_lre(tmp_path / "lre", "company_ceo", numbered("Company", 30))
    corpus = import_lre(tmp_path / "lre", evaluation_count=8, seed=0)
    # every mother's child has a father listed: filling mothers to 8 takes fathers past 8
    assert {r: Counter(f.split for f in rel.facts)["evaluation"] for r, rel in corpus.relations.items()} == {
        "company_ceo": 8, "person_father": 11, "person_mother": 8}
    where: dict[str, set[str]] = {}
    for rel in corpus.relations.values():
        for f in rel.facts:
            where.setdefault(f.subject, set()).add(f.split)
    assert all(len(splits) == 1 for splits in where.values())


# 5. every valid object ----------------------------------------------------------------------------------------

def test_alternative_objects_are_kept_saved_only_where_present_and_accepted(tmp_path):
    samples = [("SNES-CD", "Nintendo"), ("SNES-CD", "Sony"), ("SNES-CD", "Nintendo"), ("Dino", "Ferrari"),
               ("Dino", "Ferrari"), ("Walkman", "Sony"), ("Wii", "Nintendo")]
    write_lre(tmp_path / "lre", "product_by_company", samples, train=["{} was created by"])
    rel = read_lre_relations(tmp_path / "lre")["product_by_company"]
    assert rel.facts == [("SNES-CD", ["Nintendo", "Sony"]), ("Dino", ["Ferrari"]), ("Walkman", ["Sony"]),
                         ("Wii", ["Nintendo"])]
    corpus = lre_corpus({"product_by_company": rel}, evaluation_count=1)
    facts = {f.subject: f for f in corpus.relations["product_by_company"].facts}
    assert (facts["SNES-CD"].objects, facts["SNES-CD"].alternatives) == ({"en": "Nintendo"}, {"en": ["Sony"]})
    assert facts["Dino"].alternatives == {}
    assert facts["SNES-CD"].alternatives_in("de") == ["Sony"]  # de has no label of its own: en's, with en's others
    save_corpus(corpus, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "relations" / "product_by_company.json").read_text())["facts"]
    assert [("alternatives" in f) for f in saved] == [True, False, False, False]
    assert load_corpus(tmp_path / "out").fingerprint() == corpus.fingerprint()
    (prompt,) = [p for p in corpus.prompts(template_kind="train") if p.subject == "SNES-CD"]
    assert (prompt.gold, prompt.alternatives) == ("Nintendo", ("Sony",))
    assert is_correct(" Sony", prompt.gold, prompt.alternatives) and not is_correct(" Sony", prompt.gold)


def test_the_demo_corpus_saves_to_the_same_bytes(tmp_path):
    save_corpus(load_corpus(DEMO_CORPUS_DIR), tmp_path / "demo")
    for path in sorted(DEMO_CORPUS_DIR.rglob("*.json")):
        assert (tmp_path / "demo" / path.relative_to(DEMO_CORPUS_DIR)).read_bytes() == path.read_bytes(), path


def test_run_prompts_carry_alternatives_to_the_judged_prompts(tmp_path, tiny_models):
    from precompute.context import prepare_run
    from precompute.options import RunOptions
    from precompute.processes import ProcessGroup

    write_lre(tmp_path / "lre", "product_by_company", [("SNES-CD", "Nintendo"), ("SNES-CD", "Sony"),
                                                       ("Wii", "Nintendo"), ("Walkman", "Sony")])
    lines: list[str] = []
    ctx = prepare_run(RunOptions(model=str(tiny_models["llama"]), facts=str(tmp_path / "lre"),
                                 out=str(tmp_path / "run"), k="5", k_sweep=["5"]), ProcessGroup(), lines.append)
    assert lines == ["product_by_company: 1 trained, 1 held-out template(s); 3 subjects (4 samples), 1 with "
                     "alternative objects"]
    carried = {p.subject: p.alternatives for p in to_prompts(ctx.prompts)}
    assert carried == {"SNES-CD": ("Sony",), "Wii": (), "Walkman": ()}


def test_an_answer_naming_an_alternative_object_is_correct_in_the_model_pass(tiny_models):
    from core.loading import load_causal_lm
    from core.prompt_outcome import evaluate_prompts

    lm = load_causal_lm(tiny_models["llama"])
    text = "The father of Talor Venmik is"
    (plain,) = evaluate_prompts(lm.model, lm.tokenizer, [Prompt("r", "en", "s", "{}", "train", "evaluation", text,
                                                                 "Zzzz")])
    answer = plain.generated.strip()
    assert answer and not plain.correct  # the tiny model's greedy answer, wrong for gold Zzzz
    with_alternative = Prompt("r", "en", "s", "{}", "train", "evaluation", text, "Zzzz", ("Yyy", answer))
    (judged,) = evaluate_prompts(lm.model, lm.tokenizer, [with_alternative])
    assert judged.correct and judged.generated == plain.generated
    assert judged.gold_first_logprob == plain.gold_first_logprob  # measured on the primary gold only


# 7. very short answers ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("generated, gold, head_text, expected", [
    ("fe", "Fernand Destouches", None, False),  # a 2-character prefix: no longer enough
    ("fe", "Fernand Destouches", "Fernand", False),  # the gold's first tokens spell more
    ("Fe", "Fernand Destouches", " Fe", True),  # ... unless they are this short: the model said all of them
    (" Ak", "Akkordeon", " Ak", True),  # the demo tokenizer: " A", "k", "k", ...
    (" A", "Akkordeon", " Ak", False),  # one character short of the gold's own two tokens
    ("UK", "UK", None, True),  # the whole gold
    (" Fer", "Fernand Destouches", None, True),  # 3 characters: the paper's rule alone
    ("Son", "Nintendo", None, False),
])
def test_short_answer_floor(generated, gold, head_text, expected):
    head = None if head_text is None else (lambda obj: head_text)
    assert is_correct(generated, gold, (), head, floor=True) is expected
    assert is_correct(generated, gold, (), head) is gold.lower().startswith(generated.strip().lower())  # the paper's


def test_floor_refusals_counts_the_short_prefixes_the_floor_refuses():
    from conftest import make_tokenizer

    cases = [(" Ta", "Talor Venmik", ()), (" B", "Brod Kasel", ()), ("X", "X", ()), (" Talor", "Talor Venmik", ()),
             (" Q", "Talor", ("Q",)), (" Zz", "Talor", ()), (" Br", "Brod Kasel", ())]
    prompts = pd.DataFrame([dict(prompt_id=i, relation="r", language="en", subject="s", template_kind="train",
                                 split="identification", text="The father of Talor Venmik is", gold=gold,
                                 alternatives=alternatives) for i, (_, gold, alternatives) in enumerate(cases)])
    base = prompts[["prompt_id", "split", "template_kind"]].assign(generated=[c[0] for c in cases])
    evaluation = base.assign(split="evaluation")  # not identification prompts: never counted
    # " Ta", " B", " Br": prefixes shorter than what the gold's first two tokens spell (" Brod"/" Kasel" are
    # whole tokens of the tiny tokenizer); "X" and "Q" are whole objects; " Talor" is long enough; " Zz" no prefix
    assert floor_refusals(base, prompts, make_tokenizer()) == 3
    assert floor_refusals(evaluation, prompts, make_tokenizer()) == 0


def test_the_head_is_what_the_gold_tokens_spell_after_the_prompt():
    from conftest import make_tokenizer

    tokenizer = make_tokenizer()
    prompt = Prompt("r", "en", "s", "{}", "train", "evaluation", "The father of Talor Venmik is", "Brod Kasel")
    ids = tokenizer("The father of Talor Venmik is Brod Kasel")["input_ids"][len(tokenizer(prompt.text)["input_ids"]):]
    head = head_reader(tokenizer, prompt)
    assert head("Brod Kasel") == tokenizer.decode(ids[:2])
    assert is_correct(tokenizer.decode(ids[:2]), prompt.gold, (), head)


# 6. every failing relation x language named at once -----------------------------------------------------------

def baseline_frame(correct: dict[tuple[str, str], int], asked: int = 6) -> pd.DataFrame:
    rows = []
    for (rel, lang), hits in correct.items():
        for i in range(asked):
            answer = (" Ob" if i == 0 else " Object") if i < hits else " Wrong"
            rows.append(dict(relation=rel, language=lang, split="identification", template_kind="train",
                             generated=answer, gold="Object", correct=i < hits))
        rows.append(dict(relation=rel, language=lang, split="evaluation", template_kind="train",
                         generated=" Object", gold="Object", correct=True))
        rows.append(dict(relation=rel, language=lang, split="identification", template_kind="train",
                         generated=" O", gold="Object", correct=False))  # a prefix the floor refused
    frame = pd.DataFrame(rows)
    return frame.assign(prompt_id=np.arange(len(frame), dtype=np.int32))


def test_every_relation_and_language_below_the_minimum_is_named_with_its_counts():
    base = baseline_frame({("a", "en"): 6, ("a", "de"): 2, ("b", "en"): 0, ("b", "de"): 3})
    units = [("a", "en"), ("a", "de"), ("b", "en"), ("b", "de"), ("c", "en")]
    counts = positive_counts(base, units)
    assert counts.values.tolist() == [["a", "en", 7, 6, 1], ["a", "de", 7, 2, 1], ["b", "en", 7, 0, 0],
                                      ["b", "de", 7, 3, 1], ["c", "en", 0, 0, 0]]
    check_positives(counts, 0)
    with pytest.raises(RunInputError) as caught:
        check_positives(counts, 3)
    assert str(caught.value) == (
        "3 of 5 relation x language sets have fewer than --min-positives 3 correctly answered identification "
        "prompts to find neurons from: a (de) answers 2 of its 7; b (en) answers 0 of its 7; c (en) answers 0 of "
        "its 0; drop these relations or languages (--relations, --languages), lower --min-positives, or use a "
        "model that knows these facts")
    assert positives_line(counts[counts.asked > 0], 4, floor=True) == (
        "identification positives: 11 in 4 relation x language sets (fewest: b (en) 0); 3 rest on answers of <= 2 "
        "characters; the short-answer floor judged 4 shorter answers wrong")
    assert positives_line(counts, 2, floor=False).endswith("3 rest on answers of <= 2 characters; --answer-floor "
                                                           "would judge 2 of them wrong")


def test_the_precheck_samples_each_pair_and_projects_its_positives():
    prompts = pd.DataFrame([dict(relation=rel, language="en", split="identification", template_kind="train")
                            for rel, n in (("a", 100), ("b", 10)) for _ in range(n)]
                           + [dict(relation="a", language="en", split="evaluation", template_kind="train")] * 5)
    prompts.insert(0, "prompt_id", np.arange(len(prompts), dtype=np.int32))
    sample = precheck_sample(prompts, [("a", "en"), ("b", "en")], seed=0)
    assert Counter(sample.relation) == {"a": PRECHECK_PROMPTS, "b": 10} and set(sample.split) == {"identification"}
    assert sample.equals(precheck_sample(prompts, [("a", "en"), ("b", "en")], seed=0))
    correct = np.array([i < 3 for i in range(PRECHECK_PROMPTS)] + [True] * 10)  # a: 3 of 32 -> about 9 of 100
    assert projected_shortfalls(sample, correct, prompts, 10) == ["a (en) 3 of 32 sampled, about 9 of 100"]
    assert projected_shortfalls(sample, correct, prompts, 9) == []


def test_a_run_names_every_relation_the_model_fails_after_a_precheck_warned(tmp_path, tiny_models):
    from precompute.options import RunOptions
    from precompute.run import run_precompute

    for stem in ("company_ceo", "company_hq", "person_father"):
        write_lre(tmp_path / "lre", stem, numbered(stem, 20))
    lines: list[str] = []
    with pytest.raises(RunInputError) as caught:
        run_precompute(RunOptions(model=str(tiny_models["llama"]), facts=str(tmp_path / "lre"),
                                  out=str(tmp_path / "run"), k="5", k_sweep=["5"], threads=1), log=lines.append)
    assert str(caught.value).startswith(
        "3 of 3 relation x language sets have fewer than --min-positives 10 correctly answered identification "
        "prompts to find neurons from: company_ceo (en) answers 0 of its 10; company_hq (en) answers 0 of its 10; "
        "person_father (en) answers 0 of its 10;")
    (precheck,) = [line for line in lines if line.startswith("pre-check")]
    assert precheck == ("pre-check: 0 of 30 sampled identification prompts answered correctly; likely fewer than "
                        "--min-positives 10 correct: company_ceo (en) 0 of 10 sampled, about 0 of 10; company_hq (en) "
                        "0 of 10 sampled, about 0 of 10; person_father (en) 0 of 10 sampled, about 0 of 10 (the exact "
                        "count follows the baseline)")


def test_the_floor_is_recorded_in_the_options_only_when_on():
    from precompute.options import RunOptions

    plain = RunOptions(model="m", facts="f", out="o", relations=["a"], min_positives=3)
    assert not {"answer_floor", "relations", "min_positives", "min_facts"} & set(plain.fingerprint_fields())
    floored = RunOptions(model="m", facts="f", out="o", answer_floor=True)
    assert floored.fingerprint_fields()["answer_floor"] is True
    assert RunOptions(out="o", **floored.fingerprint_fields()).answer_floor  # a manifest's options read back


def test_the_model_pass_applies_the_floor_only_when_asked(tiny_models, monkeypatch):
    import core.prompt_outcome as outcome
    from core.loading import load_causal_lm

    lm = load_causal_lm(tiny_models["llama"])
    prompt = Prompt("r", "en", "s", "{}", "train", "evaluation", "The father of", "Brod Kasel")
    (plain,) = outcome.evaluate_prompts(lm.model, lm.tokenizer, [prompt])
    seen = []
    monkeypatch.setattr(outcome, "is_correct", lambda *args: seen.append(args[-1]) or True)
    outcome.evaluate_prompts(lm.model, lm.tokenizer, [prompt])
    outcome.evaluate_prompts(lm.model, lm.tokenizer, [prompt], floor=True)
    assert seen == [False, True] and plain.generated  # the floor reaches the rule; the answer is unchanged
