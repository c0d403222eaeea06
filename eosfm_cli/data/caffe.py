"""CaFFe (Gourmelon et al., 2022): glacier zone segmentation of single-band SAR images.

Release layout (torchgeo's :class:`~torchgeo.datasets.CaFFe`, the 512x512 tiles of
``caffe.zip``; train, val and test are separate folders)::

    <root>/caffe/sar_images/{train,val,test}/<glacier>_<date>_<sensor>_..__<tile>.png
    <root>/caffe/zones/{train,val,test}/<glacier>_<date>_<sensor>_.._zones__<tile>.png
    <root>/caffe/fronts/{train,val,test}/<glacier>_<date>_<sensor>_.._front__<tile>.png

The image of a zone mask is its name with ``_zones_`` replaced by ``_`` (torchgeo's rule). SAR
images are 8-bit grey PNGs (amplitude, catalog band ``HH``); the specialist takes the band three
times (``HH, HH, HH``). Zone masks are 8-bit PNGs whose grey values 0, 64, 127 and 254 are the
four zone classes of the dataset's documentation, in the registry's order (returned as
0..3). Any other value becomes ``request.ignore_index`` (or 0, NA, as
torchgeo does, when there is none). Calving-front masks are not used.

torchgeo's class is not used to read samples: it looks for ``caffe.zip`` and extracts it when a
folder is missing, reads whole images, and returns the single band only. This module reads the
same files itself: a PNG has no random access, so an image is decoded once per sample and
cropped to the sample's window (tiles are 512 px, the registry's patch size, so a window is
usually the whole tile).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, check_class_count, require_dir
from eosfm_cli.data.options import check_options, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import PatchWindow, plan_windows
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("caffe")

#: The band stored in every SAR image.
FILE_BANDS: tuple[str, ...] = ("HH",)
#: Grey value of each zone class in the zone masks.
ZONE_VALUES: tuple[int, ...] = (0, 64, 127, 254)

DATA_DIR = "caffe"
OPTIONS = ("crops_per_image",)


def zone_lookup(fill: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return a 256-entry table from zone-mask grey values to class indices (others: ``fill``)."""
    table = np.full(256, fill, dtype=np.int64)
    for index, value in enumerate(ZONE_VALUES):
        table[value] = index
    return table


def read_png(path: Path) -> np.ndarray[Any, Any]:
    """Decode a single-band PNG, or raise a :class:`DataError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img if img.mode in ("L", "I;16", "I") else img.convert("L"))
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read the CaFFe image ({err})", where=str(path), hint=f"expected {SPEC.layout}"
        ) from err


def png_size(path: Path) -> tuple[int, int]:
    """Return ``(height, width)`` from a PNG's header."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read the CaFFe image ({err})", where=str(path), hint=f"expected {SPEC.layout}"
        ) from err
    return height, width


def index_split(root: Path, split: str) -> list[tuple[Path, Path]]:
    """List ``(sar_image, zone_mask)`` pairs of a split, sorted by name.

    Raises:
        DataError: when a split folder is missing, empty, or a zone mask has no image.
    """
    base = root / DATA_DIR
    zone_dir = require_dir(base / "zones" / split, SPEC.layout)
    image_dir = require_dir(base / "sar_images" / split, SPEC.layout)
    pairs = []
    for zone in sorted(zone_dir.glob("*.png")):
        image = image_dir / zone.name.replace("_zones_", "_")
        if not image.is_file():
            raise DataError(
                f"zone mask {zone.name} has no SAR image",
                where=str(image),
                hint=f"expected {SPEC.layout}",
            )
        pairs.append((image, zone))
    if not pairs:
        raise DataError(
            f"no zone mask in the {split} split",
            where=str(zone_dir),
            hint=f"expected {SPEC.layout}",
        )
    return pairs


class CaFFeSplit(Dataset[dict[str, Tensor]]):
    """One CaFFe split as windows of its images.

    Args:
        samples: ``(sar_image, zone_mask, window)`` triples.
        channels: how many times the single band is repeated (one per requested band).
        fill: mask value of pixels whose grey value is not a zone class.
    """

    def __init__(
        self, samples: list[tuple[Path, Path, PatchWindow]], channels: int, fill: int
    ) -> None:
        self.samples = samples
        self.channels = channels
        self._lookup = zone_lookup(fill)

    def __len__(self) -> int:
        """Return the number of windows."""
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, h, w) grey values 0-255, "mask": int64 (h, w)}``."""
        image_path, zone_path, box = self.samples[index]
        rows, cols = box.slices
        grey = read_png(image_path)[rows, cols].astype(np.float32)
        zones = read_png(zone_path)[rows, cols]
        if zones.shape != grey.shape:
            raise DataError(
                f"zone mask {zones.shape} and image {grey.shape} differ in size",
                where=str(zone_path),
                hint="re-extract the dataset",
            )
        image = np.repeat(grey[None], self.channels, axis=0)
        mask = self._lookup[np.clip(zones.astype(np.int64), 0, 255)]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "mask": torch.from_numpy(mask),
        }


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one CaFFe split.

    Args:
        request: the dataset request. ``bands`` must all be ``HH`` (the single SAR band,
            repeats allowed). ``options``: ``crops_per_image`` (training crops per image when
            images exceed ``patch_size``; default as many as the tiles covering an image).

    Returns:
        A dataset of ``{"image": float32 (C, h, w), "mask": int64 (h, w)}``.

    Raises:
        DataError: when the root or a split folder is missing or empty, or an image is absent.
        BandError: when a requested band is not ``HH``.
    """
    where = f"dataset {request.name or 'caffe'}"
    band_indices(request.bands, FILE_BANDS, where)
    check_options(request.options, OPTIONS, where)
    check_class_count(request, SPEC.classes, "CaFFe", where, kind="zone")
    crops = int_option(request.options, "crops_per_image", None)
    root = require_dir(Path(request.root), SPEC.layout)
    if not (root / DATA_DIR).is_dir() and (root / "caffe.zip").is_file():
        raise DataError(
            "the CaFFe archive is not extracted",
            where=str(root / DATA_DIR),
            hint=f"unzip caffe.zip in {root}; expected {SPEC.layout}",
        )
    require_dir(root / DATA_DIR, SPEC.layout)
    rng = random.Random(request.seed)
    samples = []
    for image, zone in index_split(root, request.split):
        height, width = png_size(image)
        for box in plan_windows(height, width, request.patch_size, request.split, rng, crops):
            samples.append((image, zone, box))
    fill = 0 if request.ignore_index is None else int(request.ignore_index)
    return CaFFeSplit(samples, len(request.bands), fill)
