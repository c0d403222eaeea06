"""Embeddings pooled over patches, as a GeoParquet table (one row per patch).

A patch is ``P`` x ``P`` pixels of the level's grid (``P`` must divide both sides of it). Its
row holds the patch's polygon (WKB, in the scene's CRS), its centre ``x``/``y``, its ``row`` and
``col`` in the patch grid, and ``embedding``: the mean of its valid pixels' vectors
(``list<float32>``). A patch without any valid pixel has no row.

The file follows GeoParquet 1.1: the ``geo`` key of the file metadata names ``geometry`` as the
primary column, encoded as WKB, of type ``Polygon``, with the CRS as PROJJSON (``null`` for a
raster without a CRS: its geometries are in the raster's own coordinates) and the bounding
box. The ``eosfm_*`` provenance sits beside it in the file metadata. geopandas, DuckDB (spatial
extension) and GDAL read it as a layer.

:class:`PatchTable` is a sink for :class:`~eosfm_cli.inference.strips.StripWriter`: finished
level rows arrive by windowed ``write`` calls; whole patch rows are pooled and written as a
row group, so memory holds at most ``P - 1`` pending level rows plus one block.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from eosfm_cli.inference.tiling import FloatArray

GEOPARQUET_VERSION = "1.1.0"


def polygons_wkb(corners: npt.NDArray[np.float64]) -> list[bytes]:
    """Little-endian WKB polygons from ``(N, 4, 2)`` corner coordinates (ring closed here)."""
    n = corners.shape[0]
    ring = np.concatenate([corners, corners[:, :1]], axis=1).astype("<f8")
    head = np.zeros(n, dtype=[("order", "u1"), ("type", "<u4"), ("rings", "<u4"), ("pts", "<u4")])
    head["order"], head["type"], head["rings"], head["pts"] = 1, 3, 1, 5
    return [head[i].tobytes() + ring[i].tobytes() for i in range(n)]


def crs_projjson(crs: Any) -> dict[str, Any] | None:
    """The CRS as PROJJSON (rasterio's, else pyproj's), or ``None`` without a CRS."""
    if crs is None:
        return None
    try:
        out: dict[str, Any] = crs.to_dict(projjson=True)
        return out
    except TypeError:  # rasterio before 1.4
        from pyproj import CRS

        projjson: dict[str, Any] = json.loads(CRS.from_wkt(crs.to_wkt()).to_json())
        return projjson


def geo_metadata(crs: Any, bbox: Sequence[float]) -> dict[str, Any]:
    """The GeoParquet ``geo`` metadata of the patch table."""
    return {
        "version": GEOPARQUET_VERSION,
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "crs": crs_projjson(crs),
                "bbox": [float(v) for v in bbox],
            }
        },
    }


class PatchTable:
    """Pools finished level rows into patches and writes them to a GeoParquet file.

    Args:
        path: the file to write (the caller renames it into place).
        height: level rows (a multiple of ``patch``).
        width: level columns (a multiple of ``patch``).
        patch: patch side in level pixels.
        transform: the level grid's affine transform.
        crs: the scene's CRS (rasterio), or ``None``.
        provenance: ``eosfm_*`` metadata stored beside ``geo``.
    """

    def __init__(
        self,
        path: Any,
        height: int,
        width: int,
        patch: int,
        transform: Any,
        crs: Any,
        provenance: dict[str, str],
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.height, self.width, self.patch = height, width, patch
        self.transform, self.crs, self.provenance = transform, crs, provenance
        self.schema = pa.schema(
            [
                ("geometry", pa.binary()),
                ("x", pa.float64()),
                ("y", pa.float64()),
                ("row", pa.int32()),
                ("col", pa.int32()),
                ("embedding", pa.list_(pa.float32())),
            ]
        )
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        self.pending: list[FloatArray] = []
        self.next_row = 0  # first level row not yet pooled
        self.rows = 0
        self.bounds = [np.inf, np.inf, -np.inf, -np.inf]

    def write(self, pixels: FloatArray, window: Any = None) -> None:
        """Take finished level rows ``(K, n, W)`` (a windowed write of whole rows)."""
        self.pending.append(pixels)
        stacked = np.concatenate(self.pending, axis=1)
        whole = stacked.shape[1] // self.patch * self.patch
        if whole:
            self._pool(stacked[:, :whole])
        self.pending = [stacked[:, whole:]] if whole < stacked.shape[1] else []

    def _pool(self, rows: FloatArray) -> None:
        import pyarrow as pa

        k, n, w = rows.shape
        p = self.patch
        blocks = rows.reshape(k, n // p, p, w // p, p)
        count = np.sum(~np.isnan(blocks[0]), axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.nansum(blocks, axis=(2, 4)) / np.maximum(count, 1)[None]
        pr, pc = np.nonzero(count > 0)
        if pr.size == 0:
            self.next_row += n
            return
        r0 = (self.next_row // p + pr).astype(np.float64) * p
        c0 = pc.astype(np.float64) * p
        corners = np.stack(
            [self._xy(c0 + dc, r0 + dr) for dc, dr in ((0, 0), (p, 0), (p, p), (0, p))], axis=1
        )
        cx, cy = self._xy(c0 + p / 2, r0 + p / 2).T
        self.bounds = [
            min(self.bounds[0], float(corners[..., 0].min())),
            min(self.bounds[1], float(corners[..., 1].min())),
            max(self.bounds[2], float(corners[..., 0].max())),
            max(self.bounds[3], float(corners[..., 1].max())),
        ]
        vectors = means[:, pr, pc].T.astype(np.float32)
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), k).cast(
            pa.list_(pa.float32())
        )
        table = pa.Table.from_arrays(
            [
                pa.array(polygons_wkb(corners), pa.binary()),
                pa.array(cx),
                pa.array(cy),
                pa.array(self.next_row // p + pr, pa.int32()),
                pa.array(pc, pa.int32()),
                embedding,
            ],
            schema=self.schema,
        )
        self.writer.write_table(table)
        self.rows += len(pr)
        self.next_row += n

    def _xy(self, col: npt.NDArray[np.float64], row: npt.NDArray[np.float64]) -> Any:
        a, b, c, d, e, f = (self.transform[i] for i in range(6))
        return np.stack([a * col + b * row + c, d * col + e * row + f], axis=-1)

    def close(self) -> None:
        """Write the ``geo`` and provenance metadata and close the file."""
        bbox = self.bounds if self.rows else [0.0, 0.0, 0.0, 0.0]
        self.writer.add_key_value_metadata(
            {"geo": json.dumps(geo_metadata(self.crs, bbox)), **self.provenance}
        )
        self.writer.close()

    def abort(self) -> None:
        """Close the file after a failure (the caller removes it)."""
        self.writer.close()


def write_patch_table(
    path: Any, table_args: dict[str, Any], fill: Any, wrap: Any = None
) -> tuple[Any, int]:
    """Write a GeoParquet patch table whose level grid ``fill`` writes into a sink.

    Args:
        path: the ``.parquet`` file; written under a temporary name and renamed when whole.
        table_args: :class:`PatchTable`'s arguments other than ``path``.
        fill: writes every level pixel into the :class:`PatchTable` it is given; its result
            is returned.
        wrap: turns the table into the sink ``fill`` gets (e.g. one that also keeps a copy).

    Returns:
        What ``fill`` returned, and the number of rows written.
    """
    from eosfm_cli.io import atomic_path

    with atomic_path(path) as tmp:
        table = PatchTable(tmp, **table_args)
        try:
            result = fill(wrap(table) if wrap is not None else table)
        except BaseException:
            table.abort()
            raise
        table.close()
    return result, table.rows


def check_patch(height: int, width: int, patch: int | None) -> int:
    """The patch side: ``patch`` if it divides both sides of the level grid, else an error.

    Without ``patch``, the largest side up to 8 that divides both is chosen.

    Raises:
        ProfileError: when ``patch`` is below 1 or does not divide the grid.
    """
    import math

    from eosfm_cli.errors import ProfileError

    common = math.gcd(height, width)
    fits = [p for p in range(1, min(common, 64) + 1) if common % p == 0]
    if patch is None:
        return max(p for p in fits if p <= 8)
    if patch < 1 or height % patch or width % patch:
        raise ProfileError(
            f"a patch of {patch} level pixels does not divide the level's {width} x {height} grid",
            where="`patch=`",
            hint=f"use one of {', '.join(map(str, fits))}, or another --level",
        )
    return patch
