"""``predict``'s previews of a raster of any size: a strided sample, then one PNG.

:class:`Quicklook` keeps every ``step``-th pixel of the input's RGB quicklook colours and of
the prediction, filled while tiles are read and rows are written, so a preview of a raster of
any size costs no second pass over it and at most ``PREVIEW_SIDE`` pixels a side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from eosfm_cli.viz.figures import class_legend, draw_boxes, new_figure, save_png
from eosfm_cli.viz.palette import class_colours, colour_of
from eosfm_cli.viz.quicklook import FloatArray, mix_bands, rgb_mix, stretch

BoolArray = npt.NDArray[np.bool_]

#: Longest side of the preview's panels, in pixels.
PREVIEW_SIDE = 512


@dataclass
class Quicklook:
    """Every ``step``-th pixel of the input's quicklook colours and of the prediction.

    Attributes:
        step: sampling step in pixels.
        mix: how red, green and blue are made from the input's bands (see
            :func:`eosfm_cli.viz.quicklook.rgb_mix`).
        rgb: ``(3, ph, pw)`` sampled colours (NaN: not sampled or nodata).
        pred: ``(ph, pw)`` sampled class index or value (NaN: nodata).
    """

    step: int
    mix: FloatArray
    rgb: FloatArray
    pred: FloatArray

    @classmethod
    def create(cls, height: int, width: int, bands: Sequence[str]) -> Quicklook:
        """An empty quicklook for a raster of this size and these bands."""
        step = max(1, math.ceil(max(height, width) / PREVIEW_SIDE))
        ph, pw = math.ceil(height / step), math.ceil(width / step)
        return cls(
            step=step,
            mix=rgb_mix(bands),
            rgb=np.full((3, ph, pw), np.nan, np.float32),
            pred=np.full((ph, pw), np.nan, np.float32),
        )

    def _samples(self, start: int, length: int) -> tuple[slice, slice]:
        """Sample positions inside ``start .. start + length``: (in the block, in the preview)."""
        first = -(-start // self.step)
        last = (start + length - 1) // self.step
        if last < first:
            return slice(0, 0), slice(0, 0)
        return (
            slice(first * self.step - start, last * self.step - start + 1, self.step),
            slice(first, last + 1),
        )

    def add_input(self, tile: FloatArray, valid: BoolArray, y: int, x: int) -> None:
        """Sample a ``(C, h, w)`` input tile at raster offset ``(y, x)``."""
        (ty, py), (tx, px) = self._samples(y, tile.shape[1]), self._samples(x, tile.shape[2])
        values = mix_bands(self.mix, tile[:, ty, tx])
        values[:, ~valid[ty, tx]] = np.nan
        self.rgb[:, py, px] = values

    def add_prediction(self, rows: FloatArray, y: int) -> None:
        """Sample finished ``(n, W)`` prediction rows starting at raster row ``y``."""
        ty, py = self._samples(y, rows.shape[0])
        self.pred[py, :] = rows[ty, :: self.step]


def write_preview(path: Path, look: Quicklook, task: str, classes: Sequence[str]) -> None:
    """Save the map preview PNG: the input on the left, the prediction on the right.

    Args:
        path: the PNG (written atomically).
        look: the sampled input and prediction.
        task: the head's task; a regression map is drawn with a colour bar, others by class.
        classes: class names.
    """
    fig = new_figure(10, 5.4)
    axes = fig.subplots(1, 2)
    axes[0].imshow(stretch(look.rgb), interpolation="nearest")
    axes[0].set_title("input")
    pred = np.ma.masked_invalid(look.pred)
    if task == "regression":
        im = axes[1].imshow(pred, cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
    else:
        from matplotlib.colors import ListedColormap

        colours = class_colours(len(classes))
        axes[1].imshow(
            pred,
            cmap=ListedColormap(colours),
            vmin=-0.5,
            vmax=len(classes) - 0.5,
            interpolation="nearest",
        )
        class_legend(axes[1], colours, classes)
    axes[1].set_title("prediction")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    save_png(fig, path)


def write_box_preview(
    path: Path,
    look: Quicklook,
    boxes: Any,
    scores: Any,
    labels: Any,
    classes: Sequence[str],
    min_score: float,
) -> None:
    """Save the box preview PNG: the input with the boxes scoring at least ``min_score``.

    Args:
        path: the PNG (written atomically).
        look: the sampled input.
        boxes: ``(N, 4)`` xyxy boxes in raster pixels.
        scores: ``(N,)`` their scores.
        labels: ``(N,)`` their 0-based classes.
        classes: class names.
        min_score: boxes scoring less are not drawn.
    """
    colours = class_colours(max(len(classes), 1))
    shown = np.asarray(scores) >= min_score
    boxes, labels = np.asarray(boxes)[shown], np.asarray(labels)[shown]
    fig = new_figure(7, 6)
    ax = fig.subplots()
    ax.imshow(stretch(look.rgb), interpolation="nearest")
    draw_boxes(ax, boxes, labels, colours, step=look.step, width=1.0)
    present = sorted({int(k) for k in labels})
    if present:
        class_legend(
            ax,
            [colour_of(k, colours) for k in present],
            [classes[k] if classes else str(k) for k in present],
        )
    ax.set_title(f"{len(boxes)} detections with score >= {min_score} ({len(shown)} in all)")
    ax.set_axis_off()
    fig.tight_layout()
    save_png(fig, path)
