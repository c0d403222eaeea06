"""A prediction's files: a map or vectors and a preview, each written whole or not at all.

Each file is written under a temporary name and renamed once complete
(:func:`eosfm_cli.io.atomic_path`), the preview last, so a failed run leaves nothing partial.
The preview is sampled while the raster is processed (:class:`eosfm_cli.viz.previews.Quicklook`),
so no second pass over the files is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eosfm_cli.console import count_progress
from eosfm_cli.inference.boxes import Boxes, detect_tiles
from eosfm_cli.inference.dense import OutputSpec, TileFn, output_profile, run_tiles
from eosfm_cli.inference.heads import head_tile_fn
from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.reading import raster_env
from eosfm_cli.inference.tiling import TileGrid, TileStats
from eosfm_cli.inference.vectors import write_vectors
from eosfm_cli.io import atomic_path
from eosfm_cli.viz.palette import geotiff_colormap
from eosfm_cli.viz.previews import Quicklook, write_box_preview, write_preview

if TYPE_CHECKING:
    import torch

    from eosfm_cli.models.generalist import Generalist

#: Boxes drawn on the preview score at least this (every box is written to the vectors).
PREVIEW_MIN_SCORE = 0.5


@dataclass(frozen=True)
class TilePass:
    """How a prediction runs the model over the raster's tiles.

    Attributes:
        grid: the tiles.
        batch_size: tiles per forward pass.
        device: where the model runs.
    """

    grid: TileGrid
    batch_size: int
    device: torch.device


def tile_progress(total: int) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    """A transient progress bar over ``total`` tiles (silent with ``--quiet``).

    Returns:
        A context yielding a callback that advances the bar by a number of tiles.
    """
    return count_progress("tiles", total)


def write_map(
    model: Generalist,
    source: RasterSource,
    spec: OutputSpec,
    out_path: Path,
    preview_path: Path,
    tiles: TilePass,
    classes: Sequence[str],
    tile_fn: TileFn | None = None,
) -> TileStats:
    """Predict the raster with a dense or pooled head into a GeoTIFF map and its preview.

    Args:
        model: the generalist, in eval mode, on ``device``.
        source: the input raster.
        spec: the map to write (see :func:`eosfm_cli.inference.heads.head_output`).
        out_path: the GeoTIFF, in the input's CRS and transform.
        preview_path: the PNG: the input's quicklook beside the colour-coded prediction.
        tiles: the tiles, and how they are run.
        classes: class names (band descriptions, a tag and the colormap of a class map).
        tile_fn: the per-tile function (default: ``model`` in PyTorch on ``tiles.device``;
            an exported graph on another runtime gives its own).

    Returns:
        Tile counts and the time taken.
    """
    import rasterio

    look = Quicklook.create(source.height, source.width, model.cfg.input_bands)
    grid = tiles.grid
    with atomic_path(out_path) as tmp, raster_env(), tile_progress(grid.n_tiles) as advance:
        with rasterio.open(tmp, "w", **output_profile(source, spec)) as dst:
            dst.descriptions = tuple(spec.names)
            dst.update_tags(eosfm_head=model.cfg.task, classes=",".join(classes))
            if spec.kind == "classes" and spec.dtype == "uint8" and classes:
                dst.write_colormap(1, geotiff_colormap(len(classes)))
            stats = run_tiles(
                tile_fn or head_tile_fn(model, tiles.device),
                source,
                dst,
                spec,
                tile=grid.tile,
                overlap=grid.overlap,
                batch_size=tiles.batch_size,
                on_input=look.add_input,
                on_rows=look.add_prediction,
                on_tiles=advance,
            )
        write_preview(preview_path, look, model.cfg.task, classes)
    return stats


def write_detections(
    model: Generalist,
    source: RasterSource,
    out_path: Path,
    preview_path: Path,
    tiles: TilePass,
    classes: Sequence[str],
) -> tuple[Boxes, TileStats]:
    """Detect objects over the raster; write them as vectors, and their preview.

    Args:
        model: the generalist with a detection head, in eval mode, on ``device``.
        source: the input raster.
        out_path: the ``.gpkg`` or ``.geojson`` file (see :mod:`eosfm_cli.inference.vectors`).
        preview_path: the PNG: the boxes scoring at least 0.5 over the input's quicklook.
        tiles: the tiles, and how they are run.
        classes: class names, written with each box.

    Returns:
        The detections (every one the detector returns) and tile counts.
    """
    look = Quicklook.create(source.height, source.width, model.cfg.input_bands)
    with raster_env():
        with tile_progress(tiles.grid.n_tiles) as advance:
            det, stats = detect_tiles(
                model,
                source,
                look,
                tile=tiles.grid.tile,
                overlap=tiles.grid.overlap,
                batch_size=tiles.batch_size,
                device=tiles.device,
                on_tiles=advance,
            )
        with atomic_path(out_path) as tmp:
            write_vectors(tmp, det, source, classes)
            write_box_preview(
                preview_path, look, det.boxes, det.scores, det.labels, classes, PREVIEW_MIN_SCORE
            )
    return det, stats
