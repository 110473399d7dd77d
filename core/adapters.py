"""Architecture adapters: per `model_type`, where the neuron modules live and what a neuron is.

Definitions (method.md):
- "paper": every output coordinate of the FFN's linear maps (Llama: gate_proj,
  up_proj, down_proj; GPT-2: c_fc, c_proj), pre-activation. The default.
- "intermediate": the FFN's intermediate activation, i.e. the input of the
  down projection (Llama: act_fn(gate_proj(x)) * up_proj(x); GPT-2: act(c_fc(x))).
- "paper+attention": the paper's set plus the attention projections' outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from core.neurons import ModuleSpec, NeuronSpace

DEFINITIONS = ("paper", "intermediate", "paper+attention")
DEFAULT_DEFINITION = "paper"


class UnsupportedArchitectureError(ValueError):
    pass


@dataclass(frozen=True)
class ArchitectureAdapter:
    family: str
    model_types: tuple[str, ...]
    num_layers: Callable[[Any], int]
    build_modules: Callable[[Any, str], tuple[ModuleSpec, ...]]
    # The decoder layers (each with `self_attn` and `mlp`) where core.resume can replay a plain pass; None: not
    # supported, every pass is a full one.
    decoder_layers: str | None = None
    # The FFN's projections of its input (inside each layer's `mlp`): unchanged at the layer a pass resumes at,
    # so core.resume replays their outputs too (the neuron hooks then edit them as in a full pass).
    ffn_input_projections: tuple[str, ...] = ()

    def neuron_space(self, config: Any, definition: str = DEFAULT_DEFINITION) -> NeuronSpace:
        if definition not in DEFINITIONS:
            raise ValueError(f"unknown neuron definition {definition!r}; choose one of {list(DEFINITIONS)}")
        return NeuronSpace(self.num_layers(config), self.build_modules(config, definition), definition)


def _llama_like_modules(config: Any, definition: str) -> tuple[ModuleSpec, ...]:
    d, ffn = config.hidden_size, config.intermediate_size
    mlp = "model.layers.{layer}.mlp"
    if definition == "intermediate":
        return (ModuleSpec("act", f"{mlp}.down_proj", "input", ffn),)
    modules = [
        ModuleSpec("gate_proj", f"{mlp}.gate_proj", "output", ffn),
        ModuleSpec("up_proj", f"{mlp}.up_proj", "output", ffn),
        ModuleSpec("down_proj", f"{mlp}.down_proj", "output", d),
    ]
    if definition == "paper+attention":
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or d // heads
        attn = "model.layers.{layer}.self_attn"
        modules += [
            ModuleSpec("q_proj", f"{attn}.q_proj", "output", heads * head_dim),
            ModuleSpec("k_proj", f"{attn}.k_proj", "output", kv_heads * head_dim),
            ModuleSpec("v_proj", f"{attn}.v_proj", "output", kv_heads * head_dim),
            ModuleSpec("o_proj", f"{attn}.o_proj", "output", d),
        ]
    return tuple(modules)


def _gpt2_modules(config: Any, definition: str) -> tuple[ModuleSpec, ...]:
    d = config.n_embd
    ffn = config.n_inner or 4 * d
    mlp = "transformer.h.{layer}.mlp"
    if definition == "intermediate":
        return (ModuleSpec("act", f"{mlp}.c_proj", "input", ffn),)
    modules = [
        ModuleSpec("c_fc", f"{mlp}.c_fc", "output", ffn),
        ModuleSpec("c_proj", f"{mlp}.c_proj", "output", d),
    ]
    if definition == "paper+attention":
        attn = "transformer.h.{layer}.attn"
        modules += [
            ModuleSpec("c_attn", f"{attn}.c_attn", "output", 3 * d),
            ModuleSpec("attn_c_proj", f"{attn}.c_proj", "output", d),
        ]
    return tuple(modules)


ADAPTERS: tuple[ArchitectureAdapter, ...] = (
    ArchitectureAdapter(
        family="llama",
        model_types=("llama", "mistral", "qwen2"),
        num_layers=lambda c: c.num_hidden_layers,
        build_modules=_llama_like_modules,
        decoder_layers="model.layers",
        ffn_input_projections=("gate_proj", "up_proj"),
    ),
    ArchitectureAdapter(
        family="gpt2",
        model_types=("gpt2",),
        num_layers=lambda c: c.n_layer,
        build_modules=_gpt2_modules,
    ),
)


def supported_model_types() -> list[str]:
    return sorted(t for a in ADAPTERS for t in a.model_types)


def adapter_for(config: Any) -> ArchitectureAdapter:
    model_type = getattr(config, "model_type", None)
    for adapter in ADAPTERS:
        if model_type in adapter.model_types:
            return adapter
    raise UnsupportedArchitectureError(
        f"architecture {model_type!r} is not supported; supported model types: {', '.join(supported_model_types())}"
    )


def neuron_space_for(config: Any, definition: str = DEFAULT_DEFINITION) -> NeuronSpace:
    return adapter_for(config).neuron_space(config, definition)
