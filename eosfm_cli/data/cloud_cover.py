"""Cloud Cover Detection (Radiant Earth / DrivenData, 2022): binary cloud segmentation of S2 chips.

Release layout (torchgeo's :class:`~torchgeo.datasets.CloudCoverDetection`; ``train`` is the
public part, ``test`` the private one)::

    <root>/{train,test}/{train,test}_metadata.csv          first column: chip_id
    <root>/{train,test}/{train,test}_features/<chip_id>/{B02,B03,B04,B08}.tif
    <root>/{train,test}/{train,test}_labels/<chip_id>.tif

Chips are 512x512 GeoTIFFs of Sentinel-2 L2A bands (``uint16``, reflectance x 1e4), one file per
band; labels are ``uint8`` (0 no cloud, 1 cloud). The experiment feeds B08, B04, B03 (IRRG).

Splits. The release has no validation split and the test split must never validate, so
``val`` is a seeded hold-out of the train chips (``options["val_fraction"]``, 0.1 by default);
``train`` is the rest and ``test`` is the release's test part.

torchgeo's class reads the chips (after this module checks the layout, so a missing folder is a
:class:`DataError`, never a download) when whole chips are wanted. When ``patch_size`` is below
the chip size, this module reads the windows itself with rasterio, as torchgeo reads chips whole.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
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
from eosfm_cli.data.windows import PatchWindow, plan_windows
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("cloud_cover")

#: The bands of the release, one GeoTIFF each.
FILE_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
OPTIONS = ("val_fraction", "crops_per_image")


def release_split(split: str) -> str:
    """The release folder (``train`` or ``test``) that a split is drawn from."""
    return "test" if split == "test" else "train"


def chip_ids(root: Path, part: str) -> list[str]:
    """Read the chip ids listed in ``<part>/<part>_metadata.csv`` (its first column).

    Raises:
        DataError: when the file is missing or lists no chip.
    """
    path = require_file(root / part / f"{part}_metadata.csv", SPEC.layout)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    ids = [row[0].strip() for row in rows[1:] if row and row[0].strip()]
    if not ids:
        raise DataError(
            "the metadata file lists no chip", where=str(path), hint=f"expected {SPEC.layout}"
        )
    return ids


class CloudCoverWindows(Dataset[dict[str, Tensor]]):
    """Chips (or windows of chips) read with rasterio.

    Args:
        root: the dataset root.
        part: ``train`` or ``test`` (the release folder).
        samples: ``(chip_id, window)`` pairs; a ``None`` window reads the whole chip.
        bands: the bands to return, in order.
    """

    def __init__(
        self,
        root: Path,
        part: str,
        samples: Sequence[tuple[str, PatchWindow | None]],
        bands: Sequence[str],
    ) -> None:
        self.features = root / part / f"{part}_features"
        self.labels = root / part / f"{part}_labels"
        self.samples = list(samples)
        self.bands = tuple(bands)

    def __len__(self) -> int:
        """Return the number of samples."""
        return len(self.samples)

    def _read(self, path: Path, box: PatchWindow | None) -> np.ndarray[Any, Any]:
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            with rasterio.open(path) as src:
                return src.read(1, window=box.to_rasterio() if box else None)
        except RasterioIOError as err:
            raise DataError(
                "Cloud Cover file missing or unreadable",
                where=str(path),
                hint=f"expected {SPEC.layout}",
            ) from err

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, h, w) reflectance x 1e4, "mask": int64 (h, w)}``."""
        chip, box = self.samples[index]
        cache: dict[str, np.ndarray[Any, Any]] = {}
        for band in dict.fromkeys(self.bands):
            cache[band] = self._read(self.features / chip / f"{band}.tif", box)
        image = np.stack([cache[b] for b in self.bands]).astype(np.float32)
        mask = self._read(self.labels / f"{chip}.tif", box).astype(np.int64)
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}


class TorchGeoChips(Dataset[dict[str, Tensor]]):
    """Whole chips through torchgeo's class, a subset of its rows, bands selected by name.

    Args:
        inner: the torchgeo dataset, built with the distinct requested bands.
        rows: the metadata rows of this split.
        order: for each requested band, its channel in ``inner``'s output.
    """

    def __init__(self, inner: Any, rows: Sequence[int], order: Sequence[int]) -> None:
        self.inner = inner
        self.rows = list(rows)
        self.order = list(order)

    def __len__(self) -> int:
        """Return the number of chips."""
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, H, W), "mask": int64 (H, W)}``."""
        sample = self.inner[self.rows[index]]
        return {"image": sample["image"][self.order].float(), "mask": sample["mask"].long()}


def chip_size(path: Path) -> tuple[int, int]:
    """Return ``(height, width)`` of a GeoTIFF from its header."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as src:
            return src.height, src.width
    except RasterioIOError as err:
        raise DataError(
            "Cloud Cover label missing or unreadable",
            where=str(path),
            hint=f"expected {SPEC.layout}",
        ) from err


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one Cloud Cover Detection split.

    Args:
        request: the dataset request; ``bands`` among B02, B03, B04, B08. ``options``:
            ``val_fraction`` (0.1, share of the train chips held out for validation) and
            ``crops_per_image`` (training crops per chip when ``patch_size`` is below the chip
            size; default as many as the tiles covering a chip).

    Returns:
        A dataset of ``{"image": float32 (C, h, w), "mask": int64 (h, w)}``.

    Raises:
        DataError: when the root, a metadata file, or a chip's folder or label is missing.
        BandError: when a requested band is not one of the four bands.
    """
    where = f"dataset {request.name or 'cloud_cover'}"
    band_indices(request.bands, FILE_BANDS, where)
    check_options(request.options, OPTIONS, where)
    check_class_count(request, SPEC.classes, "Cloud Cover", where)
    val_fraction = fraction_option(request.options, "val_fraction", 0.1, allow_zero=True)
    crops = int_option(request.options, "crops_per_image", None)
    root = require_dir(Path(request.root), SPEC.layout)
    part = release_split(request.split)
    require_dir(root / part, SPEC.layout)
    ids = chip_ids(root, part)
    features = require_dir(root / part / f"{part}_features", SPEC.layout)
    labels = require_dir(root / part / f"{part}_labels", SPEC.layout)
    missing = [c for c in ids if not (labels / f"{c}.tif").is_file()]
    missing_dirs = [c for c in ids if not (features / c).is_dir()]
    if missing or missing_dirs:
        first = labels / f"{missing[0]}.tif" if missing else features / missing_dirs[0]
        raise DataError(
            f"{len(missing) + len(missing_dirs)} chip file(s) of the metadata are missing",
            where=str(first),
            hint=f"expected {SPEC.layout}",
        )

    if part == "train":
        chosen = set(split_keys(ids, request.seed, {"val": val_fraction})[request.split])
        rows = [i for i, c in enumerate(ids) if c in chosen]
    else:
        rows = list(range(len(ids)))
    if not rows:
        raise DataError(
            f"the {request.split} split is empty ({len(ids)} train chips)",
            where=str(root / part),
            hint="add chips or change options.val_fraction",
        )

    if request.patch_size is None:
        from torchgeo.datasets import CloudCoverDetection

        distinct = list(dict.fromkeys(request.bands))
        inner = CloudCoverDetection(root=str(root), split=part, bands=distinct, download=False)
        order = [distinct.index(b) for b in request.bands]
        # torchgeo reads chip ids with pandas; keep our rows aligned with its table.
        table = [str(inner.metadata.iat[i, 0]) for i in range(len(inner.metadata))]
        if table != ids:
            raise DataError(
                "torchgeo and the metadata file disagree on the chip list",
                where=str(root / part / f"{part}_metadata.csv"),
                hint="check the file's first column holds the chip ids",
            )
        return TorchGeoChips(inner, rows, order)

    rng = random.Random(request.seed)
    samples: list[tuple[str, PatchWindow | None]] = []
    for i in rows:
        chip = ids[i]
        height, width = chip_size(labels / f"{chip}.tif")
        for box in plan_windows(height, width, request.patch_size, request.split, rng, crops):
            samples.append((chip, box))
    return CloudCoverWindows(root, part, samples, request.bands)
