"""Open-Canopy (Fogel et al., 2024): canopy height regression from SPOT 6/7 images at 1.5 m.

torchgeo has no Open-Canopy class. Release layout (HuggingFace ``AI4Forest/Open-Canopy``, read
as the authors' own data module and ``examples/visualize_data.py`` read it)::

    <root>/canopy_height/geometries.geojson    areas, with properties ``split`` (train, val,
                                               test) and ``lidar_year``; Lambert-93 (EPSG:2154)
    <root>/canopy_height/<year>/spot.vrt       mosaic of spot/*.tif: 4 bands uint8, 1.5 m
    <root>/canopy_height/<year>/lidar.vrt      mosaic of lidar/*.tif: 1 band uint16, canopy
                                               height in decimetres (the authors' CHM x 10)
    <root>/canopy_height/<year>/spot/, lidar/, lidar_classification/   the tiles (not listed)

``<root>`` may also be the ``canopy_height`` folder itself. The SPOT bands are taken to be in the
order of SPOT 6/7 ortho products, red, green, blue, NIR (catalog ``SPOT_B2, SPOT_B1, SPOT_B0,
SPOT_B3``): the release does not name them, and the authors' viewer shows the first three as RGB.
``options["spot_bands"]`` overrides that order. The registry feeds SPOT_IRRG (NIR, red, green).

Samples. Each geometry of the split is read from the VRTs of its ``lidar_year`` by windows only:
``options["crops_per_image"]`` (8) random ``patch_size`` crops per training geometry, drawn once
from ``request.seed``, and a grid of tiles covering every validation and test geometry (the
release's own ``val`` and ``test`` areas). The image is the raw 8-bit SPOT values, float32; the
mask is the canopy height in metres (decimetres x ``options["height_scale"]``, 0.1), float32.
Pixels without a height (the LiDAR raster's nodata, outside the LiDAR mosaic, outside the
geometry, or where every SPOT band is 0, SPOT's own nodata) are NaN, which the regression task
leaves out of its loss and metrics. When the LiDAR grid differs from the SPOT grid, the LiDAR
window is resampled (nearest) onto the SPOT window.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir, require_file
from eosfm_cli.data.options import int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import PatchWindow, plan_windows
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("opencanopy")

#: Band order of the SPOT images (red, green, blue, NIR), as catalog names.
FILE_BANDS: tuple[str, ...] = ("SPOT_B2", "SPOT_B1", "SPOT_B0", "SPOT_B3")
FOLDER = "canopy_height"
GEOMETRIES = "geometries.geojson"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Area:
    """One geometry of the release: its year, GeoJSON geometry and pixel window in spot.vrt."""

    index: int
    year: int
    geometry: dict[str, Any]
    window: PatchWindow


def dataset_folder(root: Path) -> Path:
    """Return the ``canopy_height`` folder under ``root`` (or ``root`` itself).

    Raises:
        DataError: when neither holds ``geometries.geojson``.
    """
    require_dir(root, SPEC.layout)
    for folder in (root / FOLDER, root):
        if (folder / GEOMETRIES).is_file():
            return folder
    require_file(root / FOLDER / GEOMETRIES, SPEC.layout)
    return root  # unreachable: require_file raised


def read_geometries(path: Path) -> list[dict[str, Any]]:
    """Read the features of ``geometries.geojson``.

    Raises:
        DataError: when the file is not a GeoJSON FeatureCollection with ``split`` and
            ``lidar_year`` properties.
    """
    try:
        data = json.loads(path.read_text())
        features: list[dict[str, Any]] = list(data["features"])
        for feature in features:
            props = feature["properties"]
            props["split"], props["lidar_year"] = str(props["split"]), int(props["lidar_year"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(
            f"unreadable geometries file ({err})",
            where=str(path),
            hint="expected a GeoJSON FeatureCollection with split and lidar_year properties",
        ) from err
    return features


def _bounds(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    """Return ``(west, south, east, north)`` of a GeoJSON geometry."""
    points = np.array(list(_points(geometry["coordinates"])), dtype=np.float64)
    return (
        float(points[:, 0].min()),
        float(points[:, 1].min()),
        float(points[:, 0].max()),
        float(points[:, 1].max()),
    )


def _points(coords: Any) -> Any:
    if isinstance(coords[0], int | float):
        yield coords[:2]
        return
    for part in coords:
        yield from _points(part)


def geometry_window(src: Any, geometry: dict[str, Any]) -> PatchWindow | None:
    """Return the pixel window of a geometry's bounds in ``src``, clipped to the raster."""
    from rasterio.windows import from_bounds

    win = from_bounds(*_bounds(geometry), transform=src.transform)
    row0 = max(0, round(win.row_off))
    col0 = max(0, round(win.col_off))
    row1 = min(src.height, round(win.row_off + win.height))
    col1 = min(src.width, round(win.col_off + win.width))
    if row1 <= row0 or col1 <= col0:
        return None
    return PatchWindow(row0, col0, row1 - row0, col1 - col0)


def _open(path: Path) -> Any:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        return rasterio.open(path)
    except RasterioIOError as err:
        raise DataError(
            f"unreadable raster ({err})", where=str(path), hint=f"expected {SPEC.layout}"
        ) from err


class OpenCanopySplit(Dataset[dict[str, Tensor]]):
    """Windows of the SPOT and LiDAR mosaics over the geometries of one split.

    Args:
        folder: the ``canopy_height`` folder.
        areas: the geometries of the split.
        bands: 1-based SPOT bands to return, in order (repeats allowed).
        windows: ``(area index, window in spot.vrt)`` of every sample.
        height_scale: factor from the LiDAR values to metres.
    """

    def __init__(
        self,
        folder: Path,
        areas: Sequence[Area],
        bands: Sequence[int],
        windows: Sequence[tuple[int, PatchWindow]],
        height_scale: float,
    ) -> None:
        self.folder = folder
        self.areas = list(areas)
        self.bands = list(bands)
        self.windows = list(windows)
        self.height_scale = height_scale

    def __len__(self) -> int:
        """Return the number of windows."""
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, h, w) SPOT DNs, "mask": float32 (h, w) metres}``."""
        from rasterio.enums import Resampling
        from rasterio.features import geometry_mask
        from rasterio.windows import Window, from_bounds
        from rasterio.windows import bounds as window_bounds
        from rasterio.windows import transform as window_transform

        i, win = self.windows[index]
        area = self.areas[i]
        year = self.folder / str(area.year)
        window = Window(win.col, win.row, win.width, win.height)
        unique = sorted(set(self.bands))
        with _open(year / "spot.vrt") as spot:
            data = spot.read(unique, window=window)
            transform = window_transform(window, spot.transform)
            bounds = window_bounds(window, spot.transform)
        image = data[[unique.index(b) for b in self.bands]].astype(np.float32)
        with _open(year / "lidar.vrt") as lidar:
            lidar_window = from_bounds(*bounds, transform=lidar.transform)
            heights = lidar.read(
                1,
                window=lidar_window,
                out_shape=(win.height, win.width),
                boundless=True,
                masked=True,
                resampling=Resampling.nearest,
            )
        mask = np.ma.filled(heights.astype(np.float32) * np.float32(self.height_scale), np.nan)
        outside = geometry_mask(
            [area.geometry], out_shape=(win.height, win.width), transform=transform
        )
        mask[outside | (data == 0).all(axis=0)] = np.nan
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one Open-Canopy split.

    Args:
        request: the dataset request; ``request.bands`` among the four SPOT bands.
            ``options``: ``crops_per_image`` (8), ``height_scale`` (0.1), ``spot_bands`` (the
            file band order, ``[SPOT_B2, SPOT_B1, SPOT_B0, SPOT_B3]``).

    Returns:
        A dataset of ``{"image": float32 (C, P, P), "mask": float32 (P, P), NaN = no height}``.

    Raises:
        DataError: when a file is missing or unreadable, or the split holds no geometry.
        BandError: when a requested band is not a SPOT band of the files.
    """
    where = f"dataset {request.name or 'opencanopy'}"
    options = request.options
    file_bands = tuple(str(b) for b in options.get("spot_bands", FILE_BANDS))
    bands = [i + 1 for i in band_indices(request.bands, file_bands, where)]
    crops = int_option(options, "crops_per_image", SPEC.options["crops_per_image"])
    scale = options.get("height_scale", SPEC.options["height_scale"])
    if isinstance(scale, bool) or not isinstance(scale, int | float) or scale <= 0:
        raise DataError(
            f"bad value {scale!r}", where="dataset.options.height_scale", hint="use a number > 0"
        )
    patch = SPEC.crop_size(request.patch_size)
    folder = dataset_folder(Path(request.root))
    features = read_geometries(folder / GEOMETRIES)
    chosen = [f for f in features if f["properties"]["split"] == request.split]
    areas: list[Area] = []
    for year in sorted({f["properties"]["lidar_year"] for f in chosen}):
        year_dir = require_dir(folder / str(year), SPEC.layout)
        require_file(year_dir / "lidar.vrt", SPEC.layout)
        with _open(require_file(year_dir / "spot.vrt", SPEC.layout)) as spot:
            if spot.count < max(bands):
                raise DataError(
                    f"spot.vrt has {spot.count} band(s), {max(bands)} needed",
                    where=str(year_dir / "spot.vrt"),
                    hint=f"expected {SPEC.layout}",
                )
            for k, feature in enumerate(chosen):
                if feature["properties"]["lidar_year"] != year:
                    continue
                window = geometry_window(spot, feature["geometry"])
                if window is not None:
                    areas.append(Area(k, year, feature["geometry"], window))
    if not areas:
        raise DataError(
            f"no Open-Canopy geometry of the {request.split} split overlaps its SPOT mosaic",
            where=str(folder / GEOMETRIES),
            hint=f"expected {SPEC.layout}",
        )
    areas.sort(key=lambda a: a.index)
    rng = random.Random(request.seed)
    windows: list[tuple[int, PatchWindow]] = []
    for i, area in enumerate(areas):
        a = area.window
        found = plan_windows(a.height, a.width, patch, request.split, rng, crops)
        windows.extend(
            (i, PatchWindow(a.row + w.row, a.col + w.col, w.height, w.width)) for w in found
        )
    return OpenCanopySplit(folder, areas, bands, windows, float(scale))
