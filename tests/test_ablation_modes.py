"""Ablation modes on a tiny model: zero, mean (each neuron set to a given mean) and scale (multiplied by a
factor), alone and per batch row, checked on the hooked activations themselves."""
import numpy as np
import pytest
import torch

from core.adapters import neuron_space_for
from core.ablation import ZERO, Ablation
from core.hooks import active_request, neuron_hooks
from core.loading import load_causal_lm
from core.neurons import NeuronId


@pytest.fixture(scope="module")
def llama(tiny_models):
    lm = load_causal_lm(tiny_models["llama"])
    space = neuron_space_for(lm.config)
    return lm, space, neuron_hooks(lm.model, space)


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


CHOSEN = [NeuronId(0, "gate_proj", 3), NeuronId(0, "gate_proj", 17), NeuronId(1, "up_proj", 0),
          NeuronId(0, "down_proj", 5)]
IDS = torch.tensor([[1, 5, 6, 7, 9], [1, 8, 4, 3, 2]])


def hooked(hooks, model, **request) -> dict[tuple[int, str], torch.Tensor]:
    """Every hooked module's activations (after the request's change) for IDS."""
    seen = {}
    with hooks.capture(lambda layer, module, acts: seen.__setitem__((layer, module), acts.clone())):
        with hooks.request(**request):
            model(input_ids=IDS)
    return seen


def means_for(space) -> np.ndarray:
    return np.random.default_rng(0).normal(size=space.total).astype(np.float32)


def test_first_module_values_per_mode(llama):
    """At the first hooked module that the change reaches (layer 0's gate_proj: nothing upstream changed), the
    chosen neurons hold 0, their mean at every position, or factor x their plain value; the others are
    untouched."""
    lm, space, hooks = llama
    key = (0, "gate_proj")
    plain = hooked(hooks, lm.model)[key]
    chosen = [n.index for n in CHOSEN if (n.layer, n.module) == key]
    rest = [i for i in range(plain.shape[-1]) if i not in chosen]
    means = means_for(space)
    expected_means = torch.tensor([means[space.flat_id(NeuronId(0, "gate_proj", i))] for i in chosen])
    for ablation, expected in [
        (ZERO, torch.zeros_like(plain[..., chosen])),
        (Ablation("mean", means=means), expected_means.expand_as(plain[..., chosen])),
        (Ablation("scale", 2.5), plain[..., chosen] * 2.5),
        (Ablation("scale", -1.0), -plain[..., chosen]),
    ]:
        got = hooked(hooks, lm.model, ablate=CHOSEN, ablation=ablation)[key]
        torch.testing.assert_close(got[..., chosen], expected, rtol=1e-6, atol=1e-6)
        assert torch.equal(got[..., rest], plain[..., rest]), ablation.label
    assert not active_request()


def test_scale_one_is_the_plain_model_and_scale_zero_is_zero_ablation(llama):
    lm, space, hooks = llama
    plain = lm.model(input_ids=IDS).logits
    with hooks.ablate(CHOSEN, Ablation("scale", 1.0)):
        torch.testing.assert_close(lm.model(input_ids=IDS).logits, plain, rtol=0, atol=1e-6)
    with hooks.ablate(CHOSEN, Ablation("scale", 0.0)):
        scaled_zero = lm.model(input_ids=IDS).logits
    with hooks.ablate(CHOSEN):
        zero = lm.model(input_ids=IDS).logits
    torch.testing.assert_close(scaled_zero, zero, rtol=0, atol=1e-6)
    assert not torch.allclose(zero, plain)


def test_each_row_gets_its_own_mode(llama):
    """Three rows in one pass: zero, mean and scale x3 on different sets equal each request alone."""
    lm, space, hooks = llama
    means = means_for(space)
    rows = [CHOSEN[:2], CHOSEN[1:], [NeuronId(1, "down_proj", 2)]]
    ablations = [ZERO, Ablation("mean", means=means), Ablation("scale", 3.0)]
    ids = torch.cat([IDS[:1]] * 3)
    with hooks.ablate_rows(rows, ablations):
        together = lm.model(input_ids=ids).logits
    for row, (neurons, ablation) in enumerate(zip(rows, ablations)):
        with hooks.ablate(neurons, ablation):
            alone = lm.model(input_ids=IDS[:1]).logits
        torch.testing.assert_close(together[row : row + 1], alone, rtol=1e-5, atol=1e-5)
    assert len({float(t.abs().sum()) for t in together}) == 3  # the three rows really differ


def test_bad_ablations_are_refused():
    with pytest.raises(ValueError, match="unknown ablation mode"):
        Ablation("shuffle")
    with pytest.raises(ValueError, match="neuron means"):
        Ablation("mean")
    with pytest.raises(ValueError, match="finite"):
        Ablation("scale", float("nan"))
    assert Ablation("scale", -2).label == "scale x-2" and ZERO.label == "zero"
