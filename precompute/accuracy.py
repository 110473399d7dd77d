"""Recall of a model on a corpus: greedy 2-token prefix accuracy per relation, language and template kind."""
from __future__ import annotations

from dataclasses import dataclass

from tqdm import tqdm

from core.correctness import judge_prompts
from core.facts import FactCorpus


@dataclass(frozen=True)
class RecallRow:
    relation: str
    language: str
    template_kind: str
    prompts: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.prompts if self.prompts else float("nan")


def measure_recall(lm, corpus: FactCorpus, batch_size: int = 256, template_kinds=("train", "heldout")) -> list[RecallRow]:
    rows = []
    cells = [(r, lang, kind) for r in corpus.relation_names for lang in corpus.languages for kind in template_kinds]
    for relation, language, kind in tqdm(cells, desc="recall", unit="cell"):
        prompts = corpus.prompts(relation=relation, language=language, template_kind=kind)
        if not prompts:
            continue
        judged = judge_prompts(lm.model, lm.tokenizer, prompts, batch_size=batch_size)
        rows.append(RecallRow(relation, language, kind, len(judged), sum(j.correct for j in judged)))
    return rows


def pooled(rows: list[RecallRow], **match) -> float:
    chosen = [r for r in rows if all(getattr(r, k) == v for k, v in match.items())]
    total = sum(r.prompts for r in chosen)
    return sum(r.correct for r in chosen) / total if total else float("nan")
