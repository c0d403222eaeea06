"""Inria Aerial Image Labeling (Maggiori et al., 2017): building / background segmentation.

Release layout (``NEW2-AerialImageDataset.zip`` extracted, as torchgeo's
:class:`~torchgeo.datasets.InriaAerialImageLabeling` reads it)::

    <root>/AerialImageDataset/train/images/<city><n>.tif   5000x5000 RGB uint8 GeoTIFF, 0.3 m
    <root>/AerialImageDataset/train/gt/<city><n>.tif       5000x5000 uint8, 0 / 255 (building)
    <root>/AerialImageDataset/test/images/<city><n>.tif    no ground truth (scored online)

Training cities are austin, chicago, kitsap, tyrol-w and vienna, 36 images each (``n`` = 1..36).
The mask is the first ground-truth band, 0 for background and 1 for any non-zero value (building),
as torchgeo clips it.

Splits. Only the training folder has ground truth, so all three splits come from it. The
dataset's own validation protocol (used by torchgeo's ``val`` split and the published results)
holds out the first five images of every city (``n`` <= 5, 25 images): those are the **test**
split here. The **val** split is a seeded ``options["val_fraction"]`` (0.1) of the remaining
images, whole images only; **train** is the rest. The unlabelled ``test`` folder is not read.

torchgeo's class is not used to read: it decodes each 5000x5000 image and mask whole, and it
finds the image number by searching the whole path (a digit in the root folder name breaks its
train/val split). This module reads the same files as windows
(:class:`~eosfm_cli.data.windows.WindowedSegmentation`): ``options["crops_per_image"]`` seeded
random crops per image for training, a grid of tiles covering each image for val and test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, check_class_count, require_dir
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import ImagePair, WindowedSegmentation
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("inria_aerial")

FILE_BANDS: tuple[str, ...] = ("R", "G", "B")
#: Images ``n`` <= this of every city form the dataset's validation protocol (our test split).
HELD_OUT_PER_CITY = 5

TRAIN_DIR = Path("AerialImageDataset", "train")
_NAME_RE = re.compile(r"^(.*?)(\d+)\.tif$")


def decode_mask(data: np.ndarray[Any, Any], path: Path) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return the building mask: 1 where the ground truth is non-zero, else 0."""
    return (data[0] > 0).astype(np.int64)


def list_pairs(root: Path) -> list[tuple[str, int, ImagePair]]:
    """List the labelled training images as ``(city, number, pair)``, sorted.

    Raises:
        DataError: when a folder is missing, holds no image, or an image has no ground truth.
    """
    images = require_dir(root / TRAIN_DIR / "images", SPEC.layout)
    gt = require_dir(root / TRAIN_DIR / "gt", SPEC.layout)
    found = []
    for path in sorted(images.glob("*.tif")):
        match = _NAME_RE.match(path.name)
        if match is None:
            continue
        mask = gt / path.name
        if not mask.is_file():
            raise DataError(
                "ground truth missing for an Inria image",
                where=str(mask),
                hint=f"re-extract the dataset; expected {SPEC.layout}",
            )
        found.append((match.group(1), int(match.group(2)), ImagePair(path, mask)))
    if not found:
        raise DataError(
            "no <city><n>.tif image in the Inria training folder",
            where=str(images),
            hint=f"expected {SPEC.layout}; set the folder with --root",
        )
    return found


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one Inria split.

    Args:
        request: the dataset request; ``request.bands`` among R, G, B (repeats allowed).
            ``options``: ``crops_per_image`` (16) and ``val_fraction`` (0.1).

    Returns:
        A dataset of ``{"image": float32 (C, p, p) 8-bit DNs, "mask": int64 (p, p)}`` with
        ``p = request.patch_size``.

    Raises:
        DataError: when the layout is incomplete or a split is empty.
        BandError: when a requested band is not R, G or B.
    """
    where = f"dataset {request.name or 'inria_aerial'}"
    bands = band_indices(request.bands, FILE_BANDS, where)
    check_class_count(request, SPEC.classes, "Inria", where)
    crops = int_option(request.options, "crops_per_image", SPEC.options["crops_per_image"])
    val_fraction = fraction_option(request.options, "val_fraction", SPEC.options["val_fraction"])
    root = require_dir(Path(request.root), SPEC.layout)
    pairs = list_pairs(root)

    held_out = [(c, n, p) for c, n, p in pairs if n <= HELD_OUT_PER_CITY]
    rest = [(c, n, p) for c, n, p in pairs if n > HELD_OUT_PER_CITY]
    names = [p.image.name for _, _, p in rest]
    val_names = set(split_keys(names, request.seed, {"val": val_fraction}, sort_key=str)["val"])
    chosen = {
        "test": held_out,
        "val": [t for t in rest if t[2].image.name in val_names],
        "train": [t for t in rest if t[2].image.name not in val_names],
    }[request.split]
    if not chosen:
        raise DataError(
            f"the Inria {request.split} split is empty",
            where=str(root / TRAIN_DIR / "images"),
            hint=f"test holds images 1-{HELD_OUT_PER_CITY} of each city, train/val the others",
        )
    return WindowedSegmentation(
        [p for _, _, p in chosen],
        [b + 1 for b in bands],
        [1],
        decode_mask,
        split=request.split,
        patch_size=request.patch_size,
        crops_per_image=crops,
        seed=request.seed,
        layout=SPEC.layout,
    )
