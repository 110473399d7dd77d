import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from core.capture import capture_pooled, pool
from core.adapters import neuron_space_for
from core.hooks import neuron_hooks
from core.loading import load_causal_lm
from core.scoring import average_precision, top_k


@pytest.mark.parametrize("kind", ["continuous", "ties", "constant_columns"])
def test_average_precision_equals_sklearn(kind):
    rng = np.random.default_rng(3)
    n, m = 150, 64
    if kind == "continuous":
        scores = rng.normal(size=(n, m))
    elif kind == "ties":
        scores = rng.integers(0, 4, size=(n, m)).astype(float)
    else:
        scores = np.repeat(rng.integers(0, 2, size=(1, m)).astype(float), n, axis=0)
    labels = rng.random(n) < 0.25
    ours = average_precision(torch.tensor(scores, dtype=torch.float32), torch.tensor(labels)).numpy()
    ref = np.array([average_precision_score(labels, scores[:, j].astype(np.float32)) for j in range(m)])
    assert np.abs(ours - ref).max() < 1e-6


def test_average_precision_needs_both_classes():
    with pytest.raises(ValueError):
        average_precision(torch.zeros(5, 2), torch.ones(5, dtype=torch.bool))


def test_top_k_is_stable_on_ties():
    ap = np.array([0.5, 0.9, 0.5, 0.9, 0.1])
    assert top_k(ap, 3).tolist() == [1, 3, 0]
    assert top_k(ap, 99).tolist() == [1, 3, 0, 2, 4]


def test_pooling_ignores_padding_on_either_side():
    acts = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert torch.allclose(pool(acts, right, "mean")[0], acts[0, :3].mean(0))
    assert torch.equal(pool(acts, right, "max")[0], acts[0, 2])
    assert torch.equal(pool(acts, right, "last")[0], acts[0, 2])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert torch.allclose(pool(acts, left, "mean")[0], acts[0, 1:].mean(0))
    assert torch.equal(pool(acts, left, "last")[0], acts[0, 3])
    assert torch.equal(pool(-acts, left, "max")[0], -acts[0, 1])
    with pytest.raises(ValueError):
        pool(acts, left, "median")


@pytest.mark.parametrize("pooling", ["mean", "max", "last"])
def test_capture_is_the_same_with_left_and_right_padding_and_alone(tiny_models, pooling):
    lm = load_causal_lm(tiny_models["llama"])
    hooks = neuron_hooks(lm.model, neuron_space_for(lm.config))
    texts = ["The father of Talor Venmik is", "Vexacorp", "Le père de Talor Venmik est Brod"]
    right = capture_pooled(hooks, lm.tokenizer, texts, pooling, padding_side="right")
    left = capture_pooled(hooks, lm.tokenizer, texts, pooling, padding_side="left")
    alone = np.concatenate([capture_pooled(hooks, lm.tokenizer, [t], pooling) for t in texts])
    assert right.shape == (3, hooks.space.total)
    np.testing.assert_allclose(right, alone, atol=1e-5)
    np.testing.assert_allclose(left, alone, atol=1e-5)
