"""Where relations' top-k neurons sit: per relation and layer, and the module mix of each layer."""
from __future__ import annotations

import pandas as pd


def per_relation_layer(dist: pd.DataFrame) -> pd.DataFrame:
    """`dist` (relation, layer, module, neurons) -> relation, layer, neurons, and share of the relation's top-k."""
    out = dist.groupby(["relation", "layer"], as_index=False).neurons.sum()
    out["share"] = out.neurons / out.groupby("relation").neurons.transform("sum")
    return out


def module_mix(dist: pd.DataFrame) -> pd.DataFrame:
    """`dist` -> layer, module, neurons summed over relations, and share of the layer's neurons."""
    out = dist.groupby(["layer", "module"], as_index=False, observed=True).neurons.sum()
    out["share"] = out.neurons / out.groupby("layer").neurons.transform("sum")
    return out
