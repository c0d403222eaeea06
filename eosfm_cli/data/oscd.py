"""OSCD (Daudt et al., 2018): urban change detection from pairs of 13-band Sentinel-2 images.

Release layout, as torchgeo's :class:`~torchgeo.datasets.OSCD` reads it::

    <root>/Onera Satellite Change Detection dataset - Images/<city>/
        imgs_1_rect/B01.tif ... B12.tif, B8A.tif   one uint16 band per file (reflectance x 1e4),
        imgs_2_rect/...                            all resampled to the 10 m grid
        dates.txt                                  "date_1: YYYYMMDD" / "date_2: YYYYMMDD"
    <root>/Onera Satellite Change Detection dataset - Train Labels/<city>/cm/cm.png
    <root>/Onera Satellite Change Detection dataset - Test Labels/<city>/cm/cm.png

A band file is recognised by the name after its last ``_`` (``B01.tif`` or ``..._B01.tif``), as
torchgeo sorts them. Masks are single-band PNGs, 0 no change and 255 change (any non-zero value
is change). 14 cities train, 10 test; images are a few hundred pixels a side.

The specialist is a siamese Sentinel-2 encoder whose bands are the 13 real band names, in the
order the registry feeds them (B01..B08, B8A, B09..B12): band adaptation matches any S2 input to
it by name. torchgeo lists the files (``download=False``, ``checksum=False``, the requested
bands) after this module has checked every city, so a missing or partial root is a
:class:`DataError`, never an archive extraction or download. Samples are windows read from every
band file (:class:`~eosfm_cli.data.change_pairs.WindowedChangePairs`):
``options["crops_per_image"]`` (32) random ``patch_size`` (96) crops per training city, drawn
once from ``request.seed``, and a grid of tiles covering every validation and test city.

The release has no validation split: ``options["val_fraction"]`` (0.15) of the training cities
(at least one), drawn with ``request.seed``, validate and never train.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.change_pairs import ChangeScene, WindowedChangePairs
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import raster_shape
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("oscd")

#: The 13 bands, in the order torchgeo lists the band files.
FILE_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
IMAGES = "Onera Satellite Change Detection dataset - Images"
LABELS = "Onera Satellite Change Detection dataset - {split} Labels"


def band_key(path: Path) -> str:
    """Return the band a file holds, from the name after its last ``_`` (``B8A`` for B08A)."""
    key = os.path.splitext(path.name)[0].split("_")[-1]
    return "B8A" if key.upper() == "B08A" else key.upper()


def check_city(images: Path, labels: Path, city: str) -> None:
    """Check every file torchgeo reads for one city.

    Raises:
        DataError: naming the first missing file.
    """
    folder = require_dir(images / city, SPEC.layout)
    if not (folder / "dates.txt").is_file():
        raise DataError(
            f"OSCD city {city} has no dates.txt", where=str(folder / "dates.txt"), hint=SPEC.layout
        )
    for date in (1, 2):
        bands_dir = require_dir(folder / f"imgs_{date}_rect", SPEC.layout)
        found = [band_key(p) for p in bands_dir.glob("*.tif")]
        missing = [b for b in FILE_BANDS if found.count(b) != 1]
        if missing or len(found) != len(FILE_BANDS):
            raise DataError(
                f"OSCD city {city}: imgs_{date}_rect needs exactly one file per band "
                f"(missing or repeated: {', '.join(missing) or 'extra files'})",
                where=str(bands_dir),
                hint=SPEC.layout,
            )
    mask = labels / city / "cm" / "cm.png"
    if not mask.is_file():
        raise DataError(f"OSCD city {city} has no change mask", where=str(mask), hint=SPEC.layout)


def list_cities(root: Path, split: str, bands: tuple[str, ...]) -> list[dict[str, Any]]:
    """Check one release split (``train`` or ``test``) and list its files through torchgeo.

    Raises:
        DataError: when a folder or file is missing.
    """
    from torchgeo.datasets import OSCD

    images = require_dir(root / IMAGES, SPEC.layout)
    labels = require_dir(root / LABELS.format(split=split.capitalize()), SPEC.layout)
    cities = sorted(p.name for p in labels.iterdir() if p.is_dir())
    for city in cities:
        check_city(images, labels, city)
    files: list[dict[str, Any]] = OSCD(
        root=str(root), split=split, bands=bands, download=False, checksum=False
    ).files
    return sorted(files, key=lambda f: str(f["region"]))


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one OSCD split.

    Args:
        request: the dataset request; ``request.bands`` are S2 band names (repeats allowed).
            ``options``: ``crops_per_image`` (32), ``val_fraction`` (0.15).

    Returns:
        A dataset of ``{"image", "image2": float32 (C, P, P) reflectance x 1e4,
        "mask": int64 (P, P)}``.

    Raises:
        DataError: when a folder or file is missing, or the split holds no city.
        BandError: when a requested band is not one of the 13 Sentinel-2 bands.
    """
    where = f"dataset {request.name or 'oscd'}"
    band_indices(request.bands, FILE_BANDS, where)
    if request.classes and tuple(request.classes) != SPEC.classes:
        raise DataError(
            "OSCD has the classes 'no change' and 'change'; the request differs",
            where=where,
            hint="use the classes no change, change",
        )
    root = require_dir(Path(request.root), SPEC.layout)
    options = request.options
    crops = int_option(options, "crops_per_image", SPEC.options["crops_per_image"])
    val_fraction = fraction_option(options, "val_fraction", SPEC.options["val_fraction"])
    bands = tuple(request.bands)

    if request.split == "test":
        cities = list_cities(root, "test", bands)
    else:
        train = list_cities(root, "train", bands)
        names = [str(c["region"]) for c in train]
        val = set(split_keys(names, request.seed, {"val": val_fraction}, sort_key=str)["val"])
        keep = request.split == "val"
        cities = [c for c in train if (str(c["region"]) in val) == keep]
    if not cities:
        raise DataError(
            f"the OSCD {request.split} split is empty",
            where=str(root),
            hint=f"expected {SPEC.layout}",
        )
    scenes = []
    for city in cities:
        date1 = tuple((Path(p), 1) for p in city["images1"])
        date2 = tuple((Path(p), 1) for p in city["images2"])
        _, height, width = raster_shape(date1[0][0], SPEC.layout)
        scenes.append(
            ChangeScene(str(city["region"]), date1, date2, Path(city["mask"]), height, width)
        )
    return WindowedChangePairs(
        scenes,
        split=request.split,
        patch_size=SPEC.crop_size(request.patch_size),
        crops_per_image=crops,
        seed=request.seed,
        layout=SPEC.layout,
    )
