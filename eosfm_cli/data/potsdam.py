"""ISPRS Potsdam 2D semantic labelling: 6 urban classes from IRRG aerial orthophotos.

Release layout, as torchgeo's :class:`~torchgeo.datasets.Potsdam2D` reads it::

    <root>/4_Ortho_RGBIR/top_potsdam_<x>_<y>_RGBIR.tif   4 bands uint8: R, G, B, IR (6000x6000)
    <root>/top_potsdam_<x>_<y>_label.tif                 3 bands uint8: RGB colour-coded classes

``5_Labels_all.zip`` holds the label files without a folder, so torchgeo finds them at the root;
this loader also accepts them in ``<root>/5_Labels_all/`` (the folder most unzip tools make).
The train and test tiles are torchgeo's lists (:attr:`Potsdam2D.splits`: 24 train, 14 test
tiles); a tile of a list that is absent is left out, as torchgeo does. The release has no
validation split: ``options["val_fraction"]`` (0.1) of the train tiles, drawn with
``request.seed``, validate, and never train.

Labels are colour-coded; the class ids follow the registry's order (the ISPRS order, clutter
last), not torchgeo's (clutter first)::

    impervious surfaces (255, 255, 255) -> 0     tree    (0, 255, 0)   -> 3
    building            (0, 0, 255)     -> 1     car     (255, 255, 0) -> 4
    low vegetation      (0, 255, 255)   -> 2     clutter (255, 0, 0)   -> 5

Any other colour gets ``request.ignore_index`` (the registry's -1).

torchgeo's class is not used to read: it decodes each 6000x6000 tile whole (144 MB of IRRG
float32 per sample) before any crop. This loader reads the same files through rasterio windows
(:class:`~eosfm_cli.data.windows.WindowedSegmentation`): ``options["crops_per_image"]`` (16)
random ``patch_size`` crops per training tile, drawn once from ``request.seed``, and a grid of
tiles covering every validation and test image.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import ImagePair, MaskDecoder, WindowedSegmentation
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("potsdam")

#: Band order of the ``*_RGBIR.tif`` files (catalog names).
FILE_BANDS: tuple[str, ...] = ("R", "G", "B", "NIR")

#: Label colour of each class, in the registry's class order.
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0),
)  # fmt: skip

IMAGE_DIR = "4_Ortho_RGBIR"
LABEL_DIR = "5_Labels_all"


def tile_lists() -> dict[str, list[str]]:
    """Return torchgeo's official ``train`` and ``test`` tile names."""
    from torchgeo.datasets import Potsdam2D

    return {split: list(names) for split, names in Potsdam2D.splits.items()}


def label_path(root: Path, tile: str) -> Path | None:
    """Return the label file of ``tile`` (``5_Labels_all/`` first, then the root), if any."""
    for folder in (root / LABEL_DIR, root):
        path = folder / f"{tile}_label.tif"
        if path.is_file():
            return path
    return None


def find_pairs(root: Path, tiles: list[str]) -> list[ImagePair]:
    """Return the image/label pairs of the ``tiles`` present under ``root``.

    Raises:
        DataError: when a tile has an image but no label.
    """
    pairs = []
    for tile in tiles:
        image = root / IMAGE_DIR / f"{tile}_RGBIR.tif"
        if not image.is_file():
            continue
        label = label_path(root, tile)
        if label is None:
            raise DataError(
                f"Potsdam tile {tile} has an image but no label",
                where=str(root / f"{tile}_label.tif"),
                hint=f"extract 5_Labels_all.zip into {root}; expected {SPEC.layout}",
            )
        pairs.append(ImagePair(image, label))
    return pairs


def decode_colors(
    rgb: np.ndarray[Any, Any], path: Path, ignore_index: int = -1
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Turn ``(3, h, w)`` label colours into class ids; other colours get ``ignore_index``."""
    code = rgb[0].astype(np.int64) << 16 | rgb[1].astype(np.int64) << 8 | rgb[2].astype(np.int64)
    out = np.full(code.shape, ignore_index, dtype=np.int64)
    for k, (r, g, b) in enumerate(COLORS):
        out[code == (r << 16 | g << 8 | b)] = k
    return out


def color_decoder(ignore_index: int) -> MaskDecoder:
    """Return a picklable mask decoder from label colours to class ids."""
    return functools.partial(decode_colors, ignore_index=ignore_index)


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one Potsdam split.

    Args:
        request: the dataset request; ``request.bands`` among R, G, B and NIR (IRRG:
            ``NIR, R, G``). ``options``: ``crops_per_image`` (16), ``val_fraction`` (0.1).

    Returns:
        A dataset of ``{"image": float32 (C, P, P) 8-bit DNs, "mask": int64 (P, P)}``.

    Raises:
        DataError: when the image folder is missing, a tile lacks its label, or the split holds
            no tile.
        BandError: when a requested band is not one of the four RGBIR bands.
    """
    where = f"dataset {request.name or 'potsdam'}"
    bands = [i + 1 for i in band_indices(request.bands, FILE_BANDS, where)]
    if request.classes and tuple(request.classes) != SPEC.classes:
        raise DataError(
            "Potsdam has its own 6 classes; the requested class list differs",
            where=where,
            hint=f"use the classes {', '.join(SPEC.classes)}",
        )
    root = require_dir(Path(request.root), SPEC.layout)
    require_dir(root / IMAGE_DIR, SPEC.layout)
    options = request.options
    crops = int_option(options, "crops_per_image", SPEC.options["crops_per_image"])
    val_fraction = fraction_option(options, "val_fraction", SPEC.options["val_fraction"])

    lists = tile_lists()
    if request.split == "test":
        pairs = find_pairs(root, lists["test"])
    else:
        train = find_pairs(root, lists["train"])
        names = [p.image.name for p in train]
        val = set(split_keys(names, request.seed, {"val": val_fraction}, sort_key=str)["val"])
        keep = request.split == "val"
        pairs = [p for p in train if (p.image.name in val) == keep]
    if not pairs:
        raise DataError(
            f"no Potsdam tile of the {request.split} split found",
            where=str(root / IMAGE_DIR),
            hint=f"expected {SPEC.layout}, with the official train/test tile names",
        )
    ignore = -1 if request.ignore_index is None else int(request.ignore_index)
    return WindowedSegmentation(
        pairs,
        bands,
        [1, 2, 3],
        color_decoder(ignore),
        split=request.split,
        patch_size=SPEC.crop_size(request.patch_size),
        crops_per_image=crops,
        seed=request.seed,
        layout=SPEC.layout,
    )
