"""Where tiles start along one axis: the one rule every tiled reader uses.

Tiles of a fixed side step by a fixed stride from 0; the last one is shifted back so that it
ends on the far edge. So every tile lies inside the axis and together they cover every pixel;
only an axis shorter than one tile gets a single tile at 0 (its reader pads or cuts it).

The datasets' evaluation grids (:mod:`eosfm_cli.data.windows`, stride = tile) and ``predict``'s
overlapping tiles (:mod:`eosfm_cli.inference.tiling`, stride = tile - overlap) both use it. It
lives in this dependency-free module at the bottom of the package so that ``data`` and
``inference`` can share it without either importing the other.
"""

from __future__ import annotations


def tile_starts(length: int, tile: int, stride: int | None = None) -> list[int]:
    """Start offsets of ``tile``-long tiles every ``stride`` pixels covering ``[0, length)``.

    Args:
        length: the extent along the axis.
        tile: the tile side.
        stride: the step between tiles (default ``tile``: tiles that touch without overlap).

    Returns:
        The sorted, distinct offsets; the last tile ends at ``length`` unless ``length`` is
        shorter than one tile, which gives ``[0]``.
    """
    step = tile if stride is None else stride
    if step < 1:
        raise ValueError(f"`stride=` must be at least 1 (got {step})")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts
