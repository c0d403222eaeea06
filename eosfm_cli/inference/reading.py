"""Windowed reads of a raster's tiles, with invalid values filled, one tile row at a time.

**Nodata.** A pixel whose bands all equal the input's nodata value (or are NaN) holds no data.
A band's invalid values are filled with the tile's mean of that band before inference, so the
model never sees them; a tile without any valid pixel is not run at all.

**Memory.** Tiles are read with windowed reads under a capped GDAL block cache
(:func:`raster_env`), so reading never scales with the raster's size.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eosfm_cli.errors import DataError
from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.tiling import BoolArray, FloatArray, TileGrid, TileStats

#: GDAL block cache during a pass over a raster, in MB: enough for a strip of input blocks.
GDAL_CACHE_MB = 64

#: Called with each tile as read, valid pixels or not: ``(data, valid, y, x)``.
OnInput = Callable[[FloatArray, BoolArray, int, int], None]


@dataclass
class Tile:
    """One tile read from the raster, with at least one valid pixel.

    Attributes:
        data: ``(C, h, w)`` values, invalid ones filled (cut at the raster's edge).
        valid: ``(h, w)`` pixels holding data.
        y: raster row of the tile's first row.
        x: raster column of the tile's first column.
        row: the index of its tile row in the grid.
        col: its index in its tile row.
    """

    data: FloatArray
    valid: BoolArray
    y: int
    x: int
    row: int
    col: int


@contextlib.contextmanager
def raster_env() -> Iterator[None]:
    """Capped GDAL block cache; rasters without georeferencing read and written silently."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def fill_invalid(tile: FloatArray, nodata: Sequence[float | None]) -> tuple[FloatArray, BoolArray]:
    """Fill a tile's invalid values and say which pixels hold data.

    Args:
        tile: ``(C, h, w)`` raw values.
        nodata: each band's nodata value, or ``None``.

    Returns:
        The filled tile (in place) and the ``(h, w)`` mask of pixels with at least one valid
        band.
    """
    bad = np.isnan(tile)
    for c, value in enumerate(nodata):
        if value is not None and not math.isnan(value):
            bad[c] |= tile[c] == np.float32(value)
    valid: BoolArray = np.logical_not(bad.all(axis=0))
    if bad.any():
        for c in range(tile.shape[0]):
            if bad[c].any():
                good = tile[c][~bad[c]]
                tile[c][bad[c]] = good.mean() if good.size else 0.0
    return tile, valid


def pad_reflect(tile: FloatArray, size: int) -> FloatArray:
    """Pad a ``(C, h, w)`` tile to ``(C, size, size)`` by reflection at the bottom and right."""
    _, h, w = tile.shape
    if h == size and w == size:
        return tile
    return np.pad(tile, ((0, 0), (0, size - h), (0, size - w)), mode="reflect")


def read_tile(
    src: Any, source: RasterSource, y: int, x: int, tile: int
) -> tuple[FloatArray, BoolArray]:
    """Read the tile at ``(y, x)`` (cut at the raster's edge) and fill its invalid values.

    Args:
        src: the input raster, open.
        source: its description.
        y: the tile's row offset.
        x: the tile's column offset.
        tile: tile side.

    Returns:
        The ``(C, h, w)`` filled tile and its valid-pixel mask.

    Raises:
        DataError: when the window cannot be read.
    """
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    h, w = min(tile, source.height - y), min(tile, source.width - x)
    try:
        data = src.read(source.indexes, window=Window(x, y, w, h), out_dtype="float32")
    except (RasterioError, OSError) as err:
        raise DataError(
            f"cannot read rows {y}..{y + h}, columns {x}..{x + w} ({err})",
            where=str(source.path),
        ) from None
    return fill_invalid(data, source.nodata)


def tile_rows(
    source: RasterSource,
    grid: TileGrid,
    stats: TileStats,
    *,
    on_input: OnInput | None = None,
    on_tiles: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Iterator[Tile]]]:
    """Read the raster tile row by tile row, each row lazily, tile by tile.

    Only the tile being read is held, so memory does not grow with the raster's width. Each
    row's tiles are read as its iterator is consumed: consume it before asking for the next.

    Args:
        source: the input raster.
        grid: its tiles.
        stats: counts; a tile without any valid pixel is counted as skipped.
        on_input: called with every tile read (a preview samples it).
        on_tiles: called with 1 for each skipped tile (the others are the caller's to count).

    Yields:
        The tile row's index in ``grid.rows``, and its tiles holding data, left to right.
    """
    import rasterio

    with rasterio.open(source.path) as src:
        for i in range(len(grid.rows)):
            yield i, _row(src, source, grid, i, stats, on_input, on_tiles)


def _row(
    src: Any,
    source: RasterSource,
    grid: TileGrid,
    i: int,
    stats: TileStats,
    on_input: OnInput | None,
    on_tiles: Callable[[int], None] | None,
) -> Iterator[Tile]:
    """The tiles of tile row ``i`` that hold data."""
    y = grid.rows[i]
    for j, x in enumerate(grid.cols):
        data, valid = read_tile(src, source, y, x, grid.tile)
        if on_input is not None:
            on_input(data, valid, y, x)
        if not valid.any():
            stats.skipped += 1  # nothing to predict: its pixels stay nodata
            if on_tiles is not None:
                on_tiles(1)
            continue
        yield Tile(data, valid, y, x, i, j)


def batches(tiles: Iterable[Tile], size: int) -> Iterator[list[Tile]]:
    """Consecutive batches of ``size`` tiles (the last one may be shorter)."""
    batch: list[Tile] = []
    for t in tiles:
        batch.append(t)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
