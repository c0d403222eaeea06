"""Embedding maps as Cloud-Optimized GeoTIFFs, and the provenance every embedding file carries.

**COG.** GDAL's COG driver only copies a finished dataset, so the blended rows are first
written by windows into a scratch tiled GeoTIFF beside the output (float32), which the driver
then copies into the COG: one band per embedding dimension, stored as half floats
(``NBITS=16``), DEFLATE with the floating-point predictor, internal overviews by averaging, the
level's grid (the input's transform scaled by the level's reduction) and the input's CRS.
The COG is written under a temporary name and renamed (:func:`eosfm_cli.io.atomic_path`); the
scratch file is removed whatever happens, so a failed run leaves nothing.

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

from eosfm_cli.inference.embeddings import LevelGrid
from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.tiling import BoolArray, FloatArray, TileStats
from eosfm_cli.io import atomic_path

if TYPE_CHECKING:
    from eosfm_cli.models.ensemble import EosFM

#: COG block side (level pixels) of a large map; overviews are added until one fits a block.
COG_BLOCK = 256
#: Bytes per value of the COG (half floats), and the overviews' share on top of the full grid.
COG_BYTES, OVERVIEW_SHARE = 2, 1 / 3


def blended_values(
    sums: FloatArray, weights: FloatArray, valid: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """Finished rows as values ``(K, n, W)`` (NaN without data) and their first 3 channels."""
    ok = valid & (weights > 0)
    values: FloatArray = (sums / np.where(ok, weights, 1.0)[None]).astype(np.float32)
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
    half: FloatArray = values.astype(np.float16).astype(np.float32)
    return half, first


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


def cog_bytes(grid: LevelGrid, count: int) -> int:
    """The COG's size before compression (full grid plus overviews)."""
    return int(grid.level_height * grid.level_width * count * COG_BYTES * (1 + OVERVIEW_SHARE))


def write_cog(
    path: Path,
    source: RasterSource,
    grid: LevelGrid,
    names: Sequence[str],
    tags: dict[str, str],
    fill: Callable[[Any], TileStats],
    block: int | None = None,
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

    Returns:
        What ``fill`` returned.
    """
    import rasterio
    from rasterio.shutil import copy

    block = block or cog_block(grid)
    scratch = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.scratch.tif"
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
    with atomic_path(path) as tmp:
        try:
            with rasterio.open(scratch, "w", **profile) as dst:
                dst.descriptions = tuple(names)
                dst.update_tags(**tags)
                stats = fill(dst)
            copy(
                scratch,
                tmp,
                driver="COG",
                BLOCKSIZE=block,
                COMPRESS="DEFLATE",
                PREDICTOR="YES",
                NBITS=16,
                OVERVIEW_RESAMPLING="AVERAGE",
                BIGTIFF="IF_SAFER",
            )
        finally:
            scratch.unlink(missing_ok=True)
    return stats
