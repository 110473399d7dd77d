"""Average precision of every neuron as a classifier of "this prompt belongs to relation r".

Equal to sklearn.metrics.average_precision_score, ties included: AP is the mean,
over positives, of the precision at that positive's score, where the precision
at a score counts every sample scoring at least as high (so tied samples enter
together, as sklearn's distinct thresholds do).
"""
from __future__ import annotations

import numpy as np
import torch


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """scores [samples, neurons], labels [samples] (bool) -> AP per neuron [neurons], float64.

    Positives and negatives are sorted separately per neuron; for each positive a
    binary search counts the positives and the negatives scoring at least as high.
    Only the positives' precisions are formed, so the work after the sorts is
    proportional to the positives, not to all samples.
    """
    labels = labels.bool()
    positives, n = int(labels.sum()), scores.shape[0]
    if positives == 0 or positives == n:
        raise ValueError("average precision needs both positive and negative samples")
    cols = scores.T  # [neurons, samples]: sort and searchsorted work along the last dim
    pos = cols[:, labels].contiguous().sort(dim=1).values
    neg = cols[:, ~labels].contiguous().sort(dim=1).values
    pos_at_least = pos.shape[1] - torch.searchsorted(pos, pos, side="left")
    neg_at_least = neg.shape[1] - torch.searchsorted(neg, pos, side="left")
    return (pos_at_least.to(torch.float64) / (pos_at_least + neg_at_least).to(torch.float64)).mean(1)


def top_k(ap: np.ndarray, k: int) -> np.ndarray:
    """Flat ids of the k highest-AP neurons, ties broken by the lower flat id (stable)."""
    k = max(0, min(int(k), ap.shape[0]))
    return np.argsort(-ap, kind="stable")[:k]
