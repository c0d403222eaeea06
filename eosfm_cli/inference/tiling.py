"""Where the tiles of a raster lie, and how overlapping tiles are blended.

**Tiling.** The raster is cut into ``tile`` x ``tile`` tiles that step by ``tile - overlap``.
The last tile of a row (or column) is shifted back so that it ends on the raster's edge, so
every tile holds real pixels; only a raster smaller than one tile is padded, by reflection
(:func:`eosfm_cli.tiles.tile_starts`).

**Blending.** Each tile's per-pixel output is multiplied by a separable weight window that
rises from almost 0 to 1 across the ``overlap`` pixels at each side (a squared-sine ramp: two
neighbours' ramps sum to exactly 1) and is added into running sums; the blended value is the
weighted sum divided by the summed weights. At the raster's own edges only one tile covers a
pixel, and the division gives back its value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eosfm_cli.tiles import tile_starts

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

#: Tiles must be a multiple of the encoders' largest reduction.
TILE_MULTIPLE = 32


def blend_ramp(tile: int, overlap: int) -> FloatArray:
    """One axis of the blending window: a squared-sine ramp over ``overlap`` pixels at each end.

    The ramp of one tile and the mirrored ramp of its neighbour sum to 1 in their overlap, and
    no weight is 0, so a pixel that one tile alone covers keeps that tile's value.

    Args:
        tile: the tile side.
        overlap: the overlap between neighbouring tiles.

    Returns:
        Weights of shape ``(tile,)`` in ``(0, 1]``.
    """
    ramp = np.ones(tile, np.float32)
    if overlap > 0:
        n = min(overlap, tile // 2)
        rise = np.sin(0.5 * np.pi * (np.arange(n, dtype=np.float64) + 0.5) / overlap) ** 2
        ramp[:n] = rise
        ramp[tile - n :] = np.minimum(ramp[tile - n :], rise[::-1])
    return ramp


def blend_window(tile: int, overlap: int) -> FloatArray:
    """The separable 2-D blending window, shape ``(tile, tile)``."""
    ramp = blend_ramp(tile, overlap)
    return np.outer(ramp, ramp).astype(np.float32)


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering a raster.

    Attributes:
        height: raster rows.
        width: raster columns.
        tile: tile side.
        overlap: overlap between neighbouring tiles.
    """

    height: int
    width: int
    tile: int
    overlap: int

    @property
    def rows(self) -> list[int]:
        """Row offsets of the tile rows."""
        return tile_starts(self.height, self.tile, self.tile - self.overlap)

    @property
    def cols(self) -> list[int]:
        """Column offsets of the tiles in a row."""
        return tile_starts(self.width, self.tile, self.tile - self.overlap)

    @property
    def n_tiles(self) -> int:
        """Number of tiles."""
        return len(self.rows) * len(self.cols)


@dataclass
class TileStats:
    """Counts of one pass over a raster's tiles.

    Attributes:
        tiles: tiles run through the model.
        skipped: tiles without any valid pixel, never run.
        seconds: wall time of the pass.
    """

    tiles: int = 0
    skipped: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Tiles run per second (0 before any time has passed)."""
        return self.tiles / self.seconds if self.seconds > 0 else 0.0
