"""CV4A Kenya Crop Type (Radiant Earth, ICLR 2020 CV4A workshop): crop type per field pixel.

Release layout (torchgeo's :class:`~torchgeo.datasets.CV4AKenyaCropType`, synced from
``radiantearth/kenya-crop-challenge``)::

    <root>/FieldIds.csv
    <root>/data/<tile>/<tile>_label.tif          crop id per pixel (0 = none or competition test)
    <root>/data/<tile>/<tile>_field_id.tif       field id per pixel (0 = no field)
    <root>/data/<tile>/<date>/<tile>_<band>_<date>.tif
        bands B01..B08, B8A, B09, B11, B12 (Sentinel-2 L2A on a 10 m grid) and CLD (cloud
        probability); 13 dates from 20190606 to 20191103; tiles 0..3 of 3035x2016 px

Crop ids 1..7 are the seven classes of the dataset's documentation, in the registry's order,
returned 0..6.
One date is read (``options["date"]``, default ``20190606``), band values as stored.

Labelled pixels only. Fields with crop id 0 are the competition's test fields, whose labels were
never released; they and every pixel outside a field get ``request.ignore_index`` (-1 when
unset). Train, val and test are a seeded split of the **labelled fields** (``options
["val_fraction"]`` 0.1, ``options["test_fraction"]`` 0.2): a pixel counts only in its field's
split, and a chip with no labelled pixel of its split is dropped, so no split is ever evaluated
on unlabelled chips.

Windows. torchgeo's class reads all 13 dates x 13 bands of a tile whole (about 4 GB as float32)
and caches them; this module reads only the requested bands of one date through rasterio
windows: seeded random crops of ``patch_size`` for training (``options["crops_per_image"]``
per tile, default as many as the labelled tiles of the grid), systematic tiles for val and test.
The small label and field-id rasters are read whole once per build to choose the chips.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import (
    DatasetRequest,
    band_indices,
    check_class_count,
    require_dir,
    require_file,
)
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import check_options, fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import PatchWindow, tile_windows
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("kenya_croptype")

#: The Sentinel-2 bands of each date (CLD, the cloud probability, is not a catalog band).
FILE_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip
DATES: tuple[str, ...] = (
    "20190606", "20190701", "20190706", "20190711", "20190721", "20190805", "20190815",
    "20190825", "20190909", "20190919", "20190924", "20191004", "20191103",
)  # fmt: skip
DEFAULT_DATE = DATES[0]
OPTIONS = ("date", "val_fraction", "test_fraction", "crops_per_image")


def _read(path: Path, box: PatchWindow | None = None, band: int = 1) -> np.ndarray[Any, Any]:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as src:
            return src.read(band, window=box.to_rasterio() if box else None)
    except RasterioIOError as err:
        raise DataError(
            f"cannot read the Kenya crop type file ({err})",
            where=str(path),
            hint=f"expected {SPEC.layout}",
        ) from err


class KenyaTile:
    """The files of one tile for one date.

    Args:
        root: the dataset root.
        tile: the tile name (``0``..``3``).
        date: the date read (``YYYYMMDD``).
    """

    def __init__(self, root: Path, tile: str, date: str) -> None:
        self.folder = root / "data" / tile
        self.tile = tile
        self.date = date

    @property
    def label(self) -> Path:
        """The crop-id raster."""
        return self.folder / f"{self.tile}_label.tif"

    @property
    def field_id(self) -> Path:
        """The field-id raster."""
        return self.folder / f"{self.tile}_field_id.tif"

    def band(self, name: str) -> Path:
        """The GeoTIFF of one band at this tile's date."""
        return self.folder / self.date / f"{self.tile}_{name}_{self.date}.tif"


def index_tiles(root: Path, date: str, bands: tuple[str, ...]) -> list[KenyaTile]:
    """List the tiles that hold labels, checking the requested bands' files exist.

    Raises:
        DataError: when ``data/`` holds no tile, or a tile lacks a file.
    """
    data = require_dir(root / "data", SPEC.layout)
    tiles = []
    for folder in sorted((p for p in data.iterdir() if p.is_dir()), key=lambda p: p.name):
        tile = KenyaTile(root, folder.name, date)
        if not tile.label.is_file():
            continue
        require_file(tile.field_id, SPEC.layout)
        for band in dict.fromkeys(bands):
            require_file(tile.band(band), SPEC.layout)
        tiles.append(tile)
    if not tiles:
        raise DataError(
            "no tile with a label raster found", where=str(data), hint=f"expected {SPEC.layout}"
        )
    return tiles


def labelled_fields(tile: KenyaTile) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Read a tile's crop ids and field ids (whole: two single-band rasters)."""
    label = _read(tile.label).astype(np.int64)
    fields = _read(tile.field_id).astype(np.int64)
    if label.shape != fields.shape:
        raise DataError(
            f"label {label.shape} and field-id {fields.shape} rasters differ in size",
            where=str(tile.field_id),
            hint="re-download the tile",
        )
    return label, fields


def crop_mask(
    label: np.ndarray[Any, Any],
    fields: np.ndarray[Any, Any],
    keep: np.ndarray[Any, Any],
    ignore_index: int,
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Class indices 0..6 on pixels of the ``keep`` fields with a crop id, else ``ignore_index``."""
    valid = (label >= 1) & (label <= len(SPEC.classes)) & np.isin(fields, keep)
    return np.where(valid, label - 1, ignore_index).astype(np.int64)


class KenyaCropTypeSplit(Dataset[dict[str, Tensor]]):
    """Windows of the Kenya tiles for one split.

    Args:
        samples: ``(tile, window)`` pairs.
        fields: per tile name, the field ids of this split.
        bands: the requested bands (repeats allowed).
        ignore_index: mask value of pixels not labelled in this split.
    """

    def __init__(
        self,
        samples: list[tuple[KenyaTile, PatchWindow]],
        fields: Mapping[str, np.ndarray[Any, Any]],
        bands: tuple[str, ...],
        ignore_index: int,
    ) -> None:
        self.samples = samples
        self.fields = dict(fields)
        self.bands = bands
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        """Return the number of chips."""
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, h, w), "mask": int64 (h, w)}``."""
        tile, box = self.samples[index]
        layers = {b: _read(tile.band(b), box) for b in dict.fromkeys(self.bands)}
        image = np.stack([layers[b] for b in self.bands]).astype(np.float32)
        label = _read(tile.label, box).astype(np.int64)
        fields = _read(tile.field_id, box).astype(np.int64)
        mask = crop_mask(label, fields, self.fields[tile.tile], self.ignore_index)
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}


def _counter(labelled: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    table = np.zeros((labelled.shape[0] + 1, labelled.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = labelled.astype(np.int64).cumsum(0).cumsum(1)
    return table


def _count(table: np.ndarray[Any, Any], box: PatchWindow) -> int:
    r0, c0, r1, c1 = box.row, box.col, box.row + box.height, box.col + box.width
    return int(table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0])


def choose_chips(
    labelled: np.ndarray[Any, Any],
    size: int | None,
    split: str,
    rng: random.Random,
    crops: int | None,
) -> list[PatchWindow]:
    """Pick the chips of one tile that hold at least one labelled pixel of the split.

    Val and test take the systematic tiles; train draws seeded random crops (``crops`` of them,
    default as many as the labelled grid tiles), redrawing crops that hold no labelled pixel.
    """
    height, width = labelled.shape
    table = _counter(labelled)
    grid = [b for b in tile_windows(height, width, size) if _count(table, b) > 0]
    if split != "train" or size is None or not grid or (height <= size and width <= size):
        return grid
    wanted = len(grid) if crops is None else crops
    th, tw = min(size, height), min(size, width)
    boxes: list[PatchWindow] = []
    for _ in range(wanted * 100):
        if len(boxes) == wanted:
            break
        box = PatchWindow(rng.randint(0, height - th), rng.randint(0, width - tw), th, tw)
        if _count(table, box) > 0:
            boxes.append(box)
    return boxes


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one split of CV4A Kenya Crop Type.

    Args:
        request: the dataset request; ``bands`` among the 12 Sentinel-2 bands. ``options``:
            ``date`` (``20190606``), ``val_fraction`` (0.1), ``test_fraction`` (0.2) of the
            labelled fields, ``crops_per_image`` (training crops per tile).

    Returns:
        A dataset of ``{"image": float32 (C, h, w), "mask": int64 (h, w)}``.

    Raises:
        DataError: when the root, a tile's files or the date are missing, or no chip of the
            split holds a labelled pixel.
        BandError: when a requested band is not one of the 12 bands.
    """
    where = f"dataset {request.name or 'kenya_croptype'}"
    band_indices(request.bands, FILE_BANDS, where)
    check_options(request.options, OPTIONS, where)
    check_class_count(request, SPEC.classes, "CV4A Kenya", where, kind="crop")
    date = str(request.options.get("date", DEFAULT_DATE))
    if date not in DATES:
        raise DataError(
            f"unknown date {date!r}",
            where="dataset.options.date",
            hint=f"use one of {', '.join(DATES)}",
        )
    fractions = {
        "test": fraction_option(request.options, "test_fraction", 0.2, allow_zero=True),
        "val": fraction_option(request.options, "val_fraction", 0.1, allow_zero=True),
    }
    crops = int_option(request.options, "crops_per_image", None)
    ignore = -1 if request.ignore_index is None else int(request.ignore_index)
    root = require_dir(Path(request.root), SPEC.layout)
    tiles = index_tiles(root, date, tuple(request.bands))

    rasters = {t.tile: labelled_fields(t) for t in tiles}
    keys: list[tuple[str, int]] = []
    for name, (label, fields) in rasters.items():
        ids = np.unique(fields[(label >= 1) & (label <= len(SPEC.classes)) & (fields > 0)])
        keys.extend((name, int(i)) for i in ids)
    chosen = split_keys(keys, request.seed, fractions)[request.split]
    split_fields = {
        t.tile: np.array(sorted(i for n, i in chosen if n == t.tile), dtype=np.int64) for t in tiles
    }

    rng = random.Random(request.seed)
    samples = []
    for tile in tiles:
        label, fields = rasters[tile.tile]
        labelled = crop_mask(label, fields, split_fields[tile.tile], -1) >= 0
        for box in choose_chips(labelled, request.patch_size, request.split, rng, crops):
            samples.append((tile, box))
    if not samples:
        raise DataError(
            f"no chip of the {request.split} split holds a labelled pixel ({len(keys)} fields)",
            where=str(root / "data"),
            hint="check the label rasters, or change options.val_fraction / test_fraction",
        )
    return KenyaCropTypeSplit(samples, split_fields, tuple(request.bands), ignore)
