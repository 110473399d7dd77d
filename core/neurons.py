"""What a neuron is: (layer, module, index), its flat id, and the space of all of them."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True, order=True)
class NeuronId:
    layer: int
    module: str
    index: int

    def __str__(self) -> str:
        return f"L{self.layer}.{self.module}[{self.index}]"


@dataclass(frozen=True)
class ModuleSpec:
    """One neuron-carrying site: a module's output (or its input) in one layer."""

    name: str  # short name shown to users, e.g. "gate_proj", "act"
    path: str  # attribute path with "{layer}", e.g. "model.layers.{layer}.mlp.gate_proj"
    site: str  # "output": hook the module's output; "input": hook its first input
    size: int  # neurons per layer

    def module_path(self, layer: int) -> str:
        return self.path.format(layer=layer)


@dataclass(frozen=True)
class NeuronSpace:
    """All neurons of one model under one neuron definition, with stable flat ids.

    Flat ids run layer by layer, and inside a layer module by module in the
    order of `modules`, then by index: the same order a capture writes columns.
    """

    num_layers: int
    modules: tuple[ModuleSpec, ...]
    definition: str

    @property
    def module_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modules)

    @property
    def per_layer(self) -> int:
        return sum(m.size for m in self.modules)

    @property
    def total(self) -> int:
        return self.num_layers * self.per_layer

    def counts(self) -> dict[str, int]:
        """Neuron count per module name over all layers."""
        return {m.name: m.size * self.num_layers for m in self.modules}

    @cached_property
    def _module_offsets(self) -> dict[str, int]:
        offsets, acc = {}, 0
        for m in self.modules:
            offsets[m.name] = acc
            acc += m.size
        return offsets

    def spec(self, module: str) -> ModuleSpec:
        for m in self.modules:
            if m.name == module:
                return m
        raise KeyError(f"unknown module {module!r}; this neuron definition has {list(self.module_names)}")

    def contains(self, neuron: NeuronId) -> bool:
        if not 0 <= neuron.layer < self.num_layers or neuron.module not in self._module_offsets:
            return False
        return 0 <= neuron.index < self.spec(neuron.module).size

    def flat_id(self, neuron: NeuronId) -> int:
        if not self.contains(neuron):
            raise ValueError(f"neuron {neuron} does not exist in this model ({self.describe()})")
        return neuron.layer * self.per_layer + self._module_offsets[neuron.module] + neuron.index

    def neuron(self, flat_id: int) -> NeuronId:
        if not 0 <= flat_id < self.total:
            raise ValueError(f"flat id {flat_id} is outside 0..{self.total - 1}")
        layer, rest = divmod(int(flat_id), self.per_layer)
        for m in self.modules:
            if rest < m.size:
                return NeuronId(layer, m.name, rest)
            rest -= m.size
        raise AssertionError("unreachable")

    def decompose(self, flat_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised flat id -> (layer, module position, index) arrays."""
        flat_ids = np.asarray(flat_ids, dtype=np.int64)
        layer, rest = np.divmod(flat_ids, self.per_layer)
        starts = np.array([self._module_offsets[m.name] for m in self.modules])
        module_pos = np.searchsorted(starts, rest, side="right") - 1
        return layer, module_pos, rest - starts[module_pos]

    def column_range(self, layer: int, module: str) -> tuple[int, int]:
        start = layer * self.per_layer + self._module_offsets[module]
        return start, start + self.spec(module).size

    def describe(self) -> str:
        mods = ", ".join(f"{m.name} x{m.size}" for m in self.modules)
        return f"{self.num_layers} layers x ({mods}) = {self.total:,} neurons, definition '{self.definition}'"
