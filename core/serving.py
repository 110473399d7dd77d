"""The models one app server holds: loaded once, shared by every session, at most one large model at a time,
each with one lab scheduler per neuron definition (core.lab_scheduler)."""
from __future__ import annotations

import gc
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Hashable

from core.adapters import neuron_space_for
from core.hooks import neuron_hooks
from core.lab import read_prompts
from core.lab_scheduler import LabScheduler
from core.loading import LoadedModel, load_causal_lm, resolve_model_dir, weight_files
from core.neurons import NeuronId, NeuronSpace
from core.placement import Placement
from core.value_vectors import PromotedTokens, value_vector_view

LARGE_MODEL_BYTES = 1 << 30  # weights on disk: a model this large is the only large one the server keeps
SMALL_MODEL_PARAMETERS = 100_000_000
PROMOTED_KEPT = 256  # neurons whose promoted tokens a served model keeps (each a few hundred bytes)


@dataclass
class ServedModel:
    lm: LoadedModel
    placement: Placement
    _schedulers: dict[str, LabScheduler] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _promoted: dict[tuple, PromotedTokens] = field(default_factory=dict)

    def scheduler(self, definition: str) -> LabScheduler:
        """The lab scheduler for this model under one neuron definition: concurrent requests share a batch."""
        with self._lock:
            if definition not in self._schedulers:
                hooks = neuron_hooks(self.lm.model, neuron_space_for(self.lm.config, definition))
                self._schedulers[definition] = LabScheduler(lambda batch: read_prompts(self.lm, hooks, batch),
                                                            name=f"lab-{definition}")
            return self._schedulers[definition]

    def promoted(self, space: NeuronSpace, neuron: NeuronId, top: int = 10) -> PromotedTokens:
        """core.value_vectors's view of `neuron`, computed from the weights once and kept (the last
        PROMOTED_KEPT neurons asked for)."""
        key = (space.definition, neuron, top)
        with self._lock:
            if key in self._promoted:
                self._promoted[key] = self._promoted.pop(key)  # most recent last
                return self._promoted[key]
        view = value_vector_view(self.lm.model, self.lm.tokenizer, space, neuron, top)
        with self._lock:
            self._promoted[key] = view
            while len(self._promoted) > PROMOTED_KEPT:
                self._promoted.pop(next(iter(self._promoted)))
        return view

    def close(self) -> None:
        with self._lock:
            for scheduler in self._schedulers.values():
                scheduler.close()
            self._schedulers.clear()

    @cached_property
    def memory_bytes(self) -> int:
        model = self.lm.model
        return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))

    @cached_property
    def where(self) -> str:
        """The devices holding the weights: one, or accelerate's map summarised."""
        devices = sorted({str(p.device) for p in self.lm.model.parameters()})
        return ", ".join(devices)


def weights_bytes(source: str | Path) -> int:
    return sum(p.stat().st_size for p in weight_files(resolve_model_dir(source)))


class ModelCache:
    """Models by key. Loading a large model (weights of `large_bytes` or more) first drops every other large one,
    so a server holds one 7B model, not one per run that names it."""

    def __init__(self, large_bytes: int = LARGE_MODEL_BYTES):
        self.large_bytes = large_bytes
        self._models: dict[Hashable, tuple[ServedModel, bool]] = {}
        self._lock = threading.Lock()

    def loaded(self, key: Hashable) -> ServedModel | None:
        entry = self._models.get(key)
        return entry[0] if entry is not None else None

    def keys(self) -> list[Hashable]:
        return list(self._models)

    def get(self, key: Hashable, size_bytes: int, load: Callable[[], ServedModel]) -> ServedModel:
        with self._lock:
            if key in self._models:
                return self._models[key][0]
            large = size_bytes >= self.large_bytes
            if large:
                for other in [k for k, (_, is_large) in self._models.items() if is_large]:
                    self._drop(other)
            served = load()
            self._models[key] = (served, large)
            return served

    def _drop(self, key: Hashable) -> None:
        served, _ = self._models.pop(key)
        served.close()
        del served
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 (freeing is best effort; the next load reports a real shortage)
            pass


def load_served(source: str | Path, placement: Placement) -> ServedModel:
    """Load for serving: the placement's device and dtype, a clear ModelLoadError when it does not fit."""
    import torch

    lm = load_causal_lm(source, dtype=placement.dtype, device=placement.device)
    if placement.device == "cpu" and sum(p.numel() for p in lm.model.parameters()) < SMALL_MODEL_PARAMETERS:
        # Sessions run on threads of their own and the lab's batches on one more; for a small model on CPU one
        # intra-op thread per pass is fastest (the demo model: 25 ms for 20 tokens, against 50-700 ms with 2
        # threads on a busy 2-core machine, where the threads wait for each other).
        torch.set_num_threads(1)
    return ServedModel(lm, placement)
