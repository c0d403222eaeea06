"""`eosfm predict` with a detection head: boxes over a GeoTIFF of any size, as vectors.

**Tiling** is that of :mod:`eosfm_cli.stages.predict` (overlapping tiles, the last one shifted
back onto the raster's edge, reflection padding only for a raster smaller than one tile).

**Which tile reports an object.** Along each axis every pixel belongs to the tile whose centre
is nearest (the boundaries are half-way between neighbouring tile centres). A tile keeps a
detection only when the box's centre lies in the part of the raster it owns, so an object seen
whole by two overlapping tiles is reported once, by the tile that sees it furthest from its
edge. Boxes centred in reflection padding or on nodata pixels are dropped, and boxes are
clipped to the raster. A final class-wise non-maximum suppression (IoU 0.5) removes the
duplicates left by objects larger than the overlap.

**Outputs.** ``predictions/<raster stem>-<run>.gpkg`` (or ``--output``; a ``.geojson`` name
writes GeoJSON): one rectangle per detection in the raster's CRS, with fields ``class``,
``class_index``, ``score`` and the pixel box (``col_min``, ``row_min``, ``col_max``,
``row_max``). Every detection the detector returns (score >= 0.05) is written; filter on
``score``. ``<name>.png`` beside it draws the boxes scoring at least 0.5 over a quicklook of the
input. Both are written under temporary names and renamed at the end.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eosfm_cli.console import Verbosity, console
from eosfm_cli.errors import ProfileError
from eosfm_cli.stages.predict import (
    GDAL_CACHE_MB,
    FloatArray,
    PredictStats,
    Quicklook,
    RasterSource,
    TileGrid,
    _stretch,
    class_colours,
    pad_reflect,
    read_tile,
)

if TYPE_CHECKING:
    import torch

    from eosfm_cli.models.generalist import Generalist

#: IoU above which two boxes of one class are the same object (final suppression).
NMS_IOU = 0.5
#: Boxes drawn on the preview score at least this.
PREVIEW_MIN_SCORE = 0.5
#: Vector formats by suffix.
DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON"}


@dataclass
class Boxes:
    """Detections in raster pixel coordinates.

    Attributes:
        boxes: ``(N, 4)`` xyxy, in pixels of the whole raster.
        scores: ``(N,)``.
        labels: ``(N,)`` 0-based class indices.
    """

    boxes: FloatArray
    scores: FloatArray
    labels: np.ndarray

    @classmethod
    def empty(cls) -> Boxes:
        """No detection."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Boxes]) -> Boxes:
        """All detections of several parts."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]).astype(np.float32),
            np.concatenate([p.scores for p in parts]).astype(np.float32),
            np.concatenate([p.labels for p in parts]).astype(np.int64),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, keep: np.ndarray) -> Boxes:
        """The detections at ``keep`` (indices or a mask)."""
        return Boxes(self.boxes[keep], self.scores[keep], self.labels[keep])


def ownership(origins: Sequence[int], tile: int, size: int) -> list[tuple[float, float]]:
    """The half-open span of pixel coordinates each tile owns along one axis.

    Boundaries lie half-way between neighbouring tile centres; the first and last spans reach
    the raster's edges.

    Args:
        origins: tile offsets along the axis, increasing.
        tile: tile side.
        size: raster size along the axis.
    """
    centres = [o + tile / 2 for o in origins]
    cuts = [(a + b) / 2 for a, b in itertools.pairwise(centres)]
    lows = [0.0, *cuts]
    highs = [*cuts, float(size)]
    return list(zip(lows, highs, strict=True))


def keep_owned(
    det: Boxes,
    x: int,
    y: int,
    valid: np.ndarray,
    span_x: tuple[float, float],
    span_y: tuple[float, float],
    height: int,
    width: int,
) -> Boxes:
    """Move one tile's detections into raster pixels and keep those the tile owns.

    Args:
        det: the tile's detections, in tile pixels.
        x: the tile's column offset.
        y: the tile's row offset.
        valid: ``(h, w)`` pixels of the tile that hold data (its real, unpadded extent).
        span_x: the columns this tile owns (see :func:`ownership`).
        span_y: the rows this tile owns.
        height: raster rows.
        width: raster columns.
    """
    if not len(det):
        return det
    h, w = valid.shape
    cx = (det.boxes[:, 0] + det.boxes[:, 2]) / 2
    cy = (det.boxes[:, 1] + det.boxes[:, 3]) / 2
    inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    ci = np.clip(cx.astype(np.int64), 0, w - 1)
    ri = np.clip(cy.astype(np.int64), 0, h - 1)
    inside &= valid[ri, ci]
    gx, gy = cx + x, cy + y
    inside &= (gx >= span_x[0]) & (gx < span_x[1]) & (gy >= span_y[0]) & (gy < span_y[1])
    out = det.select(inside)
    boxes = out.boxes + np.array([x, y, x, y], np.float32)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    return Boxes(boxes, out.scores, out.labels)


def suppress(det: Boxes, iou: float = NMS_IOU) -> Boxes:
    """Class-wise non-maximum suppression, best scores first."""
    if len(det) < 2:
        return det
    import torch
    from torchvision.ops import batched_nms

    keep = batched_nms(
        torch.from_numpy(det.boxes), torch.from_numpy(det.scores), torch.from_numpy(det.labels), iou
    ).numpy()
    return det.select(keep)


def detect_tiles(
    model: Generalist,
    source: RasterSource,
    look: Quicklook,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    device: torch.device,
    on_tiles: Any = None,
) -> tuple[Boxes, PredictStats]:
    """Run the detector over every tile of the raster.

    Args:
        model: the generalist with a detection head, in eval mode, on ``device``.
        source: the input raster.
        look: the preview's quicklook, filled with the input while tiles are read.
        tile: tile side.
        overlap: overlap between tiles.
        batch_size: tiles per forward pass.
        device: where the model runs.
        on_tiles: called with the number of tiles just finished.

    Returns:
        The merged detections in raster pixels, and tile counts.
    """
    import rasterio
    import torch

    grid = TileGrid(source.height, source.width, tile, overlap)
    own_y = ownership(grid.rows, tile, source.height)
    own_x = ownership(grid.cols, tile, source.width)
    stats = PredictStats()
    parts: list[Boxes] = []
    t0 = time.perf_counter()

    def run_batch(items: list[tuple[FloatArray, np.ndarray, int, int, int, int]]) -> None:
        images = [torch.from_numpy(pad_reflect(t, tile)).to(device) for t, *_ in items]
        with torch.inference_mode():
            found = model.detect(images)
        for (_, valid, x, y, i, j), d in zip(items, found, strict=True):
            det = Boxes(
                d["boxes"].float().cpu().numpy(),
                d["scores"].float().cpu().numpy(),
                d["labels"].cpu().numpy().astype(np.int64),
            )
            parts.append(
                keep_owned(det, x, y, valid, own_x[j], own_y[i], source.height, source.width)
            )
        stats.tiles += len(items)
        if on_tiles is not None:
            on_tiles(len(items))

    pending: list[tuple[FloatArray, np.ndarray, int, int, int, int]] = []
    with rasterio.open(source.path) as src:
        for i, y in enumerate(grid.rows):
            for j, x in enumerate(grid.cols):
                got = read_tile(src, source, look, y, x, tile, stats, on_tiles)
                if got is None:
                    continue
                pending.append((*got, x, y, i, j))
                if len(pending) == batch_size:
                    run_batch(pending)
                    pending = []
        if pending:
            run_batch(pending)
    stats.seconds = time.perf_counter() - t0
    return suppress(Boxes.concat(parts)), stats


def box_polygons(boxes: FloatArray, transform: Any) -> np.ndarray:
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
    """Write the detections as polygons in the raster's CRS (GeoPackage or GeoJSON)."""
    from pyogrio.raw import write

    driver = DRIVERS[path.suffix.lower()]
    transform = source.profile.get("transform")
    if transform is None:
        from affine import Affine

        transform = Affine.identity()
    crs = source.profile.get("crs")
    names = np.array([classes[int(k)] if 0 <= k < len(classes) else str(k) for k in det.labels])
    fields = ["class", "class_index", "score", "col_min", "row_min", "col_max", "row_max"]
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
            fields,
            layer="detections",
            driver=driver,
            geometry_type="Polygon",
            crs=crs.to_wkt() if crs is not None else None,
        )


def write_box_preview(
    path: Path, look: Quicklook, det: Boxes, classes: Sequence[str], min_score: float
) -> None:
    """The input quicklook with the detections scoring at least ``min_score``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    colours = class_colours(max(len(classes), 1))
    shown = det.select(det.scores >= min_score)
    fig, ax = plt.subplots(1, 1, figsize=(7, 6), dpi=100)
    try:
        ax.imshow(_stretch(look.rgb), interpolation="nearest")
        s = look.step
        for (x0, y0, x1, y1), label in zip(shown.boxes, shown.labels, strict=True):
            ax.add_patch(
                Rectangle(
                    (x0 / s - 0.5, y0 / s - 0.5),
                    (x1 - x0) / s,
                    (y1 - y0) / s,
                    fill=False,
                    lw=1.0,
                    edgecolor=colours[int(label) % len(colours)],
                )
            )
        present = sorted({int(k) for k in shown.labels})
        if present:
            ax.legend(
                handles=[
                    Patch(color=colours[k % len(colours)], label=classes[k] if classes else str(k))
                    for k in present
                ],
                loc="upper left",
                bbox_to_anchor=(1.02, 1.0),
                fontsize="small",
                frameon=False,
            )
        ax.set_title(f"{len(shown)} detections with score >= {min_score} ({len(det)} in all)")
        ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)


def vector_output(path: Path) -> Path:
    """The detection output path: ``.tif`` becomes ``.gpkg``; other suffixes are refused."""
    if path.suffix.lower() in DRIVERS:
        return path
    if path.suffix.lower() in (".tif", ".tiff", ""):
        return path.with_suffix(".gpkg")
    raise ProfileError(
        f"a detection head writes boxes as vectors, not {path.suffix!r}",
        where="--output",
        hint="name the output .gpkg or .geojson",
    )


def write_detections(
    model: Generalist,
    source: RasterSource,
    out_path: Path,
    preview_path: Path,
    grid: TileGrid,
    batch_size: int,
    device: torch.device,
    classes: Sequence[str],
) -> tuple[Boxes, PredictStats]:
    """Detect, then write the vectors and the preview under temporary names; rename both."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from eosfm_cli.io import atomic_path

    look = Quicklook.create(source.height, source.width, model.cfg.input_bands)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=Verbosity.quiet,
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with progress:
            bar = progress.add_task("tiles", total=grid.n_tiles)
            det, stats = detect_tiles(
                model,
                source,
                look,
                tile=grid.tile,
                overlap=grid.overlap,
                batch_size=batch_size,
                device=device,
                on_tiles=lambda n: progress.advance(bar, n),
            )
        tmp_vec = stack.enter_context(atomic_path(out_path))
        tmp_png = stack.enter_context(atomic_path(preview_path))
        write_vectors(tmp_vec, det, source, classes)
        write_box_preview(tmp_png, look, det, classes, PREVIEW_MIN_SCORE)
    return det, stats
