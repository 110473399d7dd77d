"""Neuron hooks whose behaviour belongs to one request, never to the model.

A model shared by many app sessions gets one permanent, inert hook per neuron
module. What a hook does (zero some neurons, hand activations to a capture) is
read from a `ContextVar`, which each thread and each request sees on its own:
one session's ablation can never reach another's forward pass, and nothing is
left switched on when a request fails, because leaving the `with` block resets
the variable in `finally` (the TransformerLens/baukit discipline, applied to
state instead of handles).

What happens to the chosen neurons is a core.ablation.Ablation: zero (the paper's), mean or scale.
"""
from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from core.ablation import ZERO, Ablation
from core.neurons import NeuronId, NeuronSpace

# (layer, module name, activations [batch, positions, neurons]) -> None
CaptureSink = Callable[[int, str, torch.Tensor], None]


@dataclass(frozen=True)
class _Edit:
    """One module's chosen neurons and what they become: index_fill for zero (exactly what every earlier run
    computed), else new = old * scale + offset on those neurons."""
    idx: torch.Tensor
    scale: float = 0.0
    offset: torch.Tensor | None = None  # per chosen neuron (mean mode)

    def apply(self, acts: torch.Tensor) -> torch.Tensor:
        idx = self.idx.to(acts.device)
        if self.offset is None and self.scale == 0.0:
            return acts.index_fill(-1, idx, 0)
        new = acts.index_select(-1, idx) * self.scale
        if self.offset is not None:
            new = new + self.offset.to(acts.device, acts.dtype)
        return acts.index_copy(-1, idx, new)


@dataclass(frozen=True)
class _RowEdit:
    """Several requests in one forward pass, each row with its own neurons and ablation: `mask` [rows, neurons]
    True where the row changes the neuron; `scale` [rows]; `offset` [rows, neurons] or None (zero where the
    row is not in mean mode)."""
    mask: torch.Tensor
    scale: torch.Tensor | None = None  # None: every row zeroes (masked_fill, as before modes existed)
    offset: torch.Tensor | None = None

    def apply(self, acts: torch.Tensor) -> torch.Tensor:
        if self.mask.shape[0] != acts.shape[0]:
            raise ValueError(f"{self.mask.shape[0]} per-row neuron sets for a batch of {acts.shape[0]} rows")
        # [rows, neurons] -> [rows, 1, ..., neurons]: every position of a row gets the row's set
        shape = (self.mask.shape[0],) + (1,) * (acts.dim() - 2) + (self.mask.shape[1],)
        mask = self.mask.to(acts.device).view(shape)
        if self.scale is None:
            return acts.masked_fill(mask, 0)
        new = acts * self.scale.to(acts.device, acts.dtype).view((-1,) + (1,) * (acts.dim() - 1))
        if self.offset is not None:
            new = new + self.offset.to(acts.device, acts.dtype).view(shape)
        return torch.where(mask, new, acts)


@dataclass(frozen=True)
class _RequestState:
    hub: "NeuronHooks"
    edits: dict[tuple[int, str], tuple[_Edit, ...]] = field(default_factory=dict)
    sink: CaptureSink | None = None
    rows: dict[tuple[int, str], _RowEdit] = field(default_factory=dict)


_active: ContextVar[_RequestState | None] = ContextVar("relation_neuron_request", default=None)


def group_by_module(neurons: Iterable[NeuronId], space: NeuronSpace) -> dict[tuple[int, str], torch.Tensor]:
    grouped: dict[tuple[int, str], list[int]] = {}
    for n in neurons:
        if not space.contains(n):
            raise ValueError(f"neuron {n} does not exist in this model ({space.describe()})")
        grouped.setdefault((n.layer, n.module), []).append(n.index)
    return {key: torch.tensor(sorted(set(idx)), dtype=torch.long) for key, idx in grouped.items()}


def _means_of(ablation: Ablation, space: NeuronSpace, key: tuple[int, str], idx: torch.Tensor) -> torch.Tensor:
    """The stored means of one module's chosen neurons (`idx`: their indices within the module)."""
    lo, _ = space.column_range(*key)
    return torch.as_tensor(np.asarray(ablation.means, dtype=np.float32)[lo + idx.numpy()])


def module_edits(neurons: Iterable[NeuronId], space: NeuronSpace, ablation: Ablation = ZERO
                 ) -> dict[tuple[int, str], _Edit]:
    """Per module touched: the chosen neurons and what `ablation` makes of them."""
    return {key: _Edit(idx, ablation.factor if ablation.mode == "scale" else 0.0,
                       _means_of(ablation, space, key, idx) if ablation.mode == "mean" else None)
            for key, idx in group_by_module(neurons, space).items()}


def row_edits(row_sets: Sequence[Iterable[NeuronId]], space: NeuronSpace, ablations: Sequence[Ablation] | None = None,
              device: torch.device | str = "cpu") -> dict[tuple[int, str], _RowEdit]:
    """Per module touched by any row: which neurons each row changes and how (`ablations[i]` for row i; all
    zero when None), built once per request on `device` (the model's), not copied at every forward pass."""
    ablations = list(ablations) if ablations is not None else [ZERO] * len(row_sets)
    if len(ablations) != len(row_sets):
        raise ValueError(f"{len(ablations)} ablations for {len(row_sets)} rows")
    sizes = {spec.name: spec.size for spec in space.modules}
    all_zero = all(a.mode == "zero" for a in ablations)
    masks: dict[tuple[int, str], torch.Tensor] = {}
    offsets: dict[tuple[int, str], torch.Tensor] = {}
    for row, (neurons, ablation) in enumerate(zip(row_sets, ablations)):
        for key, idx in group_by_module(neurons, space).items():
            if key not in masks:
                masks[key] = torch.zeros((len(row_sets), sizes[key[1]]), dtype=torch.bool)
            masks[key][row, idx] = True
            if ablation.mode == "mean":
                if key not in offsets:
                    offsets[key] = torch.zeros((len(row_sets), sizes[key[1]]), dtype=torch.float32)
                offsets[key][row, idx] = _means_of(ablation, space, key, idx)
    scale = None if all_zero else torch.tensor([a.factor if a.mode == "scale" else 0.0 for a in ablations])
    return {key: _RowEdit(mask.to(device), None if scale is None else scale.to(device),
                          offsets[key].to(device) if key in offsets else None)
            for key, mask in masks.items()}


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
        for edit in state.edits.get((layer, name), ()):
            changed = acts = edit.apply(acts)
        row_edit = state.rows.get((layer, name))
        if row_edit is not None:
            changed = acts = row_edit.apply(acts)
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
        rows: Sequence[Iterable[NeuronId]] | None = None, ablation: Ablation = ZERO,
        row_ablations: Sequence[Ablation] | None = None,
    ) -> Iterator[None]:
        """Within this block (and this context only) apply `ablation` to `ablate` and send activations to
        `capture`; `rows`: one neuron set per batch row (with `row_ablations[i]`, zero when None), changed in that
        row only (every forward pass in the block must then have exactly len(rows) rows). A nested block adds its
        neurons after the outer block's."""
        outer = _active.get()
        mine = outer is not None and outer.hub is self
        edits = {key: list(v) for key, v in outer.edits.items()} if mine else {}
        for key, edit in module_edits(ablate, self.space, ablation).items():
            edits.setdefault(key, []).append(edit)
        sink = capture if capture is not None else (outer.sink if mine else None)
        if rows is not None and mine and outer.rows:
            raise ValueError("per-row neuron sets cannot be nested")
        if rows is not None:
            row_state = row_edits(rows, self.space, row_ablations, next(self.model.parameters()).device)
        else:
            row_state = dict(outer.rows) if mine else {}
        state = _RequestState(self, {key: tuple(v) for key, v in edits.items()}, sink, row_state)
        token = _active.set(state)
        try:
            yield
        finally:
            _active.reset(token)

    def ablate(self, neurons: Iterable[NeuronId], ablation: Ablation = ZERO):
        return self.request(ablate=neurons, ablation=ablation)

    def ablate_rows(self, row_sets: Sequence[Iterable[NeuronId]], ablations: Sequence[Ablation] | None = None):
        """Batch row i gets row_sets[i] changed by ablations[i] (zero when None), and only that (an empty set:
        the plain model)."""
        return self.request(rows=row_sets, row_ablations=ablations)

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


def per_row_request() -> bool:
    """True inside a request with per-row neuron sets (every forward pass must then keep all its rows)."""
    state = _active.get()
    return state is not None and bool(state.rows)


def active_request() -> bool:
    """True inside a request block (used by tests to prove none is left behind)."""
    return _active.get() is not None
