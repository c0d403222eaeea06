"""A fitted head as a per-tile function, and the map it writes.

A segmentation head gives class probabilities per pixel, a regression head one value per pixel.
A classification (or multi-label) head labels each tile as a whole: its probabilities are
painted over the tile and blended like dense outputs, so the map changes smoothly between
tiles. The map is a class map (the top class; uint8, nodata 255, or uint16 past 255 classes),
per-class probabilities (float32, nodata NaN) or the regressed value (float32, nodata NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from eosfm_cli.inference.dense import OutputSpec, TileFn
from eosfm_cli.inference.tiling import FloatArray

if TYPE_CHECKING:
    import torch

    from eosfm_cli.models.generalist import Generalist

#: Heads whose output is per pixel.
DENSE = ("segmentation", "regression")
#: Heads whose output is per tile.
POOLED = ("classification", "multilabel")
#: Class-map nodata value (uint8 maps).
CLASS_NODATA = 255


def head_output(task: str, classes: Sequence[str], probabilities: bool) -> OutputSpec:
    """The map a head of this task writes.

    Args:
        task: the head's task (one of :data:`DENSE` or :data:`POOLED`).
        classes: its classes (for regression, optional names of the value).
        probabilities: write per-class probabilities instead of a class map.
    """
    k = len(classes)
    if task == "regression":
        return OutputSpec("regression", 1, 1, "float32", float("nan"), list(classes) or ["value"])
    if probabilities:
        return OutputSpec("probabilities", k, k, "float32", float("nan"), list(classes))
    if k > CLASS_NODATA:
        return OutputSpec("classes", k, 1, "uint16", 65535.0, ["class"])
    return OutputSpec("classes", k, 1, "uint8", float(CLASS_NODATA), ["class"])


def tile_outputs(model: Generalist, batch: torch.Tensor, task: str) -> FloatArray:
    """Per-pixel (dense) or per-tile (pooled) outputs of a batch, as probabilities or values."""
    import torch

    logits = model(batch).float()
    if task in ("segmentation", "classification"):
        out = torch.softmax(logits, dim=1)
    elif task == "multilabel":
        out = torch.sigmoid(logits)
    else:
        out = logits
    if out.ndim == 2:
        out = out[:, :, None, None]
    arr: FloatArray = out.cpu().numpy().astype(np.float32, copy=False)
    return arr


def head_tile_fn(model: Generalist, device: torch.device) -> TileFn:
    """The head's per-tile function for :func:`eosfm_cli.inference.dense.run_tiles`.

    Args:
        model: the generalist, in eval mode, on ``device``.
        device: where the model runs; batches are moved there.
    """
    task = model.cfg.task

    def run(batch: torch.Tensor) -> FloatArray:
        return tile_outputs(model, batch.to(device), task)

    return run
