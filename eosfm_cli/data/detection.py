"""Batching of object-detection samples, whose images may differ in size and box counts.

A detection dataset exposes :func:`collate_detection` as its ``collate_fn`` attribute;
:func:`eosfm_cli.data.loaders.make_loader` picks it up, so no stage needs to know the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def collate_detection(samples: Sequence[dict[str, Tensor]]) -> dict[str, Any]:
    """Batch detection samples.

    Images are padded at the bottom and right to the largest height and width of the batch
    (zeros; the model crops every image back to ``size`` before use, so the padding is never
    seen). Boxes and labels stay per-image lists because their counts differ.

    Args:
        samples: dicts with ``image`` ``(C, H, W)``, ``boxes`` ``(N, 4)`` and ``labels`` ``(N,)``.

    Returns:
        ``{"image": (B, C, H, W), "size": int64 (B, 2) true heights and widths,
        "boxes": [Tensor], "labels": [Tensor]}``.
    """
    images = [s["image"] for s in samples]
    height = max(int(im.shape[-2]) for im in images)
    width = max(int(im.shape[-1]) for im in images)
    batch = images[0].new_zeros((len(images), images[0].shape[0], height, width))
    for i, im in enumerate(images):
        batch[i, :, : im.shape[-2], : im.shape[-1]] = im
    sizes = torch.tensor([[im.shape[-2], im.shape[-1]] for im in images], dtype=torch.int64)
    return {
        "image": batch,
        "size": sizes,
        "boxes": [s["boxes"] for s in samples],
        "labels": [s["labels"] for s in samples],
    }
