import pytest

from core.correctness import is_correct, judge_prompts
from core.facts import Prompt
from core.generation import greedy_generate, next_token_distribution
from core.loading import load_causal_lm


@pytest.mark.parametrize(
    "generated, gold, expected",
    [(" Talor Ven", "Talor Venmik", True), ("talor", "Talor Venmik", True), ("  ", "Talor", False),
     ("", "Talor", False), (" Tala", "Talor", False), ("Talor Venmik ist", "Talor Venmik", False)],
)
def test_prefix_rule(generated, gold, expected):
    assert is_correct(generated, gold) is expected


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_batched_left_padded_generation_equals_one_by_one(tiny_models, family):
    lm = load_causal_lm(tiny_models[family])
    texts = ["The father of Talor Venmik is", "Vexacorp", "Le père de Talor Venmik est Brod Kasel and"]
    together = greedy_generate(lm.model, lm.tokenizer, texts, 6, batch_size=3)
    alone = [greedy_generate(lm.model, lm.tokenizer, [t], 6)[0] for t in texts]
    assert together == alone


def test_next_token_distribution_is_sorted_and_sums_below_one(tiny_models):
    lm = load_causal_lm(tiny_models["llama"])
    dist = next_token_distribution(lm.model, lm.tokenizer, "The father of", top=10)
    probs = [p for _, _, p in dist]
    assert len(dist) == 10 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_judge_uses_the_decoded_two_tokens(tiny_models):
    lm = load_causal_lm(tiny_models["llama"])
    text = "The father of"
    ids = greedy_generate(lm.model, lm.tokenizer, [text], 2)[0]
    generated = lm.tokenizer.decode(ids, skip_special_tokens=True)
    gold = generated.strip() + "zzz" if generated.strip() else "x"
    prompt = Prompt("r", "en", "s", "{}", "train", "evaluation", text, gold)
    (judged,) = judge_prompts(lm.model, lm.tokenizer, [prompt])
    assert judged.generated == generated
    assert judged.correct is bool(generated.strip())
