"""The one-pass evaluation equals plain greedy decoding, with and without an ablation."""
import math

import pytest
import torch

from core.adapters import neuron_space_for
from core.paths import DEMO_CORPUS_DIR, DEMO_MODEL_DIR
from core.prompt_outcome import evaluate_prompts, tokenize_for_eval
from core.correctness import judge_prompts
from core.facts import Prompt, load_corpus
from core.hooks import neuron_hooks
from core.loading import load_causal_lm


def _check_same(lm, prompts):
    fast = evaluate_prompts(lm.model, lm.tokenizer, prompts, batch_size=37)
    slow = judge_prompts(lm.model, lm.tokenizer, prompts, batch_size=64)
    assert [f.generated for f in fast] == [s.generated for s in slow]
    assert [f.correct for f in fast] == [s.correct for s in slow]
    return fast


def _manual_gold_logprob(lm, prompt: Prompt) -> tuple[float, float]:
    (t,) = tokenize_for_eval(lm.tokenizer, [prompt])
    ids = torch.tensor([t.prompt_ids + t.gold_ids])
    with torch.no_grad():
        lp = lm.model(input_ids=ids).logits[0].log_softmax(-1)
    n = len(t.prompt_ids)
    values = [float(lp[n - 1 + i, g]) for i, g in enumerate(t.gold_ids)]
    return values[0], sum(values)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "gpt2"])
def test_tiny_random_model(tiny_models, family):
    """A random model's first token is rarely the gold's, so the second comes from the one-token step on the
    teacher-forced pass's cache (core.prompt_outcome) for most rows: it must equal plain greedy decoding."""
    lm = load_causal_lm(tiny_models[family])
    prompts = [Prompt("r", "en", "s", "{}", "train", "evaluation", text, gold)
               for text, gold in [("The father of", "Talor Venmik"), ("Vexacorp", "Brevonna"), ("Le père de", "x")]]
    out = _check_same(lm, prompts)
    for p, o in zip(prompts, out):
        first, whole = _manual_gold_logprob(lm, p)
        assert math.isclose(o.gold_first_logprob, first, abs_tol=1e-4)
        assert math.isclose(o.gold_logprob, whole, abs_tol=1e-4)


@pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
def test_demo_model_with_and_without_ablation():
    lm = load_causal_lm(DEMO_MODEL_DIR)
    corpus = load_corpus(DEMO_CORPUS_DIR)
    prompts = corpus.prompts(split="evaluation", template_kind=None)[::23]
    _check_same(lm, prompts)
    space = neuron_space_for(lm.config)
    hooks = neuron_hooks(lm.model, space)
    with hooks.ablate([space.neuron(i) for i in range(0, space.total, 7)]):
        ablated = _check_same(lm, prompts)
    assert sum(o.correct for o in ablated) < sum(o.correct for o in evaluate_prompts(lm.model, lm.tokenizer, prompts))
