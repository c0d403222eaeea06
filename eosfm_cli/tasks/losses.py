"""Losses the task modules use beyond torch's own."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dice_loss(
    logits: Tensor, target: Tensor, ignore_index: int | None = None, eps: float = 1.0
) -> Tensor:
    """Multi-class soft Dice loss, averaged over classes, ignoring ``ignore_index`` pixels.

    Args:
        logits: ``(B, K, H, W)`` scores.
        target: ``(B, H, W)`` class indices.
        ignore_index: label value to leave out.
        eps: smoothing term.
    """
    num_classes = logits.shape[1]
    probs = logits.softmax(dim=1)
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    mask = valid.unsqueeze(1).to(probs.dtype)
    probs = probs * mask
    onehot = onehot * mask
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return 1.0 - ((2 * inter + eps) / (denom + eps)).mean()


def masked_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the finite target pixels."""
    valid = torch.isfinite(target)
    return F.mse_loss(pred[valid], target[valid])
