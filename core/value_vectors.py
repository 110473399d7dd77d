"""What a neuron promotes: its FFN value vector read through the unembedding (Geva et al. 2022, LM-Debugger).

An FFN writes `sum_i a_i * v_i` into the residual stream, where `a_i` is intermediate neuron i's activation
and `v_i` is column i of the down projection: its *value vector*. Projecting `v_i` onto the vocabulary shows
which next tokens the neuron pushes up (promoted) and down (suppressed) when it fires positively.

Logit-lens approximation, as LM-Debugger does: the final norm is applied as its elementwise scale only (no
mean subtraction, no division by the RMS / standard deviation, no LayerNorm bias), and the unembedding's bias,
if any, is left out. So the logits rank tokens for one direction in isolation; they are not the model's
output logits for any input.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from core.adapters import adapter_for
from core.neurons import NeuronId, NeuronSpace

# Modules whose output coordinates index the FFN's intermediate dimension, the one the down projection reads:
# "act" is the down projection's input itself ("intermediate"); gate_proj, up_proj (Llama-like) and c_fc
# (GPT-2) feed it coordinate by coordinate, so their neuron i shares the value vector of intermediate neuron i.
_INTERMEDIATE_MODULES = frozenset({"act", "gate_proj", "up_proj", "c_fc"})
# The FFN down projection's output coordinates (adapters.py names): residual-stream dimensions.
_RESIDUAL_MODULES = frozenset({"down_proj", "c_proj"})
_APPLIES_TO = ("The view applies to neurons of the FFN's intermediate dimension (definition 'intermediate', or "
               "gate_proj / up_proj / c_fc).")

# The final norm before the unembedding, per adapter family (module path in the causal LM).
_FINAL_NORM = {"llama": "model.norm", "gpt2": "transformer.ln_f"}

# Vocabulary rows projected at once: bounds the float32 copy of the unembedding (2**26 floats = 256 MiB),
# which for a 128k-token bfloat16 vocabulary would otherwise be a whole float32 copy (2 GiB at hidden 4096).
_CHUNK_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class PromotedToken:
    token_id: int
    text: str  # tokenizer.decode([token_id])
    logit: float  # W_U[token_id] @ (norm_scale * value_vector)


@dataclass(frozen=True)
class PromotedTokens:
    """A neuron's top tokens: `promoted` by descending logit, `suppressed` by ascending (most negative first)."""

    neuron: NeuronId
    promoted: tuple[PromotedToken, ...]
    suppressed: tuple[PromotedToken, ...]


def promotion_applies(space: NeuronSpace, neuron: NeuronId) -> str | None:
    """None when `neuron` has a value vector, else the reason the promoted-tokens view does not apply."""
    if not space.contains(neuron):
        return f"neuron {neuron} does not exist in this model ({space.describe()})"
    if neuron.module in _INTERMEDIATE_MODULES:
        return None
    if neuron.module in _RESIDUAL_MODULES:
        return (f"{neuron} is a coordinate of the FFN's output, i.e. one residual-stream dimension: it sums the "
                "contributions of every value vector in that coordinate and is not a direction written into the "
                f"stream by one value vector, so it promotes no tokens of its own. {_APPLIES_TO}")
    return (f"{neuron} is an output coordinate of an attention projection ({neuron.module}), not an FFN "
            f"intermediate neuron: it has no value vector. {_APPLIES_TO}")


def value_vector(model: Any, neuron: NeuronId) -> torch.Tensor:
    """The down projection's weights for intermediate neuron `neuron.index` of its layer: [hidden], as stored.

    The down projection's path comes from the adapter's "intermediate" definition (the module whose input is
    the intermediate activation). nn.Linear stores [out=hidden, in=intermediate], so it is a column; GPT-2's
    Conv1D stores [in=intermediate, out=hidden], so it is a row.
    """
    from transformers.pytorch_utils import Conv1D

    config = model.config
    spec = adapter_for(config).neuron_space(config, "intermediate").modules[0]
    path = spec.module_path(neuron.layer)
    down = model.get_submodule(path)
    is_conv1d = isinstance(down, Conv1D)
    if not (is_conv1d or isinstance(down, torch.nn.Linear)):
        raise TypeError(f"{path} is a {type(down).__name__}, not a Linear or Conv1D")
    weight = down.weight
    # An offloaded or packed (quantised) weight would fail inside torch or index to garbage: say so instead.
    if weight.device.type == "meta":
        raise ValueError(f"{path}'s weights are offloaded (on the meta device), not in memory")
    if weight.dim() != 2 or weight.shape[0 if is_conv1d else 1] != spec.size:
        raise ValueError(f"{path}'s weight has shape {tuple(weight.shape)}, with no intermediate dimension of "
                         f"{spec.size} (a quantised or packed weight?)")
    return weight[neuron.index, :] if is_conv1d else weight[:, neuron.index]


def final_norm_scale(model: Any) -> torch.Tensor | None:
    """The final norm's elementwise scale ([hidden]), or None for a norm without one (scale 1)."""
    family = adapter_for(model.config).family
    if family not in _FINAL_NORM:
        raise ValueError(f"no final norm known for the {family!r} family; known: {', '.join(sorted(_FINAL_NORM))}")
    return getattr(model.get_submodule(_FINAL_NORM[family]), "weight", None)


def value_vector_view(
    model: Any, tokenizer: Any, space: NeuronSpace, neuron: NeuronId, top: int = 10
) -> PromotedTokens:
    """The `top` tokens that `neuron`'s value vector promotes and suppresses most (see the module docstring).

    ValueError, with promotion_applies' reason, for a neuron that has no value vector.
    """
    reason = promotion_applies(space, neuron)
    if reason is not None:
        raise ValueError(reason)
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    unembedding = model.get_output_embeddings().weight  # [vocab, hidden]
    device = unembedding.device  # with an accelerate device map the layers may sit on other devices
    with torch.no_grad():
        direction = value_vector(model, neuron).to(device, torch.float32)
        scale = final_norm_scale(model)
        if scale is not None:
            direction = direction * scale.to(device, torch.float32)
        if direction.shape[0] != unembedding.shape[1]:
            raise ValueError(f"value vector has {direction.shape[0]} dimensions, the unembedding "
                             f"{unembedding.shape[1]}")
        # Rows past the tokenizer's vocabulary are padding no text maps to (often untrained): leave them out.
        vocab = min(unembedding.shape[0], len(tokenizer)) if hasattr(tokenizer, "__len__") else unembedding.shape[0]
        rows = max(1, _CHUNK_ELEMENTS // unembedding.shape[1])
        logits = torch.cat([chunk.float() @ direction for chunk in unembedding[:vocab].split(rows)])
        k = min(top, vocab)
        promoted = torch.topk(logits, k)
        suppressed = torch.topk(logits, k, largest=False)

    def tokens(result) -> tuple[PromotedToken, ...]:
        return tuple(PromotedToken(int(i), tokenizer.decode([int(i)]), float(v))
                     for v, i in zip(result.values.tolist(), result.indices.tolist()))

    return PromotedTokens(neuron, tokens(promoted), tokens(suppressed))
