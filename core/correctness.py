"""Greedy 2-token prefix accuracy (method.md, Evaluation), with an optional floor for very short answers.

The paper's rule: the decoded 2 tokens, stripped, are a non-empty, case-insensitive prefix of the gold object.
Taken alone it lets a 1-2 character answer count ("fe" for "Fernand Destouches"; an article such as "A" for
"architect" or "la" for "lanceur"), a hit that chance makes likely and that can become an identification
positive. The floor (beyond the paper, opt-in: `floor=True`, `precompute run --answer-floor`): the answer must
also have at least MIN_ANSWER_CHARS characters, or spell everything the gold object's own first NEW_TOKENS
tokens spell (after this prompt, with this model's tokenizer). So a model that says exactly the gold's first
two tokens is always right, even where those are short (the demo tokenizer writes "Akkordeon" as " A", "k",
...; a Chinese or Japanese name often takes one character per token), and a short chance prefix of a longer
first token is not. An answer may match the primary object or any alternative valid object
(Prompt.alternatives).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from core.facts import Prompt
from core.generation import greedy_generate

NEW_TOKENS = 2
MIN_ANSWER_CHARS = 3  # shorter answers count only when they spell the gold's own first NEW_TOKENS tokens

Head = Callable[[str], str]  # a valid object -> the text of its own first NEW_TOKENS tokens after the prompt


def long_enough(generated: str, obj: str, head: Head | None) -> bool:
    """The floor: at least MIN_ANSWER_CHARS characters, the whole object, or (given `head`) all of what the
    object's own first NEW_TOKENS tokens spell. Without `head` a short answer must be the whole object."""
    text = generated.strip()
    if len(text) >= MIN_ANSWER_CHARS or text.lower() == obj.strip().lower():
        return True
    return head is not None and len(text) >= len(head(obj).strip())


def is_correct(generated: str, gold: str, alternatives: Sequence[str] = (), head: Head | None = None,
               floor: bool = False) -> bool:
    """The generation names the gold object or an alternative one: a prefix (the paper's rule) that, with
    `floor`, is also long enough (above). `head` is only called for a short answer, so it may tokenize on
    demand."""
    text = generated.strip().lower()
    return any(o.strip().lower().startswith(text) and (not floor or long_enough(generated, o, head))
               for o in (gold, *alternatives)) if text else False


def answer_ids(tokenizer, prompt_text: str, answer: str) -> list[int]:
    """The answer's token ids as they follow the prompt (`prompt answer` tokenized whole, the prompt's ids cut
    off); the answer tokenized alone where the tokenizer merged across the boundary."""
    prompt_ids = tokenizer(prompt_text)["input_ids"]
    full_ids = tokenizer(f"{prompt_text} {answer}")["input_ids"]
    if full_ids[: len(prompt_ids)] == prompt_ids and len(full_ids) > len(prompt_ids):
        return full_ids[len(prompt_ids):]
    return tokenizer(f" {answer}", add_special_tokens=False)["input_ids"]


def head_reader(tokenizer, prompt: Prompt, gold_ids: Sequence[int] | None = None) -> Head:
    """A Head for `prompt`: the gold's ids (when given, as tokenize_for_eval made them) or any object's ids
    after the prompt, cut to NEW_TOKENS and decoded."""

    def head(obj: str) -> str:
        ids = list(gold_ids) if gold_ids is not None and obj == prompt.gold else answer_ids(tokenizer, prompt.text, obj)
        return tokenizer.decode(ids[:NEW_TOKENS], skip_special_tokens=True)

    return head


@dataclass(frozen=True)
class Judged:
    prompt: Prompt
    generated: str
    correct: bool


def judge_prompts(model, tokenizer, prompts: Sequence[Prompt], batch_size: int = 64, new_tokens: int = NEW_TOKENS,
                  floor: bool = False) -> list[Judged]:
    ids = greedy_generate(model, tokenizer, [p.text for p in prompts], new_tokens, batch_size)
    texts = [tokenizer.decode(t, skip_special_tokens=True) for t in ids]
    return [Judged(p, t, is_correct(t, p.gold, p.alternatives, head_reader(tokenizer, p), floor))
            for p, t in zip(prompts, texts)]
