"""LoveDA (Wang et al., 2021): urban and rural land-cover segmentation, 7 classes plus no-data.

Release layout (``Train.zip``, ``Val.zip``, ``Test.zip`` extracted, as torchgeo's
:class:`~torchgeo.datasets.LoveDA` reads them)::

    <root>/{Train,Val}/{Urban,Rural}/images_png/<n>.png   1024x1024 RGB PNG, 0.3 m
    <root>/{Train,Val}/{Urban,Rural}/masks_png/<n>.png    1024x1024 single-band PNG
    <root>/Test/{Urban,Rural}/images_png/<n>.png          no masks (scored online)

Mask values 0..7 are the registry's eight classes, in order, ``no-data`` first. The class ids
are the file values (the class list keeps ``no-data`` at 0), and
no-data pixels get ``request.ignore_index`` (0 by default, so they stay 0 and are ignored);
any value above 7 is no-data too.

Splits. The ``Test`` masks are withheld, so ``test`` here is the labelled ``Val`` folder and
``val`` is a seeded ``options["val_fraction"]`` (0.1) of the ``Train`` images; ``train`` is the
rest of ``Train``. ``options["scenes"]`` (``["urban", "rural"]``) picks the scenes, as
torchgeo's ``scene`` argument does.

torchgeo's class is not used to read: it decodes each 1024x1024 image whole. This module reads
the same files as windows (:class:`~eosfm_cli.data.windows.WindowedSegmentation`):
``options["crops_per_image"]`` (4) seeded random crops per image for training, a covering grid
of tiles for val and test.
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
SPEC = get_experiment("loveda")

FILE_BANDS: tuple[str, ...] = ("R", "G", "B")
NO_DATA = 0
SCENES: tuple[str, ...] = ("urban", "rural")


class MaskDecoder:
    """Maps no-data (0, or any value above 7) to the ignore index.

    Args:
        ignore_index: the value of no-data pixels.
    """

    def __init__(self, ignore_index: int) -> None:
        self.table = np.arange(256, dtype=np.int64)
        self.table[NO_DATA] = ignore_index
        self.table[len(SPEC.classes) :] = ignore_index

    def __call__(
        self, data: np.ndarray[Any, Any], path: Path
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Return the ``int64 (h, w)`` class ids of a mask window's first band."""
        return self.table[np.clip(data[0].astype(np.int64), 0, 255)]  # type: ignore[no-any-return]


def scene_option(options: dict[str, Any]) -> list[str]:
    """Read ``options["scenes"]``: a non-empty subset of urban and rural.

    Raises:
        DataError: when the value names another scene or is empty.
    """
    value = options.get("scenes", SPEC.options["scenes"])
    scenes = [value] if isinstance(value, str) else list(value)
    if not scenes or any(s not in SCENES for s in scenes):
        raise DataError(
            f"bad LoveDA scenes {value!r}",
            where="dataset.options.scenes",
            hint="use urban, rural or both",
        )
    return [s for s in SCENES if s in scenes]


def list_pairs(root: Path, folder: str, scenes: list[str]) -> list[ImagePair]:
    """List the image/mask pairs of one release folder (``Train`` or ``Val``), sorted.

    Raises:
        DataError: when a folder is missing or empty, or an image has no mask.
    """
    pairs = []
    for scene in scenes:
        base = root / folder / scene.capitalize()
        images = require_dir(base / "images_png", SPEC.layout)
        masks = require_dir(base / "masks_png", SPEC.layout)
        for path in sorted(images.glob("*.png")):
            mask = masks / path.name
            if not mask.is_file():
                raise DataError(
                    "mask missing for a LoveDA image",
                    where=str(mask),
                    hint=f"re-extract {folder}.zip; expected {SPEC.layout}",
                )
            pairs.append(ImagePair(path, mask))
    if not pairs:
        raise DataError(
            f"no image in the LoveDA {folder} folder",
            where=str(root / folder),
            hint=f"expected {SPEC.layout}; set the folder with --root",
        )
    return pairs


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one LoveDA split.

    Args:
        request: the dataset request; ``request.bands`` among R, G, B (repeats allowed).
            ``options``: ``crops_per_image`` (4), ``val_fraction`` (0.1), ``scenes``.

    Returns:
        A dataset of ``{"image": float32 (C, p, p) 8-bit DNs, "mask": int64 (p, p)}`` with
        ``p = request.patch_size``.

    Raises:
        DataError: when the layout is incomplete or a split is empty.
        BandError: when a requested band is not R, G or B.
    """
    where = f"dataset {request.name or 'loveda'}"
    bands = band_indices(request.bands, FILE_BANDS, where)
    check_class_count(request, SPEC.classes, "LoveDA", where, note=" (no-data first)")
    crops = int_option(request.options, "crops_per_image", SPEC.options["crops_per_image"])
    val_fraction = fraction_option(request.options, "val_fraction", SPEC.options["val_fraction"])
    scenes = scene_option(request.options)
    root = require_dir(Path(request.root), SPEC.layout)
    pairs = list_pairs(root, "Val" if request.split == "test" else "Train", scenes)
    if request.split != "test":
        # keyed by scene and file name: numbers are unique across scenes, but be safe
        key = {p.image: f"{p.image.parent.parent.name}/{p.image.name}" for p in pairs}
        names = list(key.values())
        val_keys = set(split_keys(names, request.seed, {"val": val_fraction}, sort_key=str)["val"])
        pairs = [p for p in pairs if (key[p.image] in val_keys) == (request.split == "val")]
    if not pairs:
        raise DataError(
            f"the LoveDA {request.split} split is empty",
            where=str(root / "Train"),
            hint="val is carved out of Train, which needs two images or more",
        )
    ignore = NO_DATA if request.ignore_index is None else int(request.ignore_index)
    return WindowedSegmentation(
        pairs,
        [b + 1 for b in bands],
        [1],
        MaskDecoder(ignore),
        split=request.split,
        patch_size=request.patch_size,
        crops_per_image=crops,
        seed=request.seed,
        layout=SPEC.layout,
    )
