"""Blended sums of the rows tiles still touch, and the writer of the rows they no longer do.

**Memory.** Tiles are added one tile row at a time, so only a strip of ``tile + 256`` rows of
running sums is held: finished rows (those no later tile touches) are written to the output
with windowed writes, in whole 256-row blocks, and the strip slides down. Nothing scales with
the raster's height, and only the strip scales with its width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from eosfm_cli.inference.tiling import BoolArray, FloatArray

#: Output GeoTIFF block side; finished rows are written in whole blocks of this many rows.
OUTPUT_BLOCK = 256

#: Turns finished rows' ``(sums, weights, valid)`` into output pixels ``(count, n, W)`` and
#: the ``(n, W)`` values a preview shows.
ToPixels = Callable[[FloatArray, FloatArray, BoolArray], tuple[npt.NDArray[Any], FloatArray]]


class StripAccumulator:
    """Running weighted sums of the raster rows that tiles still touch.

    Rows ``top .. top + rows`` of the raster live in the buffer. :meth:`add` adds one tile's
    weighted output; :meth:`take` hands over finished rows and slides the strip down.

    Args:
        channels: values per pixel (classes, or 1).
        rows: rows the strip holds (a tile plus one output block).
        width: raster columns.
    """

    def __init__(self, channels: int, rows: int, width: int) -> None:
        self.sums: FloatArray = np.zeros((channels, rows, width), np.float32)
        self.weights: FloatArray = np.zeros((rows, width), np.float32)
        self.valid: BoolArray = np.zeros((rows, width), np.bool_)
        self.top = 0

    def add(self, values: FloatArray, weight: FloatArray, valid: BoolArray, y: int, x: int) -> None:
        """Add one tile's output.

        Args:
            values: ``(C, h, w)`` per-pixel values, or ``(C, 1, 1)`` for a whole-tile value.
            weight: ``(h, w)`` blending weights.
            valid: ``(h, w)`` input validity.
            y: raster row of the tile's first row.
            x: raster column of the tile's first column.
        """
        h, w = valid.shape
        r = y - self.top
        if r < 0 or r + h > self.weights.shape[0]:
            raise RuntimeError(f"tile rows {y}..{y + h} fall outside the strip at {self.top}")
        sums = self.sums[:, r : r + h, x : x + w]
        sums += values * weight
        self.weights[r : r + h, x : x + w] += weight
        self.valid[r : r + h, x : x + w] |= valid

    def take(self, stop: int) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Hand over raster rows ``top .. stop`` and slide the strip down to ``stop``.

        Returns:
            Copies of the sums ``(C, n, W)``, weights ``(n, W)`` and validity ``(n, W)``.
        """
        n = stop - self.top
        out = (self.sums[:, :n].copy(), self.weights[:n].copy(), self.valid[:n].copy())
        for arr in (self.sums, self.weights, self.valid):
            _shift_rows(arr, n)
        self.top = stop
        return out


def _shift_rows(arr: npt.NDArray[Any], n: int) -> None:
    """Move rows ``n..`` of ``arr`` (axis -2) to the top and zero the rest, without a copy."""
    rows = arr.shape[-2]
    if n <= 0:
        return
    # Chunks of at most n rows never overlap their destination, so no temporary is made.
    for start in range(0, rows - n, n):
        stop = min(start + n, rows - n)
        arr[..., start:stop, :] = arr[..., start + n : stop + n, :]
    arr[..., max(rows - n, 0) :, :] = 0


class StripWriter:
    """Blends tiles into a strip and writes the finished rows into an open output dataset.

    Args:
        dst: the output rasterio dataset, open for writing, as large as the input.
        channels: values accumulated per pixel.
        tile: tile side.
        to_pixels: turns finished rows into output pixels and preview values.
        on_rows: called with each run of finished rows' preview values and its first row.
    """

    def __init__(
        self,
        dst: Any,
        channels: int,
        tile: int,
        to_pixels: ToPixels,
        on_rows: Callable[[FloatArray, int], None] | None = None,
    ) -> None:
        self.dst = dst
        self.height, self.width = int(dst.height), int(dst.width)
        self.acc = StripAccumulator(channels, tile + OUTPUT_BLOCK, self.width)
        self.to_pixels = to_pixels
        self.on_rows = on_rows

    def add(self, values: FloatArray, weight: FloatArray, valid: BoolArray, y: int, x: int) -> None:
        """Add one tile's output (see :meth:`StripAccumulator.add`)."""
        self.acc.add(values, weight, valid, y, x)

    def row_done(self, next_row: int | None) -> None:
        """Write what a finished tile row leaves final.

        Args:
            next_row: the raster row where the next tile row starts, or ``None`` after the last
                one. Rows above it are final; they are written in whole output blocks.
        """
        self.flush(self.height if next_row is None else next_row // OUTPUT_BLOCK * OUTPUT_BLOCK)

    def flush(self, stop: int) -> None:
        """Write the strip's rows above raster row ``stop`` and slide the strip down to it."""
        from rasterio.windows import Window

        if stop <= self.acc.top:
            return
        top = self.acc.top
        sums, weights, valid = self.acc.take(stop)
        pixels, preview_rows = self.to_pixels(sums, weights, valid)
        self.dst.write(pixels, window=Window(0, top, self.width, stop - top))
        if self.on_rows is not None:
            self.on_rows(preview_rows, top)
