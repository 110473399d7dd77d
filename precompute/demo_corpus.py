"""The embedded demo corpus: synthetic entities, consistent facts, templates from data/facts/templates.json.

All subjects and all name-like objects are invented (deterministically from a
seed) so that 12 relations with 100+ facts each exist in four languages without
translation; closed-set objects (continent, occupation, instrument, sport,
position) use the translated labels of templates.json. Subjects are shared
across relations the way the paper's are (one person has a father, a mother, an
occupation...), so a subject alone never tells which relation is asked.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from core.facts import Fact, FactCorpus, Relation

FACTS_PER_RELATION = 110
EVALUATION_FRACTION = 0.42

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "r", "s", "st", "t", "tr", "v", "z", "th", "sh", "j"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia"]
_CODAS = ["", "", "n", "r", "l", "s", "m", "k", "th", "nd", "rt"]
_GREEK = ["Alpha", "Beta", "Gamma", "Delta", "Epsilon", "Zeta", "Eta", "Theta", "Iota", "Kappa", "Lambda", "Sigma", "Tau", "Omega"]
_CONSTELLATIONS = ["Orion", "Lyra", "Cygnus", "Draco", "Pegasus", "Andromeda", "Cassiopeia", "Perseus", "Hydra", "Aquila",
                   "Scorpius", "Taurus", "Gemini", "Leo", "Virgo", "Carina", "Centaurus", "Ursa Major", "Boötes", "Auriga"]
_LANDMARK_KINDS = ["Tower", "Bridge", "Palace", "Gate", "Temple", "Falls", "Cathedral", "Fortress", "Lighthouse", "Arena"]


class _Names:
    """Pronounceable invented names, never repeated within one corpus."""

    def __init__(self, rng: random.Random):
        self.rng, self.used = rng, set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        while True:
            n = self.rng.randint(*syllables)
            w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(n)) + self.rng.choice(_CODAS)
            w = w.capitalize()
            if w not in self.used and 4 <= len(w) <= 11:
                self.used.add(w)
                return w

    def many(self, count: int, make) -> list[str]:
        out: list[str] = []
        while len(out) < count:
            name = make()
            if name not in out:
                out.append(name)
        return out


def build_demo_corpus(templates_path: Path, seed: int = 0) -> FactCorpus:
    spec = json.loads(Path(templates_path).read_text(encoding="utf-8"))
    languages: list[str] = spec["languages"]
    values: dict[str, dict[str, dict[str, str]]] = spec["values"]
    rng = random.Random(seed)
    names = _Names(rng)
    n = FACTS_PER_RELATION

    person = lambda: f"{names.word((1, 2))} {names.word()}"  # noqa: E731
    persons = names.many(330, person)
    parents = names.many(2 * n, person)
    executives = names.many(n, person)
    companies = names.many(180, lambda: names.word() + rng.choice(["corp", "tech", "soft", "works", "labs", ""]))
    cities = names.many(40, lambda: names.word())
    countries = names.many(30, lambda: names.word() + rng.choice(["ia", "land", "stan", "ora", ""]))
    continent_keys = sorted(values["continent"])
    country_continent = {c: continent_keys[i % len(continent_keys)] for i, c in enumerate(countries)}
    landmarks = names.many(200, lambda: f"{names.word()} {rng.choice(_LANDMARK_KINDS)}")
    products = names.many(n, lambda: f"{names.word()} {rng.randint(2, 99) * 10}")
    stars = names.many(n, lambda: f"{rng.choice(_GREEK)} {names.word()}")

    def label(kind: str, key: str) -> dict[str, str]:
        return {lang: values[kind][key][lang] for lang in languages}

    def same(name: str) -> dict[str, str]:
        return {"en": name}

    sports = sorted(values["sport"])
    positions_by_sport = {s: sorted(k for k, v in values["position"].items() if v["sport"] == s) for s in sports}
    athletes = rng.sample(persons, 2 * n)
    athlete_sport = {p: rng.choice(sports) for p in athletes}
    # Pro-sport and position subjects overlap by half, and agree where they do.
    sport_subjects, position_subjects = athletes[:n], athletes[n // 2 : n // 2 + n]
    landmark_country = {lm: rng.choice(countries) for lm in landmarks}
    in_country_subjects, on_continent_subjects = landmarks[:n], landmarks[n // 2 : n // 2 + n]

    pairs: dict[str, list[tuple[str, dict[str, str]]]] = {
        "person_father": [(p, same(f)) for p, f in zip(rng.sample(persons, n), parents[:n])],
        "person_mother": [(p, same(m)) for p, m in zip(rng.sample(persons, n), parents[n:])],
        "person_occupation": [(p, label("occupation", rng.choice(sorted(values["occupation"])))) for p in rng.sample(persons, n)],
        "person_plays_instrument": [(p, label("instrument", rng.choice(sorted(values["instrument"])))) for p in rng.sample(persons, n)],
        "person_plays_pro_sport": [(p, label("sport", athlete_sport[p])) for p in sport_subjects],
        "person_plays_position_in_sport": [
            (p, label("position", rng.choice(positions_by_sport[athlete_sport[p]]))) for p in position_subjects
        ],
        "company_ceo": [(c, same(e)) for c, e in zip(rng.sample(companies, n), executives)],
        "company_hq": [(c, same(rng.choice(cities))) for c in rng.sample(companies, n)],
        "product_by_company": [(p, same(rng.choice(companies[:60]))) for p in products],
        "landmark_in_country": [(lm, same(landmark_country[lm])) for lm in in_country_subjects],
        "landmark_on_continent": [(lm, label("continent", country_continent[landmark_country[lm]])) for lm in on_continent_subjects],
        "star_constellation": [(s, same(rng.choice(_CONSTELLATIONS))) for s in stars],
    }
    # One split for every subject, so no subject is used for identification in one relation and evaluation in another.
    all_subjects = sorted({s for rel in pairs.values() for s, _ in rel})
    split = {s: ("evaluation" if rng.random() < EVALUATION_FRACTION else "identification") for s in all_subjects}

    relations = {}
    for name, rel_spec in spec["relations"].items():
        relations[name] = Relation(
            name=name,
            description=rel_spec["description"],
            subject_kind=rel_spec["subject_kind"],
            object_kind=rel_spec["object_kind"],
            synthetic=True,
            templates=rel_spec["templates"],
            facts=[Fact(s, objs, split[s]) for s, objs in pairs[name]],
        )
    corpus = FactCorpus(
        relations, languages, "",
        "Embedded demo corpus: invented entities, 12 relations mirroring the paper's LRE set, "
        "templates in " + ", ".join(languages),
    )
    corpus.validate()
    return corpus
