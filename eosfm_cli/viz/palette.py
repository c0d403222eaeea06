"""The class palette: the one colour of each class, in every plot and class-map colormap.

**Rule.** Up to 10 classes take matplotlib's ``tab10`` colours, up to 20 its ``tab20``; more
classes take ``n`` evenly spaced hues of the colour wheel at full saturation and value (class
``k`` gets hue ``k / n``). So evaluate's plots, predict's previews and the colormap written into
a class map give a class the same colour, and every class of a head gets a colour of its own
for any number of classes, with nothing random in it.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
import numpy.typing as npt

#: An RGB colour with components in ``[0, 1]``.
Colour = tuple[float, float, float]

#: The qualitative palettes used up to their size, smallest first.
QUALITATIVE = (("tab10", 10), ("tab20", 20))


def class_colours(n: int) -> list[Colour]:
    """The colours of ``n`` classes, class index order (see the module's rule).

    Args:
        n: how many classes.

    Returns:
        ``n`` distinct RGB colours in ``[0, 1]``.
    """
    for name, size in QUALITATIVE:
        if n <= size:
            import matplotlib

            cmap = matplotlib.colormaps[name]
            return [_rgb(cmap(i)) for i in range(n)]
    return [colorsys.hsv_to_rgb(i / n, 1.0, 1.0) for i in range(n)]


def colour_of(label: int, colours: list[Colour]) -> Colour:
    """The colour of class ``label``; labels past the palette wrap around it."""
    return colours[int(label) % len(colours)]


def label_map(mask: Any, n: int) -> npt.NDArray[np.float64]:
    """Colour a class-index map ``(H, W)`` as ``(H, W, 3)``; out-of-range values are black.

    Args:
        mask: class indices (an ignore index, or any value outside ``0 .. n - 1``, is black).
        n: how many classes.
    """
    m = np.asarray(mask)
    colours = np.asarray(class_colours(n), np.float64).reshape(-1, 3)
    out = np.zeros((*m.shape, 3))
    valid = (m >= 0) & (m < n)
    out[valid] = colours[m[valid]]
    return out


def geotiff_colormap(n: int) -> dict[int, tuple[int, ...]]:
    """The class colours as a GeoTIFF colormap: class index to 8-bit RGB."""
    return {i: tuple(round(255 * v) for v in c) for i, c in enumerate(class_colours(n))}


def _rgb(rgba: tuple[float, float, float, float]) -> Colour:
    r, g, b, _ = rgba
    return (float(r), float(g), float(b))
