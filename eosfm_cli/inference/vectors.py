"""Detections written as vectors: one rectangle per box in the raster's CRS.

A GeoPackage (``.gpkg``) or GeoJSON (``.geojson``) layer ``detections`` with fields ``class``,
``class_index``, ``score`` and the pixel box (``col_min``, ``row_min``, ``col_max``,
``row_max``). Polygons are written as WKB built here, so no geometry library is needed.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eosfm_cli.inference.boxes import Boxes
from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.tiling import FloatArray

#: Vector formats by suffix.
DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON"}
#: The fields of every detection, in order.
FIELDS = ["class", "class_index", "score", "col_min", "row_min", "col_max", "row_max"]


def box_polygons(boxes: FloatArray, transform: Any) -> np.ndarray:  # type: ignore[type-arg]
    """Rectangles in map coordinates as WKB polygons (an object array of bytes).

    Args:
        boxes: ``(N, 4)`` xyxy pixel boxes.
        transform: the raster's affine transform (pixel corner to map coordinates).
    """
    out = np.empty(len(boxes), dtype=object)
    for n, (x0, y0, x1, y1) in enumerate(boxes.astype(np.float64)):
        ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        coords = [transform @ (c, r) for c, r in ring]
        # Little-endian WKB: byte order, type 3 (Polygon), one ring of five points.
        out[n] = struct.pack("<BIII", 1, 3, 1, 5) + b"".join(
            struct.pack("<dd", float(mx), float(my)) for mx, my in coords
        )
    return out


def write_vectors(path: Path, det: Boxes, source: RasterSource, classes: Sequence[str]) -> None:
    """Write the detections as polygons in the raster's CRS (GeoPackage or GeoJSON).

    Args:
        path: the file; its suffix (a key of :data:`DRIVERS`) picks the format.
        det: the detections, in raster pixels.
        source: the raster they were found in (its CRS and transform).
        classes: class names.
    """
    from pyogrio.raw import write

    driver = DRIVERS[path.suffix.lower()]
    transform = source.profile.get("transform")
    if transform is None:
        from affine import Affine

        transform = Affine.identity()
    crs = source.profile.get("crs")
    names = np.array([classes[int(k)] if 0 <= k < len(classes) else str(k) for k in det.labels])
    data = [
        names.astype(object),
        det.labels.astype(np.int32),
        det.scores.astype(np.float32),
        *(det.boxes[:, c].astype(np.float64) for c in range(4)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GeoJSON in a non-WGS84 CRS
        write(
            str(path),
            box_polygons(det.boxes, transform),
            data,
            FIELDS,
            layer="detections",
            driver=driver,
            geometry_type="Polygon",
            crs=crs.to_wkt() if crs is not None else None,
        )
