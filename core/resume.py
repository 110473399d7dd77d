"""Ablated passes that start where the ablation first changes anything, and a last FFN that runs only where
it is read.

Switching off neurons of layer L's FFN leaves everything before that FFN as the plain model computes it: the
layers below L, L's attention with its keys and values, and the FFN's projections of its input (gate and up).
A plain pass over a batch records those states once (`record_pass`); each ablated pass over the same batch then
replays them, the neuron hooks edit the replayed projections as they edit computed ones, and the pass computes
the rest of L's FFN and the layers above (`resumed`). The replayed tensors are the ones the full pass computes,
so the results are bit-identical, not merely close (tested). Attention neurons (the "paper+attention"
definition) resume at their layer's attention.

The last layer's FFN is position-wise and nothing after it mixes positions, so an evaluation that reads a few
positions per row (the answer steps) runs it on those positions alone; the others keep the residual stream and
are never read.

Llama-family models only (core.adapters names their decoder layers); elsewhere every pass is a full one. The
wrappers are installed once per model and do nothing outside a `with` block: what they do is read from a
ContextVar, so concurrent requests never see each other's states (the discipline of core.hooks).
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch

from core.neurons import NeuronId, NeuronSpace


@dataclass(frozen=True, order=True)
class ResumePoint:
    """Where an ablation first changes a pass: `layer`, at its attention or (after the attention) its FFN."""
    layer: int
    at_attention: bool = False

    def keys_values(self) -> range:
        """The layers whose keys and values the pass replays."""
        return range(self.layer if self.at_attention else self.layer + 1)


def resume_point(neurons: Iterable[NeuronId], space: NeuronSpace) -> ResumePoint | None:
    """The earliest sublayer any of `neurons` lives in; None for no neurons."""
    paths = {spec.name: spec.path for spec in space.modules}
    points = [ResumePoint(n.layer, ".mlp." not in paths[n.module]) for n in neurons]
    return min(points, key=lambda p: (p.layer, not p.at_attention)) if points else None


@dataclass
class PlainStates:
    """One batch's plain pass, as much of it as some resume points need: per layer its output, its attention's
    output, its FFN's input projections (by layer and name), and its keys and values; `read_positions`: where the
    recorded pass ran the last FFN (its projections there are of those positions)."""
    outputs: dict[int, torch.Tensor] = field(default_factory=dict)
    attention: dict[int, torch.Tensor] = field(default_factory=dict)
    projections: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    keys: dict[int, torch.Tensor] = field(default_factory=dict)
    values: dict[int, torch.Tensor] = field(default_factory=dict)
    read_positions: torch.Tensor | None = None

    def covers(self, point: ResumePoint) -> bool:
        return (all(layer in self.keys for layer in point.keys_values())
                and (point.layer == 0 or point.layer - 1 in self.outputs)
                and (point.at_attention or point.layer in self.attention))

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size()
                   for part in (self.outputs, self.attention, self.projections, self.keys, self.values)
                   for t in part.values())


@dataclass(frozen=True)
class StateNeeds:
    """The layers whose output, attention output (and FFN input projections) and keys/values a set of resume points
    replays."""
    outputs: frozenset[int]
    attention: frozenset[int]
    keys_values: frozenset[int]

    @classmethod
    def of(cls, points: Iterable[ResumePoint]) -> "StateNeeds":
        points = list(points)
        return cls(frozenset(p.layer - 1 for p in points if p.layer > 0),
                   frozenset(p.layer for p in points if not p.at_attention),
                   frozenset(layer for p in points for layer in p.keys_values()))

    def bytes_per_token(self, config, element_size: int) -> int:
        from core.adapters import adapter_for

        projections = len(adapter_for(config).ffn_input_projections) * config.intermediate_size
        hidden = config.hidden_size
        heads = config.num_attention_heads
        kv_width = (getattr(config, "num_key_value_heads", None) or heads) * (
            getattr(config, "head_dim", None) or hidden // heads)
        floats = (hidden * len(self.outputs) + (hidden + projections) * len(self.attention)
                  + 2 * kv_width * len(self.keys_values))
        return element_size * floats


def affordable_points(points: Iterable[ResumePoint], config, tokens: int, element_size: int,
                      budget_bytes: int) -> list[ResumePoint]:
    """The earliest of `points` whose plain states for `tokens` padded positions fit in `budget_bytes` together
    (a point deep in a 7B model replays dozens of layers' keys and values; its conditions run in full)."""
    chosen: list[ResumePoint] = []
    for point in sorted(set(points)):
        if StateNeeds.of(chosen + [point]).bytes_per_token(config, element_size) * tokens > budget_bytes:
            break
        chosen.append(point)
    return chosen


@dataclass(frozen=True)
class _PassState:
    model: torch.nn.Module
    replay: PlainStates | None = None
    point: ResumePoint | None = None
    record: PlainStates | None = None
    needs: StateNeeds | None = None
    read_positions: torch.Tensor | None = None  # [rows, positions] the last layer's output is read at


_active: ContextVar[_PassState | None] = ContextVar("relation_neuron_resume", default=None)


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The model's decoder layers when its family supports resuming (core.adapters), else None."""
    from core.adapters import UnsupportedArchitectureError, adapter_for

    try:
        path = adapter_for(model.config).decoder_layers
    except UnsupportedArchitectureError:
        return None
    return model.get_submodule(path) if path else None


def can_prune(model: torch.nn.Module) -> bool:
    """Whether the last FFN can run on the read positions only (`resumed(read_positions=...)`)."""
    return decoder_layers(model) is not None


def can_replay(model: torch.nn.Module) -> bool:
    """Whether a plain pass can be recorded and replayed: a supported family whose caches keep every position
    (a sliding-window cache keeps only the window, so its recorded keys are not what the layer computed)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    known = model.__dict__.get("_relation_neuron_replayable")
    if known is None:
        known = decoder_layers(model) is not None and all(
            type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)
        model.__dict__["_relation_neuron_replayable"] = known
    return known


def _mine(model: torch.nn.Module) -> _PassState | None:
    state = _active.get()
    return state if state is not None and state.model is model else None


def _replay_keys_values(kwargs: dict, layer: int, states: PlainStates) -> None:
    cache = kwargs.get("past_key_values")
    if cache is not None:
        cache.update(states.keys[layer], states.values[layer], layer)


def _wrap_layer(model, layer_module, layer: int) -> None:
    full = layer_module.forward

    def forward(*args, **kwargs):
        state = _mine(model)
        if state is not None and state.replay is not None and layer < state.point.layer:
            _replay_keys_values(kwargs, layer, state.replay)
            hidden = args[0] if args else kwargs["hidden_states"]
            return state.replay.outputs.get(layer, hidden)  # below layer-1 the output is never read
        out = full(*args, **kwargs)
        if state is not None and state.record is not None and layer in state.needs.outputs:
            state.record.outputs[layer] = out
        return out

    layer_module.forward = forward


def _wrap_attention(model, attention, layer: int) -> None:
    full = attention.forward

    def forward(*args, **kwargs):
        state = _mine(model)
        if (state is not None and state.replay is not None and state.point.layer == layer
                and not state.point.at_attention):
            _replay_keys_values(kwargs, layer, state.replay)
            return state.replay.attention[layer], None
        out = full(*args, **kwargs)
        if state is not None and state.record is not None and layer in state.needs.attention:
            state.record.attention[layer] = out[0]
        return out

    attention.forward = forward


def _wrap_projection(model, projection, layer: int, name: str) -> None:
    full = projection.forward

    def forward(*args, **kwargs):
        state = _mine(model)
        if (state is not None and state.replay is not None and state.point.layer == layer
                and not state.point.at_attention):
            return state.replay.projections[(layer, name)]
        out = full(*args, **kwargs)
        if state is not None and state.record is not None and layer in state.needs.attention:
            state.record.projections[(layer, name)] = out
        return out

    projection.forward = forward


def _wrap_last_ffn(model, mlp) -> None:
    full = mlp.forward

    def forward(hidden, *args, **kwargs):
        state = _mine(model)
        if state is None or state.read_positions is None:
            return full(hidden, *args, **kwargs)
        rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
        positions = state.read_positions.to(hidden.device)
        out = torch.zeros_like(hidden)
        out[rows, positions] = full(hidden[rows, positions], *args, **kwargs)
        return out

    mlp.forward = forward


def _install(model: torch.nn.Module) -> torch.nn.ModuleList:
    layers = decoder_layers(model)
    if layers is None:
        raise ValueError(f"resuming a pass is not supported for {model.config.model_type!r} (core.adapters)")
    if not model.__dict__.get("_relation_neuron_resume"):
        from core.adapters import adapter_for

        for i, layer_module in enumerate(layers):
            _wrap_layer(model, layer_module, i)
            _wrap_attention(model, layer_module.self_attn, i)
            for name in adapter_for(model.config).ffn_input_projections:
                _wrap_projection(model, layer_module.mlp.get_submodule(name), i, name)
        _wrap_last_ffn(model, layers[-1].mlp)
        model.__dict__["_relation_neuron_resume"] = True
    return layers


@contextlib.contextmanager
def _entered(state: _PassState) -> Iterator[None]:
    token = _active.set(state)
    try:
        yield
    finally:
        _active.reset(token)


def record_pass(model: torch.nn.Module, needs: StateNeeds, read_positions: torch.Tensor | None,
                run_pass: Callable[[], Any]) -> tuple[Any, PlainStates]:
    """(the output of `run_pass`, a plain pass that returns the model's output with its cache; the states of that
    pass `needs` asks for: outputs and projections as the pass computes them, keys and values from its cache)."""
    if not can_replay(model):
        raise ValueError(f"a pass of {model.config.model_type!r} with sliding-window caches cannot be replayed")
    _install(model)
    states = PlainStates(read_positions=read_positions)
    with _entered(_PassState(model, record=states, needs=needs, read_positions=read_positions)):
        out = run_pass()
    for layer in needs.keys_values:
        cache_layer = out.past_key_values.layers[layer]
        states.keys[layer], states.values[layer] = cache_layer.keys, cache_layer.values
    return out, states


def _same_positions(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return (a is None) == (b is None) and (a is None or torch.equal(a.cpu(), b.cpu()))


@contextlib.contextmanager
def resumed(model: torch.nn.Module, states: PlainStates | None = None, point: ResumePoint | None = None,
            read_positions: torch.Tensor | None = None) -> Iterator[None]:
    """Within this block a pass over the batch `states` were recorded on replays them up to `point` (both None:
    a full pass), and runs the last layer's FFN on `read_positions` only (None: everywhere)."""
    if states is None and read_positions is None:
        yield
        return
    if states is not None and (point is None or not states.covers(point) or not can_replay(model)
                               or not _same_positions(states.read_positions, read_positions)):
        raise ValueError(f"the recorded states cannot resume this pass at {point}")
    _install(model)
    with _entered(_PassState(model, replay=states, point=point, read_positions=read_positions)):
        yield
