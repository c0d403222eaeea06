"""Detections over a raster of any size, tile by tile, each object reported once.

**Which tile reports an object.** Along each axis every pixel belongs to the tile whose centre
is nearest (the boundaries are half-way between neighbouring tile centres). A tile keeps a
detection only when the box's centre lies in the part of the raster it owns, so an object seen
whole by two overlapping tiles is reported once, by the tile that sees it furthest from its
edge. Boxes centred in reflection padding or on nodata pixels are dropped, and boxes are
clipped to the raster. A final class-wise non-maximum suppression (IoU 0.5) removes the
duplicates left by objects larger than the overlap.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.reading import Tile, batches, pad_reflect, tile_rows
from eosfm_cli.inference.tiling import BoolArray, FloatArray, TileGrid, TileStats

if TYPE_CHECKING:
    import torch

    from eosfm_cli.models.generalist import Generalist
    from eosfm_cli.viz.previews import Quicklook

#: IoU above which two boxes of one class are the same object (final suppression).
NMS_IOU = 0.5

IntArray = np.ndarray[tuple[int, ...], np.dtype[np.int64]]


@dataclass
class Boxes:
    """Detections in raster pixel coordinates.

    Attributes:
        boxes: ``(N, 4)`` xyxy, in pixels of the whole raster.
        scores: ``(N,)``.
        labels: ``(N,)`` 0-based class indices.
    """

    boxes: FloatArray
    scores: FloatArray
    labels: IntArray

    @classmethod
    def empty(cls) -> Boxes:
        """No detection."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Boxes]) -> Boxes:
        """All detections of several parts."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]).astype(np.float32),
            np.concatenate([p.scores for p in parts]).astype(np.float32),
            np.concatenate([p.labels for p in parts]).astype(np.int64),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: np.ndarray) -> Boxes:  # type: ignore[type-arg]
        """The detections at ``keep`` (indices or a mask)."""
        return Boxes(self.boxes[keep], self.scores[keep], self.labels[keep])


def ownership(origins: Sequence[int], tile: int, size: int) -> list[tuple[float, float]]:
    """The half-open span of pixel coordinates each tile owns along one axis.

    Boundaries lie half-way between neighbouring tile centres; the first and last spans reach
    the raster's edges.

    Args:
        origins: tile offsets along the axis, increasing.
        tile: tile side.
        size: raster size along the axis.
    """
    centres = [o + tile / 2 for o in origins]
    cuts = [(a + b) / 2 for a, b in itertools.pairwise(centres)]
    lows = [0.0, *cuts]
    highs = [*cuts, float(size)]
    return list(zip(lows, highs, strict=True))


def keep_owned(
    det: Boxes,
    x: int,
    y: int,
    valid: BoolArray,
    span_x: tuple[float, float],
    span_y: tuple[float, float],
    height: int,
    width: int,
) -> Boxes:
    """Move one tile's detections into raster pixels and keep those the tile owns.

    Args:
        det: the tile's detections, in tile pixels.
        x: the tile's column offset.
        y: the tile's row offset.
        valid: ``(h, w)`` pixels of the tile that hold data (its real, unpadded extent).
        span_x: the columns this tile owns (see :func:`ownership`).
        span_y: the rows this tile owns.
        height: raster rows.
        width: raster columns.
    """
    if not len(det):
        return det
    h, w = valid.shape
    cx = (det.boxes[:, 0] + det.boxes[:, 2]) / 2
    cy = (det.boxes[:, 1] + det.boxes[:, 3]) / 2
    inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    ci = np.clip(cx.astype(np.int64), 0, w - 1)
    ri = np.clip(cy.astype(np.int64), 0, h - 1)
    inside &= valid[ri, ci]
    gx, gy = cx + x, cy + y
    inside &= (gx >= span_x[0]) & (gx < span_x[1]) & (gy >= span_y[0]) & (gy < span_y[1])
    out = det.select(inside)
    boxes = out.boxes + np.array([x, y, x, y], np.float32)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return Boxes(boxes, out.scores, out.labels)


def suppress(det: Boxes, iou: float = NMS_IOU) -> Boxes:
    """Class-wise non-maximum suppression, best scores first."""
    if len(det) < 2:
        return det
    import torch
    from torchvision.ops import batched_nms

    keep = batched_nms(
        torch.from_numpy(det.boxes), torch.from_numpy(det.scores), torch.from_numpy(det.labels), iou
    ).numpy()
    return det.select(keep)


def detect_tiles(
    model: Generalist,
    source: RasterSource,
    look: Quicklook | None,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    device: torch.device,
    on_tiles: Callable[[int], None] | None = None,
) -> tuple[Boxes, TileStats]:
    """Run the detector over every tile of the raster.

    Args:
        model: the generalist with a detection head, in eval mode, on ``device``.
        source: the input raster.
        look: the preview's quicklook, filled with the input while tiles are read.
        tile: tile side.
        overlap: overlap between tiles.
        batch_size: tiles per forward pass (a batch may span tile rows).
        device: where the model runs.
        on_tiles: called with the number of tiles just finished.

    Returns:
        The merged detections in raster pixels, and tile counts.
    """
    import torch

    grid = TileGrid(source.height, source.width, tile, overlap)
    own_y = ownership(grid.rows, tile, source.height)
    own_x = ownership(grid.cols, tile, source.width)
    stats = TileStats()
    parts: list[Boxes] = []
    t0 = time.perf_counter()

    def run_batch(items: list[Tile]) -> None:
        images = [torch.from_numpy(pad_reflect(t.data, tile)).to(device) for t in items]
        with torch.inference_mode():
            found = model.detect(images)
        for t, d in zip(items, found, strict=True):
            det = Boxes(
                d["boxes"].float().cpu().numpy(),
                d["scores"].float().cpu().numpy(),
                d["labels"].cpu().numpy().astype(np.int64),
            )
            span_x, span_y = own_x[t.col], own_y[t.row]
            parts.append(
                keep_owned(det, t.x, t.y, t.valid, span_x, span_y, source.height, source.width)
            )
        stats.tiles += len(items)
        if on_tiles is not None:
            on_tiles(len(items))

    on_input = look.add_input if look is not None else None
    rows = tile_rows(source, grid, stats, on_input=on_input, on_tiles=on_tiles)
    # Unlike dense outputs, boxes need no row to be finished: batches may span tile rows.
    for batch in batches((t for _, row in rows for t in row), batch_size):
        run_batch(batch)
    stats.seconds = time.perf_counter() - t0
    return suppress(Boxes.concat(parts)), stats
