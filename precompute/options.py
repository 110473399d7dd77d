"""Options of `precompute run`, and how k is written (a count, a fraction, or a percentage)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from core.adapters import DEFAULT_DEFINITION
from core.capture import DEFAULT_POOLING

PAPER_K_SWEEP = ("10", "50", "200", "500", "1000", "3000", "10000", "20000", "50000")
K_FORMS = "a count (3000), a fraction (0.0036) or a percentage (0.36%)"


@dataclass(frozen=True)
class KSpec:
    """A k as written: either a neuron count or a share of all neurons (0 < share <= 1)."""
    text: str
    count: int | None = None
    share: float | None = None

    def of(self, total: int) -> int:
        return self.count if self.count is not None else round(self.share * total)


def parse_k(spec: str | int | float) -> KSpec:
    """"3000" -> 3000 neurons; "0.36%" and "0.0036" -> that share of the model's neurons. Raises ValueError
    for anything else, for nan/inf, for shares above 100% and for counts below 1: what is not a sensible k is
    refused, never clamped."""
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            value, share = float(text[:-1]), True
            value /= 100
        elif "." in text or "e" in text.lower():
            value = float(text)
            share = value < 1
        else:
            value, share = int(text), False
    except ValueError as exc:
        raise ValueError(f"k {spec!r} is not {K_FORMS}") from exc
    if not math.isfinite(value):
        raise ValueError(f"k {spec!r} is not a finite number; write {K_FORMS}")
    if share:
        if not 0 < value <= 1:
            raise ValueError(f"k {spec!r} is not a share between 0 and 100% of the neurons")
        return KSpec(text, share=value)
    if value < 1 or value != int(value):
        raise ValueError(f"k {spec!r} is not a whole number of neurons >= 1")
    return KSpec(text, count=int(value))


def resolve_k(spec: str | int | float, total: int) -> int:
    """The number of neurons `spec` selects out of `total`; ValueError when it selects none or more than all."""
    k = parse_k(spec).of(total)
    if k < 1:
        raise ValueError(f"k {spec!r} selects no neuron out of {total:,}")
    if k > total:
        raise ValueError(f"k {spec!r} is more than the model's {total:,} neurons; choose k <= {total:,}")
    return k


def resolve_sweep(specs: list[str] | tuple[str, ...], k: int, total: int) -> list[int]:
    """The sweep's k values plus the main k, sorted. The paper's default sweep (made for 7B models) stops at
    the model's size; values given explicitly must each fit the model."""
    if tuple(specs) == PAPER_K_SWEEP:
        specs = [s for s in specs if int(s) <= total]
    return sorted({resolve_k(s, total) for s in specs} | {k})


@dataclass
class RunOptions:
    model: str
    facts: str
    out: str
    definition: str = DEFAULT_DEFINITION
    k: str = "3000"
    k_sweep: list[str] = field(default_factory=lambda: list(PAPER_K_SWEEP))
    languages: list[str] | None = None  # None: every language of the corpus
    identification_language: str = "en"  # neurons whose effects are measured are identified from this language
    negatives_ratio: float = 4.0
    pooling: str = DEFAULT_POOLING
    seed: int = 0
    random_seeds: int = 10
    effect_templates: int | None = None  # train templates per relation and language in effects (None: all)
    batch_size: int = 128
    dtype: str = "float32"
    device: str = "cpu"
    threads: int | None = None
    score_memory_mib: int = 1024  # capture columns read at a time while scoring (a 7B capture is ~20 GB)
    min_facts: int = 0  # LRE folders as --facts: skip relations with fewer distinct subjects
    relations: list[str] | None = None  # only these relations of --facts (None: all; the paper's: PAPER_RELATIONS)
    # A relation x language with fewer correct identification prompts stops the run (all such named at once):
    # AP over a handful of positives ranks neurons by chance.
    min_positives: int = 10
    # Beyond the paper: answers shorter than 3 characters count only when they spell the gold's own first two
    # tokens (core/correctness.py). Off by default: the paper's rule, as every run made before the option.
    answer_floor: bool = False
    # Beyond the paper: "either" also ranks neurons that mark a relation by *lower* activation (AP of the
    # negated values, the better side kept with its sign); "positive" is the paper's AP on raw activations.
    direction: str = "positive"
    null_seeds: int = 20  # identifications with relation labels permuted: the overlap's null (0: none)
    critical: bool = True  # screen single-neuron ablations for neurons that alone break a relation
    critical_prompts: int = 4  # evaluation prompts per relation in the screen
    critical_threshold: float = 20.0  # accuracy points one neuron must cost a relation to be critical
    critical_neurons: int = 20000  # screen every neuron up to this many; above, the top-k union + a sample
    random_exclude_critical: bool = False  # add random sets at the main k drawn from non-critical neurons
    # Beyond the paper: effects of another ablation (core.ablation) at the main k, written beside the zero
    # sweep's (mode_effects/); a run can hold several. Not in the fingerprint: it adds files, changes none.
    ablation: str = "zero"
    ablation_factor: float | None = None  # scale's factor

    def fingerprint_fields(self) -> dict:
        """The options that change results (not where or how fast; min_facts and relations change the corpus,
        whose fingerprint is compared on its own; min_positives only decides whether the run goes on)."""
        d = asdict(self)
        for key in ("out", "batch_size", "device", "threads", "score_memory_mib", "min_facts", "relations",
                    "min_positives", "ablation", "ablation_factor"):
            d.pop(key)
        if not self.answer_floor:  # the paper's rule: recorded by its absence, as in runs made before the option
            d.pop("answer_floor")
        return d
