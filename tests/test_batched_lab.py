"""Lab requests of many sessions answered by one forward pass: each row gets only its own ablation, the batch
equals answering each request alone, and the scheduler hands every caller its own result (issue: batched
per-request ablations)."""
import random
import threading
import time

import numpy as np
import pytest
import torch

from core.adapters import neuron_space_for
from core.generation import greedy_decode
from core.hooks import active_request, neuron_hooks, row_edits
from core.lab import LabInputError, LabRequest, read_prompt_ablated, read_prompts
from core.lab_scheduler import LabScheduler
from core.loading import load_causal_lm
from core.paths import DEMO_MODEL_DIR

pytestmark = pytest.mark.skipif(not (DEMO_MODEL_DIR / "model.safetensors").exists(), reason="demo model not built")
PROMPTS = ["The father of Bouzei Hulir is", "Der Vater von Bouzei Hulir ist", "Q: Who is the CEO of Seigaisath? A:",
           "Le père de Kroumin Sheneind est", "Seigaisath", "The mother of"]


@pytest.fixture(scope="module")
def shared():
    lm = load_causal_lm(DEMO_MODEL_DIR)
    space = neuron_space_for(lm.config)
    return lm, space, neuron_hooks(lm.model, space)


def mixed_requests(space, count: int, seed: int = 0) -> list[LabRequest]:
    """Different prompts (so lengths and padding differ), sets of every size including empty ones, and
    different token counts."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        size = 0 if i % 3 == 0 else rng.choice([1, 36, 108, 358, 1500])
        neurons = tuple(space.neuron(j) for j in rng.sample(range(space.total), size))
        requests.append(LabRequest(PROMPTS[i % len(PROMPTS)], neurons, rng.choice([1, 5, 20])))
    return requests


def assert_same_readout(batched, alone):
    assert batched.continuation_ids == alone.continuation_ids
    assert batched.continuation == alone.continuation
    assert batched.top(10) == alone.top(10)
    np.testing.assert_allclose(batched.probs, alone.probs, rtol=1e-4, atol=1e-6)


def test_row_edits_mark_each_rows_own_neurons(shared):
    _, space, _ = shared
    a, b = space.neuron(3), space.neuron(space.total - 1)
    masks = {key: edit.mask for key, edit in row_edits([[a], [], [a, b]], space).items()}
    assert masks[(a.layer, a.module)].shape[0] == 3
    assert masks[(a.layer, a.module)][:, a.index].tolist() == [True, False, True]
    assert masks[(b.layer, b.module)][:, b.index].tolist() == [False, False, True]
    assert int(sum(m.sum() for m in masks.values())) == 3


def test_a_mixed_batch_equals_each_request_alone(shared):
    lm, space, hooks = shared
    requests = mixed_requests(space, 12)
    batched = read_prompts(lm, hooks, requests)
    for request, readout in zip(requests, batched):
        assert_same_readout(readout, read_prompt_ablated(lm, hooks, request.prompt, request.neurons,
                                                          request.new_tokens))
        assert len(readout.continuation_ids) <= request.new_tokens
    # and the ablations did something: a large set changes its row, the plain rows equal the plain model
    plain = {(r.prompt, r.new_tokens): read_prompts(lm, hooks, [LabRequest(r.prompt, (), r.new_tokens)])[0]
             for r in requests}
    assert any(len(r.neurons) >= 358 and not np.allclose(b.probs, plain[r.prompt, r.new_tokens].probs, atol=1e-3)
               for r, b in zip(requests, batched))
    for r, b in zip(requests, batched):
        if not r.neurons:
            assert_same_readout(b, plain[r.prompt, r.new_tokens])
    assert not active_request()


def test_per_row_sets_equal_the_whole_batch_ablation_on_every_row(shared):
    """Per-row masks and the whole-batch index_fill zero the same activations: one set on every row."""
    lm, space, hooks = shared
    neurons = [space.neuron(i) for i in range(0, space.total, 7)]
    with hooks.ablate(neurons):
        whole = greedy_decode(lm.model, lm.tokenizer, PROMPTS, 6, keep_first_probs=True)
    with hooks.ablate_rows([neurons] * len(PROMPTS)):
        rows = greedy_decode(lm.model, lm.tokenizer, PROMPTS, 6, keep_first_probs=True)
    assert rows.ids == whole.ids
    for a, b in zip(rows.first_probs, whole.first_probs):
        assert torch.equal(a, b)


def test_a_batch_of_the_wrong_size_is_refused(shared):
    lm, space, hooks = shared
    with pytest.raises(ValueError, match="per-row neuron sets for a batch of"):
        with hooks.ablate_rows([[space.neuron(0)]] * 2):
            greedy_decode(lm.model, lm.tokenizer, PROMPTS[:3], 2, batch_size=3)
    assert not active_request()


def test_refused_requests_name_their_reason(shared):
    lm, space, hooks = shared
    with pytest.raises(LabInputError, match="empty"):
        read_prompts(lm, hooks, [LabRequest("   ")])


class Injected(RuntimeError):
    pass


def test_sixteen_threads_through_the_scheduler_get_their_own_results_with_failures(shared):
    lm, space, hooks = shared
    requests = mixed_requests(space, 48, seed=1)
    expected = [read_prompt_ablated(lm, hooks, r.prompt, r.neurons, r.new_tokens) for r in requests]
    poisoned = {i for i in range(len(requests)) if i % 5 == 2}  # these fail inside the batch, every time

    def answer(batch):
        if any(r.prompt.startswith("POISON") for r in batch):
            raise Injected("a request failed")
        return read_prompts(lm, hooks, batch)

    scheduler = LabScheduler(answer, max_batch=8, max_wait_s=0.02)
    results: dict[int, object] = {}
    barrier = threading.Barrier(16)

    def user(slot: int):
        barrier.wait()
        for i in range(slot, len(requests), 16):
            r = requests[i]
            if i in poisoned:
                r = LabRequest("POISON " + r.prompt, r.neurons, r.new_tokens)
            try:
                results[i] = scheduler(r, timeout=120)
            except Injected as exc:
                results[i] = exc

    threads = [threading.Thread(target=user, args=(s,)) for s in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    scheduler.close()
    assert sorted(results) == list(range(len(requests)))
    for i, result in results.items():
        if i in poisoned:
            assert isinstance(result, Injected)
        else:
            assert_same_readout(result, expected[i])
    assert max(scheduler.batches) > 1, f"no two requests were batched: {scheduler.batches}"
    assert all(size <= 8 for size in scheduler.batches)
    assert not active_request()


def test_the_scheduler_batches_what_arrives_together_and_bounds_the_batch():
    seen = []

    def answer(batch):
        seen.append(list(batch))
        return [x * 10 for x in batch]

    scheduler = LabScheduler(answer, max_batch=4, max_wait_s=0.05)
    futures = [scheduler.submit(i) for i in range(10)]
    assert [f.result(5) for f in futures] == [i * 10 for i in range(10)]
    scheduler.close()
    assert [len(b) for b in seen] == [4, 4, 2]
    assert sum(seen, []) == list(range(10))


def test_a_wrong_result_count_fails_the_batch_and_each_request_is_answered_alone():
    def answer(batch):
        return [x for x in batch if x != 3] if len(batch) > 1 else ([] if batch[0] == 3 else list(batch))

    scheduler = LabScheduler(answer, max_batch=8, max_wait_s=0.05)
    futures = [scheduler.submit(i) for i in range(5)]
    time.sleep(0.01)
    outcomes = []
    for f in futures:
        try:
            outcomes.append(f.result(5))
        except RuntimeError as exc:
            outcomes.append(str(exc))
    scheduler.close()
    assert outcomes == [0, 1, 2, "0 results for 1 requests", 4]
