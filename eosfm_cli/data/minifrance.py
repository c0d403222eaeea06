"""MiniFrance (Castillo-Navarro et al., 2020): 16 UrbanAtlas classes from BD ORTHO RGB (50 cm).

torchgeo has no MiniFrance class. Release layout read here (the one of the MiniFrance suite on
IEEE DataPort, which torchgeo's DFC2022 class also reads for its ``labeled_train`` part)::

    <root>/labeled_train/<city>/BDORTHO/<tile>.tif              3 bands uint8: R, G, B
    <root>/labeled_train/<city>/UrbanAtlas/<tile>_UA2012.tif    1 band uint8: class 0..15

``<city>`` is a conurbation folder (``Nice``, ``Nantes_Saint-Nazaire``) and ``<tile>`` the BD
ORTHO tile name (``06-2014-0994-6311-LA93-0M50-E080``). Those names were confirmed in public
code that reads the release; the ``unlabeled_train`` partition (no UrbanAtlas folder) is not
read. The set of partitions with labels to read is ``options["partitions"]``
(``["labeled_train"]``); an image without its ``_UA2012.tif`` mask is a :class:`DataError`.

The mask values are the 16 classes of :data:`~eosfm_cli.data.registry.URBANATLAS16_CLASSES`
(0 is no information, the registry's ``ignore_index``); any value above 15 also gets
``request.ignore_index``.

Splits. The labelled release has no validation or test list, so the images are split with
``request.seed``: ``options["test_fraction"]`` (0.2) of them test, ``options["val_fraction"]``
(0.1) validate, the rest train; with three images or more each split gets one. Tiles are
5 km BD ORTHO tiles (about 10000x10000 px), read by windows only: ``options["crops_per_image"]``
(16) random ``patch_size`` (512) crops per training image, drawn once from the seed; validation
and test images are covered by ``patch_size`` tiles every ``options["stride"]`` pixels (half
the patch size by default: 256 for 512), the last row and column aligned to the image edge.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.options import fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import (
    ImagePair,
    MaskDecoder,
    PatchWindow,
    WindowedSegmentation,
    raster_shape,
)
from eosfm_cli.errors import DataError
from eosfm_cli.tiles import tile_starts

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("minifrance")

FILE_BANDS: tuple[str, ...] = ("R", "G", "B")
IMAGE_DIR = "BDORTHO"
MASK_DIR = "UrbanAtlas"
MASK_SUFFIX = "_UA2012.tif"


def strided_windows(height: int, width: int, size: int, stride: int) -> list[PatchWindow]:
    """Return ``size`` x ``size`` windows every ``stride`` pixels covering the whole image."""
    h, w = min(size, height), min(size, width)
    return [
        PatchWindow(r, c, h, w)
        for r in tile_starts(height, size, stride)
        for c in tile_starts(width, size, stride)
    ]


def find_pairs(root: Path, partitions: Sequence[str]) -> list[ImagePair]:
    """List every labelled image of the partitions, sorted by city and tile.

    Raises:
        DataError: when a partition folder is missing or an image has no mask.
    """
    pairs = []
    for partition in partitions:
        folder = require_dir(root / partition, SPEC.layout)
        for city in sorted(p for p in folder.iterdir() if (p / IMAGE_DIR).is_dir()):
            for image in sorted((city / IMAGE_DIR).glob("*.tif")):
                mask = city / MASK_DIR / f"{image.stem}{MASK_SUFFIX}"
                if not mask.is_file():
                    raise DataError(
                        f"MiniFrance image {image.name} has no UrbanAtlas mask",
                        where=str(mask),
                        hint=f"expected {SPEC.layout}",
                    )
                pairs.append(ImagePair(image, mask))
    return pairs


def split_images(
    names: Sequence[str], seed: int, val_fraction: float, test_fraction: float
) -> dict[str, set[str]]:
    """Split image names into disjoint seeded train/val/test sets.

    Args:
        names: image identifiers.
        seed: the random seed.
        val_fraction: share of validation images.
        test_fraction: share of test images.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``.
    """
    if val_fraction + test_fraction >= 1:
        raise DataError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g}",
            where="dataset.options",
            hint="keep their sum below 1",
        )
    order = sorted(set(names))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    if n >= 3:
        n_test, n_val = max(n_test, 1), max(n_val, 1)
    return {
        "test": set(order[:n_test]),
        "val": set(order[n_test : n_test + n_val]),
        "train": set(order[n_test + n_val :]),
    }


def decode_classes(
    data: np.ndarray[Any, Any], path: Path, ignore_index: int = 0
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Keep class values 0..15 of a ``(1, h, w)`` mask; others get ``ignore_index``."""
    mask = data[0].astype(np.int64)
    mask[(mask < 0) | (mask >= len(SPEC.classes))] = ignore_index
    return mask


def class_decoder(ignore_index: int) -> MaskDecoder:
    """Return a picklable mask decoder keeping the 16 classes."""
    return functools.partial(decode_classes, ignore_index=ignore_index)


class MiniFranceSplit(WindowedSegmentation):
    """A MiniFrance split; validation and test tiles overlap by ``patch_size - stride``.

    Args:
        pairs: image and mask files.
        bands: 1-based image bands to return, in order.
        ignore_index: mask value of pixels without a class.
        split: ``train``, ``val`` or ``test``.
        patch_size: crop and tile size.
        stride: step between validation/test tiles.
        crops_per_image: random crops per training image.
        seed: seed of the training crops.
    """

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        bands: Sequence[int],
        ignore_index: int,
        *,
        split: str,
        patch_size: int,
        stride: int,
        crops_per_image: int,
        seed: int,
    ) -> None:
        super().__init__(
            pairs,
            bands,
            [1],
            class_decoder(ignore_index),
            split=split,
            patch_size=patch_size,
            crops_per_image=crops_per_image,
            seed=seed,
            layout=SPEC.layout,
        )
        if split != "train":
            self.windows = []
            for i, pair in enumerate(self.pairs):
                _, height, width = raster_shape(pair.image, SPEC.layout)
                self.windows.extend(
                    (i, w) for w in strided_windows(height, width, patch_size, stride)
                )


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one MiniFrance split.

    Args:
        request: the dataset request; ``request.bands`` among R, G, B. ``options``:
            ``partitions`` (``["labeled_train"]``), ``val_fraction`` (0.1), ``test_fraction``
            (0.2), ``crops_per_image`` (16), ``stride`` (half the patch size).

    Returns:
        A dataset of ``{"image": float32 (C, P, P) 8-bit DNs, "mask": int64 (P, P)}``.

    Raises:
        DataError: when a folder or mask is missing, or the split holds no image.
        BandError: when a requested band is not R, G or B.
    """
    where = f"dataset {request.name or 'minifrance'}"
    bands = [i + 1 for i in band_indices(request.bands, FILE_BANDS, where)]
    if request.classes and tuple(request.classes) != SPEC.classes:
        raise DataError(
            "MiniFrance has the 16 UrbanAtlas classes; the requested class list differs",
            where=where,
            hint="use the registry's URBANATLAS16_CLASSES",
        )
    root = require_dir(Path(request.root), SPEC.layout)
    options = request.options
    partitions = options.get("partitions", ["labeled_train"])
    if isinstance(partitions, str):
        partitions = [partitions]
    patch = SPEC.crop_size(request.patch_size)
    stride = int_option(options, "stride", max(1, patch // 2))
    crops = int_option(options, "crops_per_image", SPEC.options["crops_per_image"])
    pairs = find_pairs(root, [str(p) for p in partitions])
    splits = split_images(
        [str(p.image.relative_to(root)) for p in pairs],
        request.seed,
        fraction_option(options, "val_fraction", SPEC.options["val_fraction"]),
        fraction_option(options, "test_fraction", SPEC.options["test_fraction"]),
    )
    chosen = [p for p in pairs if str(p.image.relative_to(root)) in splits[request.split]]
    if not chosen:
        raise DataError(
            f"the MiniFrance {request.split} split is empty ({len(pairs)} labelled images)",
            where=str(root),
            hint=f"expected {SPEC.layout}",
        )
    ignore = 0 if request.ignore_index is None else int(request.ignore_index)
    return MiniFranceSplit(
        chosen,
        bands,
        ignore,
        split=request.split,
        patch_size=patch,
        stride=stride,
        crops_per_image=crops,
        seed=request.seed,
    )
