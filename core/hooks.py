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
from typing import Callable, Iterable, Iterator, Sequence

import torch

from core.neurons import NeuronId, NeuronSpace

# (layer, module name, activations [batch, positions, neurons]) -> None
CaptureSink = Callable[[int, str, torch.Tensor], None]


@dataclass(frozen=True)
class _RequestState:
    hub: "NeuronHooks"
    zero: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    sink: CaptureSink | None = None
    # per batch row: True where that row's neuron is zeroed ([rows, neurons] per module); several requests
    # answered by one forward pass, each row with its own set
    row_zero: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)


_active: ContextVar[_RequestState | None] = ContextVar("relation_neuron_request", default=None)


def group_by_module(neurons: Iterable[NeuronId], space: NeuronSpace) -> dict[tuple[int, str], torch.Tensor]:
    grouped: dict[tuple[int, str], list[int]] = {}
    for n in neurons:
        if not space.contains(n):
            raise ValueError(f"neuron {n} does not exist in this model ({space.describe()})")
        grouped.setdefault((n.layer, n.module), []).append(n.index)
    return {key: torch.tensor(sorted(set(idx)), dtype=torch.long) for key, idx in grouped.items()}


def row_masks(row_sets: Sequence[Iterable[NeuronId]], space: NeuronSpace,
              device: torch.device | str = "cpu") -> dict[tuple[int, str], torch.Tensor]:
    """Per module touched by any row: a [rows, neurons] bool mask, True where that row zeroes the neuron, built
    once per request on `device` (the model's), not copied at every forward pass."""
    sizes = {spec.name: spec.size for spec in space.modules}
    masks: dict[tuple[int, str], torch.Tensor] = {}
    for row, neurons in enumerate(row_sets):
        for key, idx in group_by_module(neurons, space).items():
            if key not in masks:
                masks[key] = torch.zeros((len(row_sets), sizes[key[1]]), dtype=torch.bool)
            masks[key][row, idx] = True
    return {key: mask.to(device) for key, mask in masks.items()}


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
        mask = state.row_zero.get((layer, name))
        if mask is not None:
            if mask.shape[0] != acts.shape[0]:
                raise ValueError(f"{mask.shape[0]} per-row neuron sets for a batch of {acts.shape[0]} rows")
            # [rows, neurons] -> [rows, 1, ..., neurons]: every position of a row gets the row's set
            shape = (mask.shape[0],) + (1,) * (acts.dim() - 2) + (mask.shape[1],)
            changed = acts.masked_fill(mask.to(acts.device).view(shape), 0)
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
        self, ablate: Iterable[NeuronId] = (), capture: CaptureSink | None = None,
        rows: Sequence[Iterable[NeuronId]] | None = None,
    ) -> Iterator[None]:
        """Within this block (and this context only) zero `ablate` and send activations to `capture`; `rows`:
        one neuron set per batch row, zeroed in that row only (every forward pass in the block must then have
        exactly len(rows) rows)."""
        outer = _active.get()
        mine = outer is not None and outer.hub is self
        zero = dict(outer.zero) if mine else {}
        for key, idx in group_by_module(ablate, self.space).items():
            zero[key] = torch.unique(torch.cat([zero[key], idx])) if key in zero else idx
        sink = capture if capture is not None else (outer.sink if mine else None)
        if rows is not None and mine and outer.row_zero:
            raise ValueError("per-row neuron sets cannot be nested")
        if rows is not None:
            row_zero = row_masks(rows, self.space, next(self.model.parameters()).device)
        else:
            row_zero = dict(outer.row_zero) if mine else {}
        token = _active.set(_RequestState(self, zero, sink, row_zero))
        try:
            yield
        finally:
            _active.reset(token)

    def ablate(self, neurons: Iterable[NeuronId]):
        return self.request(ablate=neurons)

    def ablate_rows(self, row_sets: Sequence[Iterable[NeuronId]]):
        """Batch row i gets row_sets[i] zeroed, and only that (an empty set: the plain model)."""
        return self.request(rows=row_sets)

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
