"""Losses an attack maximizes (cross-entropy lives in torch; here the CW margin)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cw_margin_loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Carlini-Wagner margin: max_{j≠y} z_j − z_y (positive when misclassified), as in CW-k PGD."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    margin = others.amax(dim=1) - true
    return margin.mean() if reduction == "mean" else margin.sum() if reduction == "sum" else margin
