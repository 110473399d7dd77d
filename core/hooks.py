"""Neuron hooks whose behaviour belongs to one request, never to the model.

A model shared by many app sessions gets one permanent, inert hook per neuron
module. What a hook does (zero some neurons, hand activations to a capture) is
read from a `ContextVar`, which each thread and each request sees on its own:
one session's ablation can never reach another's forward pass, and nothing is
left switched on when a request fails, because leaving the `with` block resets
the variable in `finally` (the TransformerLens/baukit discipline, applied to
state instead of handles).
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import torch

from core.neurons import NeuronId, NeuronSpace

# (layer, module name, activations [batch, positions, neurons]) -> None
CaptureSink = Callable[[int, str, torch.Tensor], None]


@dataclass(frozen=True)
class _RequestState:
    hub: "NeuronHooks"
    zero: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    sink: CaptureSink | None = None


_active: ContextVar[_RequestState | None] = ContextVar("relation_neuron_request", default=None)


def group_by_module(neurons: Iterable[NeuronId], space: NeuronSpace) -> dict[tuple[int, str], torch.Tensor]:
    grouped: dict[tuple[int, str], list[int]] = {}
    for n in neurons:
        if not space.contains(n):
            raise ValueError(f"neuron {n} does not exist in this model ({space.describe()})")
        grouped.setdefault((n.layer, n.module), []).append(n.index)
    return {key: torch.tensor(sorted(set(idx)), dtype=torch.long) for key, idx in grouped.items()}


class NeuronHooks:
    """Permanent hooks on every neuron module of one model under one definition."""

    def __init__(self, model: torch.nn.Module, space: NeuronSpace):
        self.model = model
        self.space = space
        self._handles: list = []
        try:
            for layer in range(space.num_layers):
                for spec in space.modules:
                    module = model.get_submodule(spec.module_path(layer))
                    if spec.site == "output":
                        self._handles.append(module.register_forward_hook(self._output_hook(layer, spec.name)))
                    else:
                        self._handles.append(
                            module.register_forward_pre_hook(self._input_hook(layer, spec.name))
                        )
        except Exception:
            self.remove()
            raise

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @property
    def installed(self) -> int:
        return len(self._handles)

    def _apply(self, layer: int, name: str, acts: torch.Tensor) -> torch.Tensor | None:
        state = _active.get()
        if state is None or state.hub is not self:
            return None
        changed = None
        idx = state.zero.get((layer, name))
        if idx is not None:
            changed = acts.index_fill(-1, idx.to(acts.device), 0)
            acts = changed
        if state.sink is not None:
            state.sink(layer, name, acts.detach())
        return changed

    def _output_hook(self, layer: int, name: str):
        def hook(module, args, output):
            return self._apply(layer, name, output)

        return hook

    def _input_hook(self, layer: int, name: str):
        def hook(module, args):
            changed = self._apply(layer, name, args[0])
            return None if changed is None else (changed, *args[1:])

        return hook

    @contextlib.contextmanager
    def request(
        self, ablate: Iterable[NeuronId] = (), capture: CaptureSink | None = None
    ) -> Iterator[None]:
        """Within this block (and this context only) zero `ablate` and send activations to `capture`."""
        outer = _active.get()
        zero = dict(outer.zero) if outer is not None and outer.hub is self else {}
        for key, idx in group_by_module(ablate, self.space).items():
            zero[key] = torch.unique(torch.cat([zero[key], idx])) if key in zero else idx
        sink = capture if capture is not None else (outer.sink if outer is not None and outer.hub is self else None)
        token = _active.set(_RequestState(self, zero, sink))
        try:
            yield
        finally:
            _active.reset(token)

    def ablate(self, neurons: Iterable[NeuronId]):
        return self.request(ablate=neurons)

    def capture(self, sink: CaptureSink):
        return self.request(capture=sink)


def neuron_hooks(model: torch.nn.Module, space: NeuronSpace) -> NeuronHooks:
    """The model's hooks for this neuron definition, installed on first use."""
    hubs: dict[str, NeuronHooks] = model.__dict__.setdefault("_relation_neuron_hooks", {})
    hub = hubs.get(space.definition)
    if hub is None or hub.space != space:
        if hub is not None:
            hub.remove()
        hub = hubs[space.definition] = NeuronHooks(model, space)
    return hub


def active_request() -> bool:
    """True inside a request block (used by tests to prove none is left behind)."""
    return _active.get() is not None
