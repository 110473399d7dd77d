"""One shared model, many concurrent requests: no ablation leaks between threads, nothing outlives a request."""
import random
import threading

import pytest
import torch

from core.adapters import neuron_space_for
from core.paths import DEMO_MODEL_DIR
from core.generation import greedy_generate
from core.hooks import active_request, neuron_hooks
from core.lab import read_prompt_ablated
from core.loading import load_causal_lm
from core.neurons import NeuronId

pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
PROMPTS = ["The father of Bouzei Hulir is", "Der Vater von Bouzei Hulir ist", "Q: Who is the CEO of Seigaisath? A:",
           "Le père de Kroumin Sheneind est"]


@pytest.fixture(scope="module")
def shared():
    lm = load_causal_lm(DEMO_MODEL_DIR)
    space = neuron_space_for(lm.config)
    return lm, space, neuron_hooks(lm.model, space)


def ablation(seed: int, space) -> list[NeuronId]:
    if seed % 4 == 0:
        return []
    rng = random.Random(seed)
    return [space.neuron(i) for i in rng.sample(range(space.total), 40 * (seed % 7 + 1))]


def request(lm, hooks, space, seed: int):
    neurons = ablation(seed, space)
    with hooks.ablate(neurons):
        ids = greedy_generate(lm.model, lm.tokenizer, [PROMPTS[seed % len(PROMPTS)]], 6)[0]
        probe = lm.model(input_ids=torch.tensor([[1, 5, 9, 13]])).logits[0, -1]
    return ids, probe


def test_sixteen_threads_equal_one_by_one(shared):
    lm, space, hooks = shared
    expected = {s: request(lm, hooks, space, s) for s in range(16)}
    results, errors, barrier = {}, [], threading.Barrier(16)

    def worker(seed):
        try:
            barrier.wait()
            for _ in range(3):
                results.setdefault(seed, []).append(request(lm, hooks, space, seed))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    plain = expected[0][1]  # seeds 0, 4, 8, 12 switch nothing off
    assert all(not torch.allclose(expected[s][1], plain, atol=1e-4) for s in range(16) if s % 4), \
        "every ablated request must differ from a plain one by more than the tolerance below"
    for seed, outs in results.items():
        for ids, probe in outs:
            assert ids == expected[seed][0]
            # ids exactly; logits to float rounding (concurrent passes may sum in another order, see test_hooks)
            torch.testing.assert_close(probe, expected[seed][1], rtol=1e-5, atol=1e-6)


class Stop(BaseException):
    """Like KeyboardInterrupt: not an Exception, so nothing on the way may swallow it."""


def test_a_thousand_requests_with_failures_leave_nothing_behind(shared):
    """800 of 1,000 requests fail inside a forward pass, while their ablation or capture is active: an exception
    and a BaseException raised by a layer, an out-of-range neuron, a capture that fails in its hook."""
    lm, space, hooks = shared
    fresh = load_causal_lm(DEMO_MODEL_DIR)
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    reference = fresh.model(input_ids=ids).logits
    installed = hooks.installed
    middle = lm.model.model.layers[space.num_layers // 2].mlp
    reached_forward = []

    def forward_raising(error):
        def hook(module, inputs, output):
            reached_forward.append(True)
            raise error
        return middle.register_forward_hook(hook)

    failures = 0
    for i in range(1000):
        kind = i % 5
        try:
            if kind in (0, 1):
                raiser = forward_raising(RuntimeError("fails mid-forward") if kind == 0 else Stop())
                try:
                    with hooks.ablate(ablation(i + 1, space)):
                        lm.model(input_ids=ids)
                finally:
                    raiser.remove()
            elif kind == 2:
                with hooks.ablate([NeuronId(0, "gate_proj", space.spec("gate_proj").size + i)]):
                    lm.model(input_ids=ids)
            elif kind == 3:
                def sink(layer, module, acts):
                    raise ValueError("a capture that fails inside the hook")
                with hooks.capture(sink):
                    lm.model(input_ids=ids)
            else:
                with hooks.ablate(ablation(i, space)):
                    lm.model(input_ids=ids)
        except (RuntimeError, ValueError, IndexError, Stop):
            failures += 1
        assert not active_request()
    assert failures == 800
    assert len(reached_forward) == 400  # the raised ones really were inside a forward pass
    assert hooks.installed == installed  # no hook was added or left behind
    assert torch.equal(lm.model(input_ids=ids).logits, reference)


def test_lab_refuses_too_many_neurons(shared):
    lm, space, hooks = shared
    from core.lab import MAX_ABLATED, LabInputError

    too_many = [space.neuron(i % space.total) for i in range(MAX_ABLATED + 1)]
    with pytest.raises(LabInputError, match="at most"):
        read_prompt_ablated(lm, hooks, "The father of", too_many)
    assert not active_request()
