"""Which neurons a lab request switches off: relations' top-k, plus and minus single neurons."""
from __future__ import annotations

from typing import Sequence

from core.neurons import NeuronId, NeuronSpace


def ablation_set(store, relations: Sequence[str], language: str, k: int, space: NeuronSpace,
                 add: Sequence[NeuronId] = (), remove: Sequence[NeuronId] = ()) -> tuple[int, ...]:
    """Sorted flat ids: the union of each relation's top-k (identified in `language`) and `add`, less `remove`."""
    chosen = {int(i) for relation in relations for i in store.top_neurons(relation, language, int(k)).neuron}
    chosen |= {space.flat_id(n) for n in add}
    chosen -= {space.flat_id(n) for n in remove}
    return tuple(sorted(chosen))
