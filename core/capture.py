"""Record every neuron's activation over a prompt and pool it to one value per neuron."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from core.generation import encode, model_device
from core.hooks import NeuronHooks

POOLINGS = ("mean", "max", "last")
DEFAULT_POOLING = "mean"


def pool(acts: torch.Tensor, mask: torch.Tensor, how: str = DEFAULT_POOLING) -> torch.Tensor:
    """[batch, positions, neurons] -> [batch, neurons] over real tokens only (mask 1), float32."""
    acts = acts.float()
    m = mask.to(acts.device, torch.float32).unsqueeze(-1)
    if how == "mean":
        return (acts * m).sum(1) / m.sum(1).clamp(min=1)
    if how == "max":
        return acts.masked_fill(m == 0, float("-inf")).amax(1)
    if how == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = (mask.long() * positions).argmax(1)  # right- or left-padded alike: the last real position
        return acts[torch.arange(acts.shape[0], device=acts.device), last.to(acts.device)]
    raise ValueError(f"unknown pooling {how!r}; choose one of {', '.join(POOLINGS)}")


@torch.no_grad()
def capture_pooled(
    hooks: NeuronHooks,
    tokenizer,
    texts: Sequence[str],
    pooling: str = DEFAULT_POOLING,
    batch_size: int = 32,
    padding_side: str = "right",
    out: np.ndarray | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Pooled activations [len(texts), hooks.space.total], columns in flat-id order.

    `out` may be a preallocated array or np.memmap, so a large model's capture
    never has to fit in RAM at once.
    """
    space = hooks.space
    if out is None:
        out = np.zeros((len(texts), space.total), dtype=np.float32)
    device = model_device(hooks.model)
    for start in range(0, len(texts), batch_size):
        batch = encode(tokenizer, texts[start : start + batch_size], padding_side, device)
        rows = slice(start, start + batch.input_ids.shape[0])

        def sink(layer: int, module: str, acts: torch.Tensor) -> None:
            lo, hi = space.column_range(layer, module)
            out[rows, lo:hi] = pool(acts, batch.attention_mask, pooling).cpu().numpy()

        with hooks.capture(sink):
            hooks.model(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
            )
        if on_batch is not None:
            on_batch(batch.input_ids.shape[0])
    return out
