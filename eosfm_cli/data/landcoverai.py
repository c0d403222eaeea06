"""LandCover.ai v1 (Boguszewski et al., 2021): 5-class land cover of Polish aerial orthophotos.

Release layout. The v1 archive holds the orthophotos (``images/*.tif``, ``masks/*.tif``, about
9000x9500 px at 25 cm) and ``split.py``, which cuts them into 512x512 tiles under ``output/``;
the ``{train,val,test}.txt`` split files list those tiles. torchgeo's
:class:`~torchgeo.datasets.LandCoverAI` reads the tiles, and so does this module::

    <root>/output/<ortho>_<k>.jpg      512x512 RGB JPEG tile
    <root>/output/<ortho>_<k>_m.png    512x512 PNG mask (classes 0..4; split.py writes it with
                                       three identical channels, the first one is read)
    <root>/{train,val,test}.txt        one tile id ``<ortho>_<k>`` per line

Mask values 0..4 are the registry's five classes, in order. A mask value above 4 gets
``request.ignore_index``, or is a :class:`DataError` when none is set.

torchgeo's class is not used to read: when the split files or tiles are incomplete it extracts
``output.zip`` if one lies in the root, it decodes tiles whole and keeps up to 128 decoded tiles
per worker in an ``lru_cache``, and it cannot tile them below 512 px. This module checks the
layout, then reads the same files as windows
(:class:`~eosfm_cli.data.windows.WindowedSegmentation`): with a ``patch_size`` below the tile
size, ``options["crops_per_image"]`` (1) seeded random crops per tile for training and a
covering grid of tiles for val and test; otherwise each tile is one sample. The JPEG tiles are
decoded by GDAL, whose decoder may differ from Pillow's by a few DN at chroma edges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import (
    DatasetRequest,
    band_indices,
    check_class_count,
    require_dir,
    require_file,
)
from eosfm_cli.data.options import int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import ImagePair, WindowedSegmentation
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("landcoverai")

FILE_BANDS: tuple[str, ...] = ("R", "G", "B")


class MaskDecoder:
    """Checks mask values against the class count.

    Args:
        ignore_index: the value of out-of-range pixels; ``None`` makes them an error.
    """

    def __init__(self, ignore_index: int | None) -> None:
        self.ignore_index = ignore_index

    def __call__(
        self, data: np.ndarray[Any, Any], path: Path
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Return the ``int64 (h, w)`` class ids of a mask window's first band."""
        mask = data[0].astype(np.int64)
        bad = mask >= len(SPEC.classes)
        if bad.any():
            if self.ignore_index is None:
                raise DataError(
                    f"mask value {int(mask[bad].max())} is not a LandCover.ai class (0..4)",
                    where=str(path),
                    hint="set dataset.ignore_index to skip such pixels",
                )
            mask[bad] = self.ignore_index
        return mask


def split_ids(path: Path) -> list[str]:
    """Read the tile ids of a split file (blank lines skipped)."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one LandCover.ai split.

    Args:
        request: the dataset request; ``request.bands`` among R, G, B (repeats allowed).
            ``options``: ``crops_per_image`` (1).

    Returns:
        A dataset of ``{"image": float32 (C, p, p) 8-bit DNs, "mask": int64 (p, p)}``, ``p``
        being ``request.patch_size`` or the tile size.

    Raises:
        DataError: when the layout is incomplete (split file, tile or mask missing).
        BandError: when a requested band is not R, G or B.
    """
    where = f"dataset {request.name or 'landcoverai'}"
    bands = band_indices(request.bands, FILE_BANDS, where)
    check_class_count(request, SPEC.classes, "LandCover.ai", where)
    crops = int_option(request.options, "crops_per_image", SPEC.options["crops_per_image"])
    root = require_dir(Path(request.root), SPEC.layout)
    output = root / "output"
    if not output.is_dir():
        hint = "run the release's split.py to cut the tiles, or unzip output.zip; "
        raise DataError(
            "LandCover.ai tile folder not found",
            where=str(output),
            hint=hint + f"expected {SPEC.layout}",
        )
    ids = split_ids(require_file(root / f"{request.split}.txt", SPEC.layout))
    if not ids:
        raise DataError(
            f"the LandCover.ai {request.split} split file is empty",
            where=str(root / f"{request.split}.txt"),
            hint=f"expected {SPEC.layout}",
        )
    present = {p.name for p in output.iterdir()}
    pairs = []
    for tile in ids:
        for name in (f"{tile}.jpg", f"{tile}_m.png"):
            if name not in present:
                raise DataError(
                    f"tile {name} of {request.split}.txt is missing",
                    where=str(output / name),
                    hint=f"re-run split.py or re-extract output.zip; expected {SPEC.layout}",
                )
        pairs.append(ImagePair(output / f"{tile}.jpg", output / f"{tile}_m.png"))
    return WindowedSegmentation(
        pairs,
        [b + 1 for b in bands],
        [1],
        MaskDecoder(request.ignore_index),
        split=request.split,
        patch_size=request.patch_size,
        crops_per_image=crops,
        seed=request.seed,
        layout=SPEC.layout,
    )
