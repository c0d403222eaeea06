"""EuroSAT (Helber et al., 2019): 10-class scene classification of Sentinel-2 L1C patches.

The loader reads torchgeo's release layout through torchgeo's own
:class:`~torchgeo.datasets.EuroSAT` and :class:`~torchgeo.datasets.EuroSAT100` classes::

    <root>/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<N>.tif
    <root>/eurosat-{train,val,test}.txt        (full dataset, 27,000 patches)
    <root>/eurosat-100-{train,val,test}.txt    (EuroSAT100 subset, 60/20/20 patches)

Each patch is a 64x64 GeoTIFF of 13 ``uint16`` bands (reflectance x 1e4) stored in the order
B01..B12 then B8A **last**. Split files list ``<Class>_<N>.jpg``; the ``.jpg`` stands for the
``.tif`` file. When both kinds of split files are present, the full ones win.

torchgeo is driven with ``download=False`` and ``checksum=False``; this module checks the
layout itself first so that a missing folder or split file is a :class:`DataError` naming the
path, never a download attempt or an archive extraction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.class_folders import label_ids, present_classes
from eosfm_cli.data.registry import EUROSAT_CLASSES, EUROSAT_LAYOUT
from eosfm_cli.errors import DataError

#: Band order inside every EuroSAT GeoTIFF (B8A is the 13th and last band).
FILE_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A",
)  # fmt: skip

IMAGE_DIR = Path("ds", "images", "remote_sensing", "otherDatasets", "sentinel_2", "tif")

_SPLIT_PATTERNS = {"full": "eurosat-{split}.txt", "eurosat100": "eurosat-100-{split}.txt"}


def split_variant(root: Path, split: str) -> str:
    """Tell which split files a EuroSAT root holds for ``split``.

    Args:
        root: the dataset root.
        split: ``train``, ``val`` or ``test``.

    Returns:
        ``"full"`` when ``eurosat-<split>.txt`` exists (preferred), else ``"eurosat100"`` when
        ``eurosat-100-<split>.txt`` exists.

    Raises:
        DataError: when neither split file exists.
    """
    for variant, pattern in _SPLIT_PATTERNS.items():
        if (root / pattern.format(split=split)).is_file():
            return variant
    raise DataError(
        f"EuroSAT split file for {split!r} not found",
        where=str(root / _SPLIT_PATTERNS["full"].format(split=split)),
        hint=f"expected {EUROSAT_LAYOUT}; set the folder with --root",
    )


def split_names(path: Path) -> list[str]:
    """Read a split file and return its patch file names (``.jpg`` entries become ``.tif``)."""
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            names.append(line.replace(".jpg", ".tif"))
    return names


class EuroSATSplit(Dataset[dict[str, Tensor]]):
    """One EuroSAT split with bands selected by name, as the loader contract wants it.

    Args:
        inner: the torchgeo dataset of the split, already restricted to the requested bands.
        ids: the EuroSAT class id of each of ``inner``'s labels (they differ when some class
            folders are absent).
    """

    def __init__(self, inner: Any, ids: list[int] | None = None) -> None:
        self.inner = inner
        self.ids = ids if ids is not None else list(range(len(EUROSAT_CLASSES)))

    def __len__(self) -> int:
        """Return the number of patches in the split."""
        return len(self.inner)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, 64, 64), "label": int64 scalar}``."""
        sample = self.inner[index]
        label = torch.tensor(self.ids[int(sample["label"])], dtype=torch.long)
        return {"image": sample["image"].float(), "label": label}


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one EuroSAT split.

    Args:
        request: the dataset request; ``request.bands`` are canonical S2 names (repeats allowed).

    Returns:
        A dataset of ``{"image": float32 (C, 64, 64) raw reflectance x 1e4, "label": int64}``.

    Raises:
        DataError: when the root, the image folder or the split file is missing, when no class
            folder is there, or when a patch of a present class listed in the split file is
            absent. Absent class folders are named in a warning: the others are read, with
            their labels in the full 10-class numbering.
        BandError: when a requested band is not one of EuroSAT's 13 bands.
    """
    from torchgeo.datasets import EuroSAT, EuroSAT100

    where = f"dataset {request.name or 'eurosat'}"
    band_indices(request.bands, FILE_BANDS, where)
    if request.classes and tuple(request.classes) != EUROSAT_CLASSES:
        raise DataError(
            "EuroSAT has its own 10 classes; the requested class list differs",
            where=where,
            hint=f"use the classes {', '.join(EUROSAT_CLASSES)}",
        )

    root = require_dir(Path(request.root), EUROSAT_LAYOUT)
    image_dir = root / IMAGE_DIR
    if not image_dir.is_dir():
        zipped = [p.name for p in root.glob("EuroSAT*.zip")]
        raise DataError(
            "EuroSAT image folder not found",
            where=str(image_dir),
            hint=(f"unzip {zipped[0]} in {root}; " if zipped else "")
            + f"expected {EUROSAT_LAYOUT}; set the folder with --root",
        )
    present = present_classes(image_dir, EUROSAT_CLASSES, "EuroSAT")

    variant = split_variant(root, request.split)
    split_file = root / _SPLIT_PATTERNS[variant].format(split=request.split)
    cls = EuroSAT if variant == "full" else EuroSAT100
    try:
        inner = cls(
            root=str(root),
            split=request.split,
            bands=tuple(request.bands),
            download=False,
            checksum=False,
        )
    except FileNotFoundError as err:  # torchvision: a class has no file of this split
        raise DataError(
            f"EuroSAT split {request.split!r} is incomplete: {err}",
            where=str(split_file),
            hint=f"expected {EUROSAT_LAYOUT}",
        ) from err

    found = {Path(path).name for path, _ in inner.samples}
    absent = [
        n for n in split_names(split_file) if n not in found and n.rsplit("_", 1)[0] in present
    ]
    if absent:
        raise DataError(
            f"{len(absent)} patch(es) of the split file are missing, e.g. {absent[0]}",
            where=str(image_dir),
            hint=f"re-extract the dataset; expected {EUROSAT_LAYOUT}",
        )
    return EuroSATSplit(inner, label_ids(inner.classes, EUROSAT_CLASSES, "EuroSAT", image_dir))
