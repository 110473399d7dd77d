"""core.resume: an ablated pass resumed from a plain pass's states, and the last FFN run only where it is read,
give the full pass's answers and log-probabilities bit for bit; nothing outlives its block."""
import threading

import pytest

import core.prompt_outcome as prompt_outcome
from core.adapters import neuron_space_for
from core.facts import Prompt
from core.hooks import neuron_hooks
from core.loading import load_causal_lm
from core.prompt_outcome import eval_batch, eval_batches, evaluate_batch, plain_states, tokenize_for_eval
from core.resume import (ResumePoint, StateNeeds, _active, affordable_points, can_prune, can_replay, resume_point,
                         resumed)

PAIRS = [("The father of", "Talor Venmik"), ("Vexacorp", "Brevonna"), ("Le père de", "x"),
         ("Kaldoria Tower is located in", "Kaldoria"), ("The mother of Talor", "Brod Kasel"),
         ("Vexacorp has its", "headquarters in Brevonna")]


def _prompts():
    return [Prompt("r", "en", "s", "{}", "train", "evaluation", text, gold) for text, gold in PAIRS]


def _outcomes(lm, prompts, tokens, batches, states=None, point=None):
    out = []
    for b, idx in enumerate(batches):
        out += evaluate_batch(lm.model, lm.tokenizer, prompts, tokens, idx, False,
                              None if states is None else states[b], point)
    return out


def _full_outcomes(lm, prompts, tokens, batches, monkeypatch):
    """The reference: every layer computed at every position (no replay, no pruning)."""
    with monkeypatch.context() as m:
        m.setattr(prompt_outcome, "can_prune", lambda model: False)
        return _outcomes(lm, prompts, tokens, batches)


def _neurons_from(space, layer, module, count=3):
    spec = next(s for s in space.modules if s.name == module)
    first = space.column_range(layer, module)[0]
    return [space.neuron(first + i) for i in range(0, spec.size, spec.size // count)][:count]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("definition", ["paper", "paper+attention"])
def test_resumed_and_pruned_passes_equal_the_full_pass_bit_for_bit(tiny_models, family, definition, monkeypatch):
    lm = load_causal_lm(tiny_models[family])
    space = neuron_space_for(lm.config, definition)
    hooks = neuron_hooks(lm.model, space)
    prompts = _prompts()
    tokens = tokenize_for_eval(lm.tokenizer, prompts)
    batches = eval_batches(tokens, 4)  # two batches of different widths
    modules = ["gate_proj", "down_proj"] + (["q_proj", "o_proj"] if definition == "paper+attention" else [])
    sets = [_neurons_from(space, layer, module) + _neurons_from(space, space.num_layers - 1, "up_proj")
            for layer in range(space.num_layers) for module in modules]
    points = [resume_point(neurons, space) for neurons in sets]
    assert {p.layer for p in points} == set(range(space.num_layers))
    assert any(p.at_attention for p in points) == (definition == "paper+attention")
    needs = StateNeeds.of(points)
    states = [plain_states(lm.model, eval_batch(lm.tokenizer, tokens, idx, "cpu"), needs) for idx in batches]
    assert _outcomes(lm, prompts, tokens, batches) == _full_outcomes(lm, prompts, tokens, batches, monkeypatch)
    for neurons, point in zip(sets, points):
        with hooks.ablate(neurons):
            full = _full_outcomes(lm, prompts, tokens, batches, monkeypatch)
            resumed_ = _outcomes(lm, prompts, tokens, batches, states, point)
        assert resumed_ == full, (point, neurons)  # generated text, correctness and both log-probs, exactly
    plain = _full_outcomes(lm, prompts, tokens, batches, monkeypatch)
    assert full != plain  # the ablations change what the model says, so equality above is not vacuous


def test_a_resume_point_is_the_earliest_sublayer(tiny_models):
    lm = load_causal_lm(tiny_models["llama"])
    space = neuron_space_for(lm.config, "paper+attention")
    mlp, attention = _neurons_from(space, 1, "up_proj", 1), _neurons_from(space, 1, "k_proj", 1)
    deeper = _neurons_from(space, 2, "q_proj", 1)
    assert resume_point(mlp + deeper, space) == ResumePoint(1, at_attention=False)
    assert resume_point(mlp + attention, space) == ResumePoint(1, at_attention=True)
    assert resume_point([], space) is None
    needs = StateNeeds.of([ResumePoint(2), ResumePoint(1, at_attention=True)])
    assert (needs.outputs, needs.attention, needs.keys_values) == ({1, 0}, {2}, {0, 1, 2})


def test_points_beyond_the_memory_budget_run_in_full(tiny_models):
    config = load_causal_lm(tiny_models["llama"]).config  # hidden 16, FFN 40, 2 key/value heads of 4
    points = [ResumePoint(2), ResumePoint(0), ResumePoint(1)]
    per_token_first = StateNeeds.of([ResumePoint(0)]).bytes_per_token(config, 4)
    assert per_token_first == 4 * (16 + 2 * 40 + 2 * 8)  # attention output, gate and up, keys and values
    assert affordable_points(points, config, 100, 4, 10**9) == [ResumePoint(0), ResumePoint(1), ResumePoint(2)]
    assert affordable_points(points, config, 100, 4, per_token_first * 100) == [ResumePoint(0)]
    assert affordable_points(points, config, 100, 4, per_token_first * 100 - 1) == []


def test_families_without_replay_still_evaluate(tiny_models):
    """Mistral's sliding-window cache keeps only its window, so it is pruned but never replayed; GPT-2 has
    neither (core.adapters names no decoder layers for it)."""
    mistral, gpt2 = load_causal_lm(tiny_models["mistral"]), load_causal_lm(tiny_models["gpt2"])
    assert can_prune(mistral.model) and not can_replay(mistral.model)
    assert not can_prune(gpt2.model) and not can_replay(gpt2.model)
    tokens = tokenize_for_eval(mistral.tokenizer, _prompts())
    with pytest.raises(ValueError, match="sliding-window"):
        plain_states(mistral.model, eval_batch(mistral.tokenizer, tokens, [0, 1], "cpu"),
                     StateNeeds.of([ResumePoint(0)]))


def test_states_never_outlive_their_block_or_reach_another_thread(tiny_models, monkeypatch):
    lm = load_causal_lm(tiny_models["llama"])
    space = neuron_space_for(lm.config)
    prompts = _prompts()
    tokens = tokenize_for_eval(lm.tokenizer, prompts)
    batches = [list(range(len(prompts)))]
    point = ResumePoint(1)
    states = [plain_states(lm.model, eval_batch(lm.tokenizer, tokens, batches[0], "cpu"), StateNeeds.of([point]))]
    reference = _full_outcomes(lm, prompts, tokens, batches, monkeypatch)
    # States recorded at other read positions are refused; a pass of other prompts inside a replay block would be
    # given this batch's states: it must fail loudly, and leaving the block (by the exception) must switch the
    # replay off.
    with pytest.raises(ValueError, match="cannot resume"):
        with resumed(lm.model, states[0], point, states[0].read_positions + 1):
            pass
    with pytest.raises(RuntimeError):
        with resumed(lm.model, states[0], point, states[0].read_positions):
            evaluate_batch(lm.model, lm.tokenizer, prompts, tokens, [0, 1])
    assert _active.get() is None
    assert _full_outcomes(lm, prompts, tokens, batches, monkeypatch) == reference
    inside, done = threading.Event(), threading.Event()

    def hold_a_replay():
        with resumed(lm.model, states[0], point, states[0].read_positions):
            inside.set()
            done.wait(30)

    other = threading.Thread(target=hold_a_replay)
    other.start()
    try:
        assert inside.wait(30)
        with neuron_hooks(lm.model, space).ablate(_neurons_from(space, 0, "gate_proj")):
            ablated = _full_outcomes(lm, prompts, tokens, batches, monkeypatch)
        assert ablated != reference  # this thread computes its own pass, not the other thread's replay
        assert _full_outcomes(lm, prompts, tokens, batches, monkeypatch) == reference
    finally:
        done.set()
        other.join()
