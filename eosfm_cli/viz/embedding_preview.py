"""``embed``'s previews: the scene beside principal components 1-3 or beside a similarity map.

The scene is sampled while its tiles are read (:class:`~eosfm_cli.viz.previews.Quicklook`) and
the components while finished rows are written (:class:`ComponentLook`), every ``step``-th
level pixel, so the preview costs no second pass and at most ``PREVIEW_SIDE`` pixels a side.
Each component is stretched on its own (2-98 %), as the quicklook's colours are. The
``--similar-to`` map is sampled the same way (:func:`write_similarity_preview`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eosfm_cli.viz.figures import new_figure, save_png
from eosfm_cli.viz.previews import PREVIEW_SIDE, Quicklook
from eosfm_cli.viz.quicklook import FloatArray, stretch


@dataclass
class ComponentLook:
    """Every ``step``-th level pixel of the first three components.

    Attributes:
        step: sampling step in level pixels.
        rgb: ``(3, ph, pw)`` sampled components (NaN: no data, or fewer than 3 components).
    """

    step: int
    rgb: FloatArray

    @classmethod
    def create(cls, height: int, width: int) -> ComponentLook:
        """An empty sample of a level grid of this size."""
        step = max(1, math.ceil(max(height, width) / PREVIEW_SIDE))
        shape = (3, math.ceil(height / step), math.ceil(width / step))
        return cls(step=step, rgb=np.full(shape, np.nan, np.float32))

    def add_rows(self, rows: FloatArray, y: int) -> None:
        """Sample finished ``(c <= 3, n, W)`` component rows starting at level row ``y``."""
        first = -(-y // self.step)
        last = (y + rows.shape[1] - 1) // self.step
        if last < first:
            return
        picked = rows[:, first * self.step - y :: self.step, :: self.step]
        self.rgb[: rows.shape[0], first : last + 1] = picked[:, : last + 1 - first]


def write_embedding_preview(path: Path, scene: Quicklook, comps: ComponentLook) -> None:
    """Save the PNG: the scene's quicklook on the left, components 1-3 as RGB on the right."""
    fig = new_figure(10, 5.4)
    axes = fig.subplots(1, 2)
    axes[0].imshow(stretch(scene.rgb), interpolation="nearest")
    axes[0].set_title("scene")
    rgb = comps.rgb.copy()
    missing = np.isnan(rgb).all(axis=(1, 2))
    rgb[missing] = np.where(np.isnan(rgb[0]), np.nan, 0.0)  # fewer than 3 components: black
    axes[1].imshow(stretch(rgb), interpolation="nearest")
    axes[1].set_title("embedding: principal components 1-3 as RGB")
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    save_png(fig, path)


def write_similarity_preview(
    path: Path,
    scene: Quicklook,
    similarity: ComponentLook,
    query: tuple[int, int],
    reduction: int,
    label: str,
) -> None:
    """Save the PNG: the scene with the query marked, beside the cosine-similarity map.

    Args:
        path: the PNG.
        scene: the scene's quicklook.
        similarity: the sampled map (its first channel), on the level grid.
        query: the query's level pixel ``(row, col)``.
        reduction: input pixels per level pixel.
        label: the query as the user wrote it (the title).
    """
    fig = new_figure(11, 5.4)
    axes = fig.subplots(1, 2)
    row, col = query
    axes[0].imshow(stretch(scene.rgb), interpolation="nearest")
    axes[0].set_title("scene")
    # The query pixel's centre in each panel's samples (sample k is pixel k * step).
    centre = (reduction - 1) / 2
    at_input = ((col * reduction + centre) / scene.step, (row * reduction + centre) / scene.step)
    at_level = (col / similarity.step, row / similarity.step)
    shown = axes[1].imshow(
        similarity.rgb[0], cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest"
    )
    axes[1].set_title(f"cosine similarity to {label}")
    for ax, (x, y) in zip(axes, (at_input, at_level), strict=True):
        ax.plot(x, y, marker="*", color="yellow", markeredgecolor="black", ms=14)
        ax.set_axis_off()
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.02)
    fig.tight_layout()
    save_png(fig, path)
