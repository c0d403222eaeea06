"""Embedding maps as Cloud-Optimized GeoTIFFs, and the provenance every embedding file carries.

**COG.** GDAL's COG driver only copies a finished dataset, so the blended rows are first
written by windows into a scratch tiled GeoTIFF beside the output (float32), which the driver
then copies into the COG: one band per embedding dimension, stored as half floats
(``NBITS=16``), DEFLATE with the floating-point predictor, internal overviews by averaging, the
level's grid (the input's transform scaled by the level's reduction) and the input's CRS.
The COG is written under a temporary name and renamed (:func:`eosfm_cli.io.atomic_path`); the
scratch file is removed whatever happens, so a failed run leaves nothing.

**int8.** ``dtype="int8"`` stores every band as ``round((value - offset) / scale)`` in
-127..127 (-128 is nodata), with ``offset`` the middle of the band's range and ``scale`` its
width over 254, so a value is off by at most half a step. Scale and offset are GDAL's own band
metadata, so readers that honour them (GDAL's ``-unscale``, QGIS, rasterio's ``src.scales`` and
``src.offsets``) get the values back. The range is only known once every row is written, so
the float32 scratch is quantized by windows into a second scratch that the COG driver copies.

**Provenance.** :func:`provenance` gives the same ``eosfm_*`` keys to the COG's tags and to
the GeoParquet's file metadata: the ensemble's file name and sha256, the level and its
reduction, the input bands and every specialist's band plan, and the dimension reduction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from eosfm_cli.inference.embeddings import LevelGrid
from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.tiling import BoolArray, FloatArray, TileStats
from eosfm_cli.io import atomic_path

if TYPE_CHECKING:
    from eosfm_cli.models.ensemble import EosFM

#: COG block side (level pixels) of a large map; overviews are added until one fits a block.
COG_BLOCK = 256
#: Bytes per stored value of each COG value type.
COG_DTYPES = {"float16": 2, "int8": 1}
#: The overviews' share on top of the full grid.
OVERVIEW_SHARE = 1 / 3
#: The int8 COG's nodata value (stored values are -127..127).
INT8_NODATA = -128
#: Rows quantized at a time.
QUANTIZE_ROWS = 256

#: Per-band ranges, scales and offsets (float64, as GDAL stores them).
Float64Array = npt.NDArray[np.float64]


def blended_values(
    sums: FloatArray, weights: FloatArray, valid: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """Finished rows as values ``(K, n, W)`` (NaN without data) and their first 3 channels.

    ``sums`` is the strip's copy of the finished rows, so it is divided in place: a full-width
    temporary of all channels would grow peak memory with the scene's width.
    """
    ok = valid & (weights > 0)
    values: FloatArray = sums if sums.dtype == np.float32 else sums.astype(np.float32)
    values /= np.where(ok, weights, 1.0)[None]
    values[:, ~ok] = np.nan
    return values, values[:3]


def blended_half(
    sums: FloatArray, weights: FloatArray, valid: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """:func:`blended_values` rounded to the nearest half float (what the COG stores).

    Rounded here, to nearest even as numpy and torch do, so GDAL's own conversion of the
    float32 scratch values to 16 bits is exact.
    """
    values, first = blended_values(sums, weights, valid)
    values[...] = values.astype(np.float16)  # in place: only a half-size temporary
    return values, first


def level_transform(source: RasterSource, reduction: int) -> Any:
    """The input's transform scaled to a level whose pixels cover ``reduction`` input pixels."""
    from rasterio.transform import Affine

    transform = source.profile.get("transform") or Affine.identity()
    return transform @ Affine.scale(reduction)


def provenance(
    model: EosFM,
    ensemble: Path,
    ensemble_sha256: str,
    level: int,
    reduce: str,
    basis: Path | None = None,
) -> dict[str, str]:
    """The ``eosfm_*`` provenance of an embedding file (string values: GDAL tags are strings)."""
    plan = {
        "input_bands": list(model.input_bands),
        "active": list(model.active_names),
        "plans": [p.explain() for p in model.plans],
    }
    out = {
        "eosfm_ensemble": ensemble.name,
        "eosfm_ensemble_sha256": ensemble_sha256,
        "eosfm_level": str(level),
        "eosfm_level_reduction": str(model.reductions[level]),
        "eosfm_band_plan": json.dumps(plan),
        "eosfm_reduce": reduce,
    }
    if basis is not None:
        out["eosfm_pca_basis"] = basis.name
    return out


def cog_block(grid: LevelGrid) -> int:
    """The COG's block side: 256, or 128 for a map under 512 pixels a side.

    GDAL adds overviews until one fits in a block, so a smaller block gives a mid-sized map
    its overviews too (the COG driver takes no block under 128).
    """
    return COG_BLOCK if max(grid.level_height, grid.level_width) >= 2 * COG_BLOCK else 128


def cog_bytes(grid: LevelGrid, count: int, dtype: str = "float16") -> int:
    """The COG's size before compression (full grid plus overviews)."""
    per_value = COG_DTYPES[dtype]
    return int(grid.level_height * grid.level_width * count * per_value * (1 + OVERVIEW_SHARE))


class RangeSink:
    """A row sink that writes into ``dst`` and keeps every band's finite minimum and maximum.

    Args:
        dst: the open scratch dataset.
    """

    def __init__(self, dst: Any) -> None:
        self.dst = dst
        self.height, self.width = int(dst.height), int(dst.width)
        self.low = np.full(int(dst.count), np.nan, np.float64)
        self.high = np.full(int(dst.count), np.nan, np.float64)

    def write(self, pixels: FloatArray, window: Any = None) -> None:
        """Write ``(K, n, W)`` rows and widen the bands' ranges (NaN ignored)."""
        self.dst.write(pixels, window=window)
        flat = pixels.reshape(pixels.shape[0], -1)
        self.low = np.fmin(self.low, np.fmin.reduce(flat, axis=1))
        self.high = np.fmax(self.high, np.fmax.reduce(flat, axis=1))


def int8_scaling(low: Float64Array, high: Float64Array) -> tuple[Float64Array, Float64Array]:
    """Per-band ``(scales, offsets)`` mapping each band's range onto -127..127.

    A band without data, or of one value, gets scale 1 (its values are then the offset).
    """
    known = np.isfinite(low) & np.isfinite(high)
    offsets = np.where(known, (low + high) / 2, 0.0)
    spread = np.where(known, high - low, 0.0)
    scales = np.where(spread > 0, spread / 254, 1.0)
    return scales.astype(np.float64), offsets.astype(np.float64)


def quantize(values: FloatArray, scales: Float64Array, offsets: Float64Array) -> Any:
    """``(K, ...)`` floats to int8 steps (NaN to :data:`INT8_NODATA`)."""
    shape = (-1,) + (1,) * (values.ndim - 1)
    steps = np.rint((values - offsets.reshape(shape)) / scales.reshape(shape))
    return np.nan_to_num(np.clip(steps, -127, 127), nan=INT8_NODATA).astype(np.int8)


def _quantize_file(scratch: Path, out: Path, sink: RangeSink, profile: dict[str, Any]) -> None:
    """Copy the float32 scratch ``scratch`` into an int8 GeoTIFF ``out``, by windows."""
    import rasterio
    from rasterio.windows import Window

    scales, offsets = int8_scaling(sink.low, sink.high)
    with (
        rasterio.open(scratch) as src,
        rasterio.open(out, "w", **{**profile, "dtype": "int8", "nodata": INT8_NODATA}) as dst,
    ):
        dst.descriptions = src.descriptions
        dst.update_tags(**src.tags())
        dst.scales, dst.offsets = tuple(scales), tuple(offsets)
        for top in range(0, src.height, QUANTIZE_ROWS):
            window = Window(0, top, src.width, min(QUANTIZE_ROWS, src.height - top))
            dst.write(quantize(src.read(window=window), scales, offsets), window=window)


def write_cog(
    path: Path,
    source: RasterSource,
    grid: LevelGrid,
    names: Sequence[str],
    tags: dict[str, str],
    fill: Callable[[Any], TileStats],
    block: int | None = None,
    dtype: str = "float16",
) -> TileStats:
    """Write an embedding COG whose level grid ``fill`` writes, by windows, into a sink.

    Args:
        path: the COG.
        source: the input raster (CRS and transform).
        grid: the level grid.
        names: band descriptions, one per embedding dimension.
        tags: dataset tags (:func:`provenance`).
        fill: writes every level pixel into the open scratch dataset it is given.
        block: COG block side in level pixels, a multiple of 16 (default: :func:`cog_block`).
        dtype: the stored values: ``float16``, or ``int8`` with a per-band scale and offset
            (``fill`` should then give unrounded float32 values).

    Returns:
        What ``fill`` returned.
    """
    import rasterio
    from rasterio.shutil import copy

    block = block or cog_block(grid)
    scratch = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.scratch.tif"
    scratch8 = scratch.with_suffix(".int8.tif")
    profile = {
        "driver": "GTiff",
        "height": grid.level_height,
        "width": grid.level_width,
        "count": len(names),
        "dtype": "float32",
        "nodata": float("nan"),
        "crs": source.profile.get("crs"),
        "transform": level_transform(source, grid.reduction),
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "BIGTIFF": "IF_SAFER",
    }
    stored = {"NBITS": 16} if dtype == "float16" else {}
    with atomic_path(path) as tmp:
        try:
            with rasterio.open(scratch, "w", **profile) as dst:
                dst.descriptions = tuple(names)
                dst.update_tags(**tags, eosfm_dtype=dtype)
                sink = RangeSink(dst)
                stats = fill(sink)
            if dtype == "int8":
                _quantize_file(scratch, scratch8, sink, profile)
            copy(
                scratch8 if dtype == "int8" else scratch,
                tmp,
                driver="COG",
                BLOCKSIZE=block,
                COMPRESS="DEFLATE",
                PREDICTOR="YES",
                OVERVIEW_RESAMPLING="AVERAGE",
                BIGTIFF="IF_SAFER",
                **stored,
            )
        finally:
            scratch.unlink(missing_ok=True)
            scratch8.unlink(missing_ok=True)
    return stats
