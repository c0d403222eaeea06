"""DeepGlobe Land Cover Classification (Demir et al., 2018): 7-class land-cover segmentation.

Release layout (the labelled Kaggle re-split that torchgeo's
:class:`~torchgeo.datasets.DeepGlobeLandCover` reads, ``data.zip`` extracted)::

    <root>/data/training_data/images/<id>_sat.jpg   2448x2448 RGB JPEG, 0.5 m
    <root>/data/training_data/masks/<id>_mask.png   2448x2448 RGB PNG, colour-coded classes
    <root>/data/test_data/images/<id>_sat.jpg
    <root>/data/test_data/masks/<id>_mask.png

Masks code the classes by colour (:data:`COLOURS`). As the challenge organisers advise, each
mask channel is binarised at 128 before the colours are matched (lossy edits leave values that
are not exactly 0 or 255). The one 3-bit colour outside the legend, red, gets
``request.ignore_index`` when one is set, else ``Unknown`` (torchgeo maps it to class 0).

Splits. ``test`` is ``test_data``; ``val`` is a seeded ``options["val_fraction"]`` (0.1) of the
``training_data`` images (whole images; torchgeo's datamodule also carves its validation set out
of the training images); ``train`` is the rest.

torchgeo's class is not used to read: it decodes every 2448x2448 image and mask whole. This
module reads the same files as windows (:class:`~eosfm_cli.data.windows.WindowedSegmentation`):
``options["crops_per_image"]`` seeded random crops per image for training, a covering grid of
tiles for val and test. JPEG pixels are decoded by GDAL, whose decoder may differ from Pillow's
by a few DN at chroma edges.
"""

from __future__ import annotations

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
SPEC = get_experiment("deepglobe_lcc")

FILE_BANDS: tuple[str, ...] = ("R", "G", "B")
#: Mask colour (R, G, B) of each class, in class order.
COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255),
    (0, 0, 0),
)  # fmt: skip
#: Class of colours outside the legend: the one coded black, the dataset's "unknown" class.
UNKNOWN = COLOURS.index((0, 0, 0))

SPLIT_DIRS = {"train": "training_data", "test": "test_data"}


def colour_lookup(unlisted: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return the class of each binarised colour, indexed by ``4 R + 2 G + B`` (bits 0/1)."""
    table = np.full(8, unlisted, dtype=np.int64)
    for cls, (r, g, b) in enumerate(COLOURS):
        table[4 * (r // 255) + 2 * (g // 255) + b // 255] = cls
    return table


class ColourDecoder:
    """Turns the three bands of a colour-coded mask window into class ids.

    Args:
        unlisted: class id of colours outside the legend.
    """

    def __init__(self, unlisted: int) -> None:
        self.table = colour_lookup(unlisted)

    def __call__(
        self, data: np.ndarray[Any, Any], path: Path
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Return the ``int64 (h, w)`` class ids of a ``(3, h, w)`` mask window."""
        bits = (data >= 128).astype(np.int64)
        return self.table[4 * bits[0] + 2 * bits[1] + bits[2]]  # type: ignore[no-any-return]


def list_pairs(root: Path, folder: str) -> list[ImagePair]:
    """List the image/mask pairs of one release folder, sorted by id.

    Raises:
        DataError: when a folder is missing or empty, or an image has no mask.
    """
    images = require_dir(root / "data" / folder / "images", SPEC.layout)
    masks = require_dir(root / "data" / folder / "masks", SPEC.layout)
    pairs = []
    for path in sorted(images.glob("*_sat.jpg")):
        mask = masks / f"{path.name[: -len('_sat.jpg')]}_mask.png"
        if not mask.is_file():
            raise DataError(
                "mask missing for a DeepGlobe image",
                where=str(mask),
                hint=f"re-extract the dataset; expected {SPEC.layout}",
            )
        pairs.append(ImagePair(path, mask))
    if not pairs:
        raise DataError(
            "no <id>_sat.jpg image in the DeepGlobe folder",
            where=str(images),
            hint=f"expected {SPEC.layout}; set the folder with --root",
        )
    return pairs


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one DeepGlobe land-cover split.

    Args:
        request: the dataset request; ``request.bands`` among R, G, B (repeats allowed).
            ``options``: ``crops_per_image`` (8) and ``val_fraction`` (0.1).

    Returns:
        A dataset of ``{"image": float32 (C, p, p) 8-bit DNs, "mask": int64 (p, p)}`` with
        ``p = request.patch_size``.

    Raises:
        DataError: when the layout is incomplete or a split is empty.
        BandError: when a requested band is not R, G or B.
    """
    where = f"dataset {request.name or 'deepglobe_lcc'}"
    bands = band_indices(request.bands, FILE_BANDS, where)
    check_class_count(request, SPEC.classes, "DeepGlobe", where)
    crops = int_option(request.options, "crops_per_image", SPEC.options["crops_per_image"])
    val_fraction = fraction_option(request.options, "val_fraction", SPEC.options["val_fraction"])
    root = require_dir(Path(request.root), SPEC.layout)
    pairs = list_pairs(root, SPLIT_DIRS["test" if request.split == "test" else "train"])
    if request.split != "test":
        names = [p.image.name for p in pairs]
        val_names = set(split_keys(names, request.seed, {"val": val_fraction}, sort_key=str)["val"])
        pairs = [p for p in pairs if (p.image.name in val_names) == (request.split == "val")]
    if not pairs:
        raise DataError(
            f"the DeepGlobe {request.split} split is empty",
            where=str(root / "data" / SPLIT_DIRS["train"]),
            hint="val is carved out of training_data, which needs two images or more",
        )
    unlisted = UNKNOWN if request.ignore_index is None else int(request.ignore_index)
    return WindowedSegmentation(
        pairs,
        [b + 1 for b in bands],
        [1, 2, 3],
        ColourDecoder(unlisted),
        split=request.split,
        patch_size=request.patch_size,
        crops_per_image=crops,
        seed=request.seed,
        layout=SPEC.layout,
    )
