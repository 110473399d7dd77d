"""What switching neurons off means (torch-free, so the lab page can name the modes before a model loads).

"zero" is the paper's. "mean" sets each neuron to its mean over the run's identification pool (stored in the
run): interpretability practice prefers it, because zeros can push a layer off its input distribution. "scale"
multiplies the neurons by a factor: 0 is zero ablation, 1 the plain model, 2 doubles them, a negative factor
flips them; amplifying a relation's neurons is steering.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ABLATION_MODES = ("zero", "mean", "scale")


@dataclass(frozen=True)
class Ablation:
    """What switching neurons off means. `means`: every neuron's value for "mean", by flat id (the run's
    stored means); `factor`: the multiplier for "scale"."""
    mode: str = "zero"
    factor: float = 0.0
    means: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.mode not in ABLATION_MODES:
            raise ValueError(f"unknown ablation mode {self.mode!r}; choose one of {', '.join(ABLATION_MODES)}")
        if self.mode == "mean" and self.means is None:
            raise ValueError("mean ablation needs the run's neuron means")
        if not np.isfinite(self.factor):
            raise ValueError(f"the scale factor must be a finite number, not {self.factor}")

    @property
    def label(self) -> str:
        return f"scale x{self.factor:g}" if self.mode == "scale" else self.mode

    @property
    def key(self) -> str:
        return ablation_key(self.mode, self.factor)

    @property
    def effect(self) -> str:
        """What happens to the neurons, for "with the neurons ...": off, set to their mean, scaled x2."""
        return {"zero": "off", "mean": "set to their mean"}.get(self.mode, f"scaled x{self.factor:g}")


ZERO = Ablation()


def ablation_key(mode: str, factor: float | None = None) -> str:
    """The run's name for an ablation's effects (a partition value): zero, mean, scale2, scale-0.5."""
    return f"scale{factor:g}" if mode == "scale" else mode
