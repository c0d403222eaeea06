"""The dense tile loop: any per-tile function over a raster of any size, into a GeoTIFF.

:func:`run_tiles` reads the raster tile row by tile row (:mod:`~eosfm_cli.inference.reading`),
runs batches of tiles through a per-tile function, blends the outputs of overlapping tiles
(:mod:`~eosfm_cli.inference.tiling`) and writes finished rows as it goes
(:mod:`~eosfm_cli.inference.strips`). What the function computes (a head's class
probabilities, embedding features) and how blended values become pixels
(:class:`OutputSpec`) are the caller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.reading import OnInput, Tile, batches, pad_reflect, tile_rows
from eosfm_cli.inference.strips import OUTPUT_BLOCK, StripWriter
from eosfm_cli.inference.tiling import BoolArray, FloatArray, TileGrid, TileStats, blend_window

if TYPE_CHECKING:
    import torch

#: A batch ``(B, C, T, T)`` of input tiles (on the CPU) to ``(B, K, T, T)`` per-pixel values,
#: or ``(B, K, 1, 1)`` values of whole tiles (painted over the tile, then blended).
TileFn = Callable[["torch.Tensor"], FloatArray]


@dataclass
class OutputSpec:
    """How the blended values become output pixels.

    ``classes`` writes the index of the largest blended value; every other kind writes the
    blended values themselves (NaN where no data). The preview shows the class index of
    ``classes`` and ``probabilities``, and the first value of other kinds.

    Attributes:
        kind: ``classes``, ``probabilities``, ``regression`` (or another kind of values).
        channels: values accumulated per pixel.
        count: output bands.
        dtype: output dtype.
        nodata: output nodata.
        names: output band descriptions.
    """

    kind: str
    channels: int
    count: int
    dtype: str
    nodata: float
    names: list[str]

    def pixels(
        self, sums: FloatArray, weights: FloatArray, valid: BoolArray
    ) -> tuple[npt.NDArray[Any], FloatArray]:
        """Finished rows as output pixels ``(count, n, W)``, and what the preview shows."""
        ok = valid & (weights > 0)
        if self.kind == "classes":
            cls_map = sums.argmax(axis=0).astype(self.dtype)
            cls_map[~ok] = int(self.nodata)
            look = cls_map.astype(np.float32)
            look[~ok] = np.nan
            return cls_map[None], look
        values = sums / np.where(ok, weights, 1.0)[None]
        values[:, ~ok] = np.nan
        if self.kind == "probabilities":
            look = values.argmax(axis=0).astype(np.float32)
            look[~ok] = np.nan
        else:
            look = values[0]
        return values.astype(np.float32), look


def output_profile(source: RasterSource, spec: OutputSpec) -> dict[str, Any]:
    """A tiled, compressed GeoTIFF profile with the input's grid."""
    return {
        "driver": "GTiff",
        "height": source.height,
        "width": source.width,
        "count": spec.count,
        "dtype": spec.dtype,
        "nodata": spec.nodata,
        "crs": source.profile.get("crs"),
        "transform": source.profile.get("transform"),
        "tiled": True,
        "blockxsize": OUTPUT_BLOCK,
        "blockysize": OUTPUT_BLOCK,
        "compress": "deflate",
        "predictor": 3 if spec.dtype == "float32" else 2,
        "BIGTIFF": "IF_SAFER",
    }


def run_tiles(
    tile_fn: TileFn,
    source: RasterSource,
    dst: Any,
    spec: OutputSpec,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    on_input: OnInput | None = None,
    on_rows: Callable[[FloatArray, int], None] | None = None,
    on_tiles: Callable[[int], None] | None = None,
) -> TileStats:
    """Run ``tile_fn`` over the raster tile by tile into an open output dataset.

    Batches never span two tile rows, so each tile row's finished rows are written before the
    next one is read.

    Args:
        tile_fn: the per-tile function (run under ``torch.inference_mode``).
        source: the input raster.
        dst: the output rasterio dataset, open for writing (see :func:`output_profile`).
        spec: how blended values become pixels.
        tile: tile side.
        overlap: overlap between tiles.
        batch_size: tiles per call of ``tile_fn``.
        on_input: called with every input tile read.
        on_rows: called with the preview values of finished rows and their first row.
        on_tiles: called with the number of tiles just finished.

    Returns:
        Tile counts and the time taken.
    """
    import torch

    grid = TileGrid(source.height, source.width, tile, overlap)
    rows = grid.rows
    window = blend_window(tile, overlap)
    writer = StripWriter(dst, spec.channels, tile, spec.pixels, on_rows)
    stats = TileStats()
    t0 = time.perf_counter()

    def run_batch(items: list[Tile]) -> None:
        batch = torch.from_numpy(np.stack([pad_reflect(t.data, tile) for t in items]))
        with torch.inference_mode():
            out = tile_fn(batch)
        for t, values in zip(items, out, strict=True):
            h, w = t.valid.shape
            # A pooled output (K, 1, 1) is painted over the whole tile.
            vals = values if values.shape[-2:] == (1, 1) else values[:, :h, :w]
            writer.add(vals, window[:h, :w], t.valid, t.y, t.x)
        stats.tiles += len(items)
        if on_tiles is not None:
            on_tiles(len(items))

    for i, row in tile_rows(source, grid, stats, on_input=on_input, on_tiles=on_tiles):
        for batch in batches(row, batch_size):
            run_batch(batch)
        writer.row_done(rows[i + 1] if i + 1 < len(rows) else None)
    stats.seconds = time.perf_counter() - t0
    return stats
