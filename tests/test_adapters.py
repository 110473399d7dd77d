import pytest
import torch
from transformers import BertConfig, LlamaConfig

from conftest import FAMILIES
from core.adapters import DEFINITIONS, UnsupportedArchitectureError, neuron_space_for, supported_model_types
from core.hooks import neuron_hooks
from core.loading import load_causal_lm
from core.neurons import NeuronId


def llama2_config(size: str) -> LlamaConfig:
    dims = {"7b": (4096, 11008, 32, 32), "13b": (5120, 13824, 40, 40)}[size]
    d, ffn, layers, heads = dims
    return LlamaConfig(hidden_size=d, intermediate_size=ffn, num_hidden_layers=layers, num_attention_heads=heads)


def test_llama2_counts_match_the_paper():
    assert neuron_space_for(llama2_config("7b")).total == 835_584
    assert neuron_space_for(llama2_config("13b")).total == 1_310_720
    space = neuron_space_for(llama2_config("7b"))
    assert space.counts() == {"gate_proj": 32 * 11008, "up_proj": 32 * 11008, "down_proj": 32 * 4096}
    assert neuron_space_for(llama2_config("7b"), "intermediate").total == 32 * 11008


def test_unsupported_architecture_names_the_supported_ones():
    with pytest.raises(UnsupportedArchitectureError) as err:
        neuron_space_for(BertConfig())
    for model_type in supported_model_types():
        assert model_type in str(err.value)


def test_unknown_definition_is_refused():
    with pytest.raises(ValueError, match="paper"):
        neuron_space_for(llama2_config("7b"), "everything")


@pytest.mark.parametrize("definition", DEFINITIONS)
def test_flat_ids_round_trip(definition):
    space = neuron_space_for(llama2_config("7b"), definition)
    seen = set()
    for flat in [0, 1, 11007, 11008, 22015, 22016, 26111, 26112, space.total - 1, space.total // 3]:
        neuron = space.neuron(flat)
        assert space.flat_id(neuron) == flat
        seen.add(neuron)
    layer, module_pos, index = space.decompose([space.total - 1])
    assert (layer[0], space.modules[module_pos[0]].name, index[0]) == (
        space.num_layers - 1, space.modules[-1].name, space.modules[-1].size - 1)
    with pytest.raises(ValueError):
        space.neuron(space.total)
    with pytest.raises(ValueError):
        space.flat_id(NeuronId(0, "gate_proj", 10**6))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("definition", DEFINITIONS)
def test_capture_hooks_see_every_module_with_the_right_shape(tiny_models, family, definition):
    lm = load_causal_lm(tiny_models[family])
    space = neuron_space_for(lm.config, definition)
    expected = {(layer, m.name): m.size for layer in range(space.num_layers) for m in space.modules}
    seen = {}
    hooks = neuron_hooks(lm.model, space)

    def sink(layer, module, acts):
        seen[(layer, module)] = tuple(acts.shape)

    ids = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 10, 11, 12]])
    with hooks.capture(sink):
        lm.model(input_ids=ids)
    assert seen == {key: (2, 5, size) for key, size in expected.items()}
    assert space.total == sum(shape[2] for shape in seen.values())  # the sizes the model's tensors have


@pytest.mark.parametrize("family", FAMILIES)
def test_paper_definition_modules_per_family(tiny_models, family):
    lm = load_causal_lm(tiny_models[family])
    space = neuron_space_for(lm.config)
    names = space.module_names
    if family == "gpt2":
        assert names == ("c_fc", "c_proj")
        assert space.per_layer == 4 * 16 + 16
    else:
        assert names == ("gate_proj", "up_proj", "down_proj")
        assert space.per_layer == 40 + 40 + 16
