"""``--similar-to``: the cosine similarity of every level pixel's embedding to one location's.

**The location.** ``X,Y`` is a map coordinate in the scene's CRS (for a scene without a CRS,
its pixel coordinates); ``px:ROW,COL`` is a pixel of the scene itself (input pixels, row first,
0-based). Either falls in one level pixel (:func:`query_point`); a location outside the scene
is refused with the scene's extent in the message.

**The map.** The query vector is read from the embeddings as written (a COG, dequantized when
stored as int8), so anyone can recompute the map from the file. The map is read and written by
blocks of rows: a single float32 band on the embedding's grid, same CRS and transform, NaN where
the scene has no data, values in [-1, 1] (1 at the query). With ``--format parquet`` no
level-grid file exists, so :class:`LevelCopy` keeps a scratch float32 copy of the grid while it
is written, removed once the map is made.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eosfm_cli.errors import DataError, ProfileError
from eosfm_cli.inference.embeddings import LevelGrid
from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.tiling import FloatArray
from eosfm_cli.io import atomic_path
from eosfm_cli.viz.embedding_preview import ComponentLook

#: Rows of the level grid read and written at a time.
ROWS = 256
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_MAP = re.compile(rf"^\s*({_NUMBER})\s*,\s*({_NUMBER})\s*$")
_PIXEL = re.compile(r"^\s*px:\s*(\d+)\s*,\s*(\d+)\s*$", re.IGNORECASE)
SYNTAX = "write X,Y (a map coordinate in the scene's CRS) or px:ROW,COL (a scene pixel)"


@dataclass(frozen=True)
class QueryPoint:
    """The location a similarity map compares against.

    Attributes:
        text: the location as the user wrote it.
        row: its level-grid row.
        col: its level-grid column.
    """

    text: str
    row: int
    col: int


def similarity_paths(output: Path) -> tuple[Path, Path]:
    """The similarity GeoTIFF and PNG beside an embedding file: ``<stem>.similarity.{tif,png}``."""
    return output.with_suffix(".similarity.tif"), output.with_suffix(".similarity.png")


def query_point(text: str, source: RasterSource, grid: LevelGrid) -> QueryPoint:
    """The level pixel of ``--similar-to`` (``X,Y`` map coordinates or ``px:ROW,COL``).

    Raises:
        ProfileError: when the text is neither form, or the location lies outside the scene.
    """
    from rasterio.transform import Affine

    transform = source.profile.get("transform") or Affine.identity()
    h, w = source.height, source.width
    pixel, mapped = _PIXEL.match(text), _MAP.match(text)
    if pixel:
        row, col = float(pixel.group(1)), float(pixel.group(2))
    elif mapped:
        col, row = ~transform @ (float(mapped.group(1)), float(mapped.group(2)))
    else:
        raise ProfileError(f"cannot read the location {text!r}", "`similar_to=`", SYNTAX)
    if not (0 <= row < h and 0 <= col < w):
        corners = [transform @ (c, r) for c, r in ((0, 0), (w, 0), (0, h), (w, h))]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        raise ProfileError(
            f"{text} lies outside the {w} x {h} pixel scene",
            where="`similar_to=`",
            hint=f"choose X in {min(xs):.10g}..{max(xs):.10g} and Y in {min(ys):.10g}.."
            f"{max(ys):.10g}, or px:ROW,COL with ROW < {h} and COL < {w}",
        )
    r = grid.reduction
    return QueryPoint(text.strip(), math.floor(row) // r, math.floor(col) // r)


def _dequantize(src: Any, values: FloatArray) -> FloatArray:
    """Stored values ``(K, ...)`` as floats: nodata to NaN, GDAL's scale and offset applied."""
    out = values.astype(np.float32)
    if src.nodata is not None and not math.isnan(src.nodata):
        out[values == src.nodata] = np.nan
    scales = np.asarray(src.scales, np.float32).reshape(-1, *([1] * (values.ndim - 1)))
    offsets = np.asarray(src.offsets, np.float32).reshape(scales.shape)
    if (scales != 1).any() or (offsets != 0).any():
        out = out * scales + offsets
    return out


def write_similarity(
    embeddings: Path, query: QueryPoint, out: Path, tags: dict[str, str]
) -> ComponentLook:
    """Write the cosine-similarity map of ``embeddings`` (a level-grid raster) to ``query``.

    Args:
        embeddings: the embedding GeoTIFF (or :class:`LevelCopy`'s scratch copy).
        query: the location compared against.
        out: the single-band float32 GeoTIFF, written under a temporary name and renamed.
        tags: provenance stored in the map's tags.

    Returns:
        Every ``step``-th level pixel of the map, for the preview (in its first channel).

    Raises:
        DataError: when the scene has no data (or a zero vector) at the location.
    """
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(embeddings) as src:
        h, w = src.height, src.width
        q = _dequantize(src, src.read(window=Window(query.col, query.row, 1, 1)))[:, 0, 0]
        norm = float(np.linalg.norm(q.astype(np.float64)))
        if not np.isfinite(q).all() or norm == 0:
            raise DataError(
                "the scene has no data (or a zero embedding) at this location",
                where=f"--similar-to {query.text}",
                hint="choose a location inside the scene's valid pixels",
            )
        unit = (q / norm).astype(np.float32)
        block = ROWS if max(h, w) >= 2 * ROWS else ROWS // 2
        profile = {
            "driver": "GTiff",
            "height": h,
            "width": w,
            "count": 1,
            "dtype": "float32",
            "nodata": float("nan"),
            "crs": src.crs,
            "transform": src.transform,
            "tiled": True,
            "blockxsize": block,
            "blockysize": block,
            "compress": "deflate",
            "predictor": 3,
        }
        look = ComponentLook.create(h, w)
        with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
            dst.descriptions = (f"cosine similarity to {query.text}",)
            dst.update_tags(
                **tags,
                eosfm_similar_to=query.text,
                eosfm_similar_to_level_pixel=f"{query.row},{query.col}",
            )
            for top in range(0, h, ROWS):
                window = Window(0, top, w, min(ROWS, h - top))
                values = _dequantize(src, src.read(window=window))
                with np.errstate(invalid="ignore", divide="ignore"):
                    cos = np.einsum("k,knw->nw", unit, values) / np.linalg.norm(values, axis=0)
                sim = np.clip(cos, -1.0, 1.0).astype(np.float32)
                dst.write(sim[None], window=window)
                look.add_rows(sim[None], top)
    return look


class LevelCopy:
    """A scratch float32 GeoTIFF of the level grid, filled beside another sink's writes.

    Used with ``--format parquet``, whose table pools pixels away: the similarity map needs
    every level pixel. :meth:`wrap` gives a sink that writes to both; :meth:`remove` deletes
    the copy (call it whatever happens).

    Args:
        near: a file the scratch copy is put beside (the output).
        grid: the level grid.
        count: values per level pixel.
        crs: the scene's CRS (or ``None``).
        transform: the level grid's transform.
    """

    def __init__(self, near: Path, grid: LevelGrid, count: int, crs: Any, transform: Any) -> None:
        self.path = near.parent / f".{near.name}.{uuid.uuid4().hex[:8]}.level.tif"
        self.profile = {
            "driver": "GTiff",
            "height": grid.level_height,
            "width": grid.level_width,
            "count": count,
            "dtype": "float32",
            "nodata": float("nan"),
            "crs": crs,
            "transform": transform,
            "tiled": True,
            "blockxsize": 128,
            "blockysize": 128,
            "BIGTIFF": "IF_SAFER",
        }

    def wrap(self, sink: Any) -> _Tee:
        """A sink writing to ``sink`` and to the scratch copy (open until :meth:`close`)."""
        import rasterio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dst = rasterio.open(self.path, "w", **self.profile)
        return _Tee(sink, self.dst)

    def close(self) -> None:
        """Finish the scratch copy so it can be read."""
        if getattr(self, "dst", None) is not None:
            self.dst.close()
            self.dst = None

    def remove(self) -> None:
        """Close and delete the scratch copy."""
        self.close()
        self.path.unlink(missing_ok=True)


class _Tee:
    """A row sink that writes every window to two sinks."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second
        self.height, self.width = int(first.height), int(first.width)

    def write(self, pixels: FloatArray, window: Any = None) -> None:
        self.first.write(pixels, window=window)
        self.second.write(pixels.astype(np.float32), window=window)
