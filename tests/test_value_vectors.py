"""What a neuron promotes: value vectors planted in tiny models, checked against logits worked out by hand.

Each planted model gets a near-zero unembedding with a few large rows, so the expected winner and its logit
follow from the planted vectors alone (W_U[t] @ (scale * v)), never from the code under test.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import FAMILIES
from core.adapters import neuron_space_for
from core.loading import load_causal_lm
from core.neurons import NeuronId
from core.value_vectors import PromotedToken, promotion_applies, value_vector_view

HIDDEN, VOCAB, LAYER, J = 16, 64, 1, 5


class StubTokenizer:
    """decode() is all the view needs; __len__ is optional (padded-vocabulary test)."""

    def decode(self, ids):
        return f"tok{ids[0]}"


class SizedStubTokenizer(StubTokenizer):
    def __init__(self, size: int):
        self.size = size

    def __len__(self):
        return self.size


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=32,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=HIDDEN, n_layer=2, n_head=2, n_positions=32, vocab_size=VOCAB)
    return GPT2LMHeadModel(config).eval()  # tied: the unembedding is wte


def down_weight(model):
    """Layer LAYER's down projection weight, named here independently of the code under test."""
    if model.config.model_type == "gpt2":
        return model.transformer.h[LAYER].mlp.c_proj.weight  # Conv1D: [intermediate, hidden]
    return model.model.layers[LAYER].mlp.down_proj.weight  # Linear: [hidden, intermediate]


def final_norm(model):
    return model.transformer.ln_f if model.config.model_type == "gpt2" else model.model.norm


def set_value_vector(model, index: int, v: torch.Tensor, layer: int = LAYER) -> None:
    with torch.no_grad():
        if model.config.model_type == "gpt2":
            model.transformer.h[layer].mlp.c_proj.weight[index, :] = v
        else:
            model.model.layers[layer].mlp.down_proj.weight[:, index] = v


def quiet_unembedding(model, seed: int = 1) -> torch.Tensor:
    """Every unembedding row small (|row| about 0.04), final norm scale 1; returns W_U for planting rows."""
    w_u = model.get_output_embeddings().weight
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w_u.copy_(0.01 * torch.randn(w_u.shape, generator=generator))
        final_norm(model).weight.fill_(1.0)
    return w_u


def planted(model_factory, t: int = 37, decoy: int = 11, coefficient: float = 2.5):
    """A model whose layer-LAYER neuron J writes coefficient * u with W_U[t] = u, and whose neighbours (column
    J + 1, and column J of layer 0) promote `decoy` instead: reading the wrong column or layer picks `decoy`."""
    model = model_factory()
    w_u = quiet_unembedding(model)
    generator = torch.Generator().manual_seed(2)
    u, d = torch.randn(HIDDEN, generator=generator), torch.randn(HIDDEN, generator=generator)
    with torch.no_grad():
        w_u[t], w_u[decoy] = u, d
    set_value_vector(model, J, coefficient * u)
    set_value_vector(model, J + 1, 4.0 * d)
    set_value_vector(model, J, 4.0 * d, layer=0)
    expected_logit = coefficient * float(u.double() @ u.double())
    return model, t, expected_logit


FACTORIES = {"llama": tiny_llama, "gpt2": tiny_gpt2}
ACT = NeuronId(LAYER, "act", J)


@pytest.mark.parametrize("family", FACTORIES)
def test_planted_value_vector_is_the_top_promoted_token(family):
    model, t, expected = planted(FACTORIES[family])
    space = neuron_space_for(model.config, "intermediate")
    view = value_vector_view(model, StubTokenizer(), space, ACT, top=5)
    assert view.neuron == ACT
    assert view.promoted[0] == PromotedToken(t, f"tok{t}", pytest.approx(expected, rel=1e-5))
    assert len(view.promoted) == len(view.suppressed) == 5
    assert [p.logit for p in view.promoted] == sorted((p.logit for p in view.promoted), reverse=True)
    assert [s.logit for s in view.suppressed] == sorted(s.logit for s in view.suppressed)
    # The rest of the ranking against an independent float64 numpy projection of the same weights.
    w_u = model.get_output_embeddings().weight.detach().double().numpy()
    v = (down_weight(model)[J] if family == "gpt2" else down_weight(model)[:, J]).detach().double().numpy()
    logits = w_u @ v
    assert [p.token_id for p in view.promoted] == list(np.argsort(-logits)[:5])
    assert [s.token_id for s in view.suppressed] == list(np.argsort(logits)[:5])
    np.testing.assert_allclose([s.logit for s in view.suppressed], np.sort(logits)[:5], rtol=1e-5)


@pytest.mark.parametrize("family", FACTORIES)
def test_negated_value_vector_makes_the_token_most_suppressed(family):
    model, t, expected = planted(FACTORIES[family], coefficient=-2.5)
    view = value_vector_view(model, StubTokenizer(), neuron_space_for(model.config, "intermediate"), ACT, top=3)
    assert view.suppressed[0].token_id == t
    assert view.suppressed[0].logit == pytest.approx(expected, rel=1e-5) and expected < 0
    assert t not in [p.token_id for p in view.promoted]


def test_gpt2_layer_norm_bias_and_mean_are_left_out():
    """Scale only: a large ln_f bias along the decoy's row would win if it were added."""
    model, t, expected = planted(tiny_gpt2)
    with torch.no_grad():
        model.transformer.ln_f.bias.copy_(100.0 * model.get_output_embeddings().weight[11])
    view = value_vector_view(model, StubTokenizer(), neuron_space_for(model.config, "intermediate"), ACT)
    assert view.promoted[0].token_id == t
    assert view.promoted[0].logit == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("family, modules", [("llama", ("gate_proj", "up_proj")), ("gpt2", ("c_fc",))])
def test_paper_ffn_input_neurons_share_the_intermediate_neurons_value_vector(family, modules):
    model, t, expected = planted(FACTORIES[family])
    act = value_vector_view(model, StubTokenizer(), neuron_space_for(model.config, "intermediate"), ACT)
    for definition in ("paper", "paper+attention"):
        space = neuron_space_for(model.config, definition)
        for module in modules:
            neuron = NeuronId(LAYER, module, J)
            assert promotion_applies(space, neuron) is None
            view = value_vector_view(model, StubTokenizer(), space, neuron)
            assert view.neuron == neuron
            assert (view.promoted, view.suppressed) == (act.promoted, act.suppressed)
            assert view.promoted[0].token_id == t


@pytest.mark.parametrize("family", FACTORIES)
def test_non_unit_final_norm_scale_is_applied(family):
    """v = e0 + 0.5 e1 with W_U[a] = 10 e0, W_U[b] = 10 e1: token a wins (10 vs 5) unless the scale of
    coordinate 1 is 4, when b wins (20 vs 10)."""
    model = FACTORIES[family]()
    w_u = quiet_unembedding(model)
    a, b = 20, 40
    e = torch.eye(HIDDEN)
    with torch.no_grad():
        w_u[a], w_u[b] = 10 * e[0], 10 * e[1]
    set_value_vector(model, J, e[0] + 0.5 * e[1])
    space = neuron_space_for(model.config, "intermediate")
    plain = value_vector_view(model, StubTokenizer(), space, ACT, top=2)
    assert [(p.token_id, round(p.logit, 3)) for p in plain.promoted] == [(a, 10.0), (b, 5.0)]
    with torch.no_grad():
        final_norm(model).weight[1] = 4.0
    scaled = value_vector_view(model, StubTokenizer(), space, ACT, top=2)
    assert [(p.token_id, round(p.logit, 3)) for p in scaled.promoted] == [(b, 20.0), (a, 10.0)]


@pytest.mark.parametrize("family, module, word", [
    ("llama", "down_proj", "residual-stream"), ("gpt2", "c_proj", "residual-stream"),
    ("llama", "q_proj", "attention"), ("llama", "o_proj", "attention"), ("gpt2", "attn_c_proj", "attention"),
])
def test_neurons_without_a_value_vector_get_the_reason(family, module, word):
    model = FACTORIES[family]()
    space = neuron_space_for(model.config, "paper+attention")
    neuron = NeuronId(LAYER, module, 3)
    reason = promotion_applies(space, neuron)
    assert reason is not None and word in reason and str(neuron) in reason
    with pytest.raises(ValueError) as raised:
        value_vector_view(model, StubTokenizer(), space, neuron)
    assert str(raised.value) == reason


def test_neuron_outside_the_space_is_refused():
    model = tiny_llama()
    space = neuron_space_for(model.config, "intermediate")
    for neuron in (NeuronId(LAYER, "act", 32), NeuronId(2, "act", 0), NeuronId(LAYER, "gate_proj", 0)):
        assert "does not exist" in promotion_applies(space, neuron)
        with pytest.raises(ValueError, match="does not exist"):
            value_vector_view(model, StubTokenizer(), space, neuron)


def test_padded_unembedding_rows_beyond_the_tokenizer_are_left_out():
    model, t, expected = planted(tiny_llama)
    with torch.no_grad():
        w_u = model.get_output_embeddings().weight
        w_u[62] = 10 * w_u[t]  # a padding row would win, and lose most, if it were ranked
        w_u[63] = -10 * w_u[t]
    space = neuron_space_for(model.config, "intermediate")
    sized = value_vector_view(model, SizedStubTokenizer(60), space, ACT, top=60)
    assert sized.promoted[0].token_id == t and sized.suppressed[-1].token_id == t
    assert sorted(p.token_id for p in sized.promoted) == list(range(60))
    unsized = value_vector_view(model, StubTokenizer(), space, ACT, top=VOCAB + 10)
    assert (unsized.promoted[0].token_id, unsized.suppressed[0].token_id) == (62, 63)
    assert len(unsized.promoted) == VOCAB
    with pytest.raises(ValueError, match="top"):
        value_vector_view(model, StubTokenizer(), space, ACT, top=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_loaded_checkpoints_of_every_family_match_a_numpy_projection(tiny_models, family):
    """Saved and reloaded random models (mistral and qwen2 included), real tokenizer: logits = W_U (s * v)."""
    lm = load_causal_lm(tiny_models[family])
    model = lm.model
    with torch.no_grad():
        final_norm(model).weight.copy_(torch.linspace(0.5, 2.0, final_norm(model).weight.shape[0]))
    space = neuron_space_for(model.config, "paper")
    neuron = NeuronId(LAYER, "c_fc" if family == "gpt2" else "up_proj", 7)
    view = value_vector_view(model, lm.tokenizer, space, neuron, top=4)
    weight = down_weight(model).detach().double().numpy()
    v = weight[7] if family == "gpt2" else weight[:, 7]
    scale = final_norm(model).weight.detach().double().numpy()
    logits = model.get_output_embeddings().weight.detach().double().numpy()[: len(lm.tokenizer)] @ (scale * v)
    top = np.argsort(-logits)[:4]
    assert [p.token_id for p in view.promoted] == list(top)
    np.testing.assert_allclose([p.logit for p in view.promoted], logits[top], rtol=1e-5)
    assert [p.text for p in view.promoted] == [lm.tokenizer.decode([int(i)]) for i in top]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_weights_on_other_devices_than_the_unembedding():
    """As under an accelerate device map: the down projection on the GPU, norm and unembedding on the CPU."""
    model, t, expected = planted(tiny_llama)
    model.model.layers[LAYER].mlp.down_proj.cuda()
    view = value_vector_view(model, StubTokenizer(), neuron_space_for(model.config, "intermediate"), ACT)
    assert view.promoted[0].token_id == t
    assert view.promoted[0].logit == pytest.approx(expected, rel=1e-5)


def test_the_neuron_page_shows_what_core_computes():
    """The neuron page of a gate_proj neuron draws core's promoted and suppressed tokens; a down_proj neuron's
    page says why the view does not apply (and loads no model for it)."""
    from apptest_helpers import assert_clean, chart_frames, run_page, texts
    from core.adapters import neuron_space_for
    from core.loading import load_causal_lm
    from core.neurons import NeuronId
    from core.paths import DEMO_MODEL_DIR

    lm = load_causal_lm(DEMO_MODEL_DIR)
    space = neuron_space_for(lm.config)
    at = run_page("neuron", {"neuron": "2.gate_proj.17"})
    assert_clean(at)
    view = value_vector_view(lm.model, lm.tokenizer, space, NeuronId(2, "gate_proj", 17), top=15)
    drawn = [f for f in chart_frames(at) if "logit" in f.columns]
    assert len(drawn) == 2
    assert drawn[0].token_id.tolist() == [t.token_id for t in view.promoted]
    assert drawn[1].token_id.tolist() == [t.token_id for t in view.suppressed]
    np.testing.assert_allclose(drawn[0].logit, [t.logit for t in view.promoted], rtol=1e-5)
    at = run_page("neuron", {"neuron": "2.down_proj.5"})
    assert_clean(at)
    reason = promotion_applies(space, NeuronId(2, "down_proj", 5))
    assert reason and any(reason in c for c in texts(at.caption))
    assert not [f for f in chart_frames(at) if "logit" in f.columns]
