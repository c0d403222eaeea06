"""Headless matplotlib figures: made on the Agg canvas, saved atomically as PNG.

Figures are built with :class:`matplotlib.figure.Figure` on an Agg canvas rather than through
``pyplot``: no GUI backend is ever chosen, no global figure registry needs closing, and a
stage running in a worker thread cannot disturb another's figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eosfm_cli.io import atomic_path
from eosfm_cli.viz.palette import Colour, colour_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Dots per inch of a new figure (and of its PNG, unless ``save_png`` is given another).
FIGURE_DPI = 100
#: Resolution of evaluate's charts and sample PNGs.
CHART_DPI = 110


def new_figure(width: float, height: float, dpi: int = FIGURE_DPI) -> Figure:
    """An empty figure of ``width`` x ``height`` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path, dpi: int | None = None) -> None:
    """Write the figure as a PNG, cropped to its content, under a temporary name first.

    Args:
        fig: the figure.
        path: the PNG; it appears whole or not at all.
        dpi: resolution of the PNG (default: the figure's).
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi or "figure", bbox_inches="tight")


def class_legend(ax: Axes, colours: Sequence[Colour], names: Sequence[str]) -> None:
    """A legend of class colours outside the axes, on their right."""
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=c, label=n) for c, n in zip(colours, names, strict=True)],
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize="small",
        frameon=False,
    )


def draw_boxes(
    ax: Axes,
    boxes: Any,
    labels: Any,
    colours: list[Colour],
    *,
    step: int = 1,
    width: float = 1.2,
    texts: Sequence[str] | None = None,
) -> None:
    """Outline boxes over an image shown with ``imshow``, each in its class colour.

    Args:
        ax: the axes showing the image.
        boxes: ``(N, 4)`` xyxy boxes in pixels of the full-resolution image (pixel edges).
        labels: ``(N,)`` 0-based class indices.
        colours: the class palette.
        step: the image shown is every ``step``-th pixel of the full-resolution one.
        width: line width.
        texts: a caption per box, written at its top-left corner.
    """
    from matplotlib.patches import Rectangle

    for j, (box, label) in enumerate(zip(np.asarray(boxes), np.asarray(labels), strict=True)):
        x0, y0, x1, y1 = (float(v) / step for v in box)
        colour = colour_of(int(label), colours)
        # imshow centres pixel (0, 0) on (0, 0), so its edges start at -0.5.
        ax.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=width, edgecolor=colour
            )
        )
        if texts is not None:
            ax.text(
                x0 - 0.5,
                y0 - 0.5,
                texts[j],
                fontsize=6,
                color="white",
                backgroundcolor=colour,
                va="bottom",
            )
