"""Options of `precompute run`, and how k is written (a count, a fraction, or a percentage)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core.adapters import DEFAULT_DEFINITION
from core.capture import DEFAULT_POOLING

PAPER_K_SWEEP = ("10", "50", "200", "500", "1000", "3000", "10000", "20000", "50000")


def resolve_k(spec: str | int | float, total: int) -> int:
    """"3000" -> 3000; "0.36%" -> 0.36% of total; "0.0036" -> the same fraction; clamped to 1..total."""
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            k = round(float(text[:-1]) / 100 * total)
        elif "." in text or "e" in text.lower():
            value = float(text)
            k = round(value * total) if value < 1 else round(value)
        else:
            k = int(text)
    except ValueError as exc:
        raise ValueError(f"k {spec!r} is not a count (3000), a fraction (0.0036) or a percentage (0.36%)") from exc
    if k < 1:
        raise ValueError(f"k {spec!r} selects no neuron out of {total:,}")
    return min(k, total)


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
    min_facts: int = 0  # LRE folders as --facts: skip relations with fewer facts (the paper: 300)

    def fingerprint_fields(self) -> dict:
        """The options that change results (not where or how fast; min_facts changes the corpus, whose
        fingerprint is compared on its own)."""
        d = asdict(self)
        for key in ("out", "batch_size", "device", "threads", "score_memory_mib", "min_facts"):
            d.pop(key)
        return d
