"""FireRisk (Shen et al., 2023): 7-class fire-risk scene classification of NAIP RGB patches.

The loader reads torchgeo's release layout through torchgeo's own
:class:`~torchgeo.datasets.FireRisk` class (``FireRisk.zip`` extracted)::

    <root>/FireRisk/train/<Class>/<name>.png   70,331 patches, 320x320 RGB, 1 m
    <root>/FireRisk/val/<Class>/<name>.png     21,541 patches

with one folder per class, named as the registry's classes; labels are the class indices in
that (sorted folder) order.

Splits. The release has no test split, and its ``val`` folder is the split the paper reports,
so ``test`` here is the release's ``val`` folder, and ``val`` is a seeded, per-class stratified
``options["val_fraction"]`` (0.1) of the release's ``train`` folder; ``train`` is the rest.

torchgeo is driven with ``download=False`` and ``checksum=False``; this module checks the layout
first so that a missing folder is a :class:`DataError` naming the path, never an extraction of a
``FireRisk.zip`` lying in the root. Patches are small (320 px), so they are read whole and
``patch_size`` is not used.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, check_class_count, require_dir
from eosfm_cli.data.class_folders import label_ids, present_classes
from eosfm_cli.data.options import fraction_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("firerisk")

FILE_BANDS: tuple[str, ...] = ("R", "G", "B")
#: The release folder each split reads.
RELEASE_SPLIT = {"train": "train", "val": "train", "test": "val"}


def stratified_holdout(targets: list[int], fraction: float, seed: int) -> set[int]:
    """Pick a seeded ``fraction`` of the indices of every class (at least one per class of 2+).

    Args:
        targets: the class of every sample.
        fraction: share of each class to hold out.
        seed: the random seed.

    Returns:
        The held-out sample indices.
    """
    rng = random.Random(seed)
    held: set[int] = set()
    for cls in sorted(set(targets)):
        members = [i for i, t in enumerate(targets) if t == cls]
        rng.shuffle(members)
        n = round(len(members) * fraction)
        n = max(1, min(n, len(members) - 1)) if len(members) >= 2 else 0
        held.update(members[:n])
    return held


class FireRiskSplit(Dataset[dict[str, Tensor]]):
    """Some patches of a torchgeo FireRisk folder, bands selected by name.

    Args:
        inner: the torchgeo dataset of a release folder.
        indices: the patches of ``inner`` in this split.
        bands: 0-based positions of the requested bands among R, G, B.
        ids: the FireRisk class id of each of ``inner``'s labels (they differ when some class
            folders are absent).
    """

    def __init__(self, inner: Any, indices: list[int], bands: list[int], ids: list[int]) -> None:
        self.inner = inner
        self.indices = indices
        self.bands = bands
        self.ids = ids

    def __len__(self) -> int:
        """Return the number of patches."""
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, H, W) 8-bit DNs, "label": int64 scalar}``."""
        sample = self.inner[self.indices[index]]
        image = sample["image"][self.bands].float()
        label = torch.tensor(self.ids[int(sample["label"])], dtype=torch.long)
        return {"image": image, "label": label}


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one FireRisk split.

    Args:
        request: the dataset request; ``request.bands`` among R, G, B (repeats allowed).
            ``options``: ``val_fraction`` (0.1).

    Returns:
        A dataset of ``{"image": float32 (C, 320, 320), "label": int64}``.

    Raises:
        DataError: when the root or a release folder is missing, when no class folder is
            there, or a split is empty. Absent class folders are named in a warning: the others
            are read, with their labels in the full class numbering.
        BandError: when a requested band is not R, G or B.
    """
    from torchgeo.datasets import FireRisk

    where = f"dataset {request.name or 'firerisk'}"
    bands = band_indices(request.bands, FILE_BANDS, where)
    check_class_count(request, SPEC.classes, "FireRisk", where)
    val_fraction = fraction_option(request.options, "val_fraction", SPEC.options["val_fraction"])
    root = require_dir(Path(request.root), SPEC.layout)
    release = RELEASE_SPLIT[request.split]
    folder = root / "FireRisk" / release
    if not folder.is_dir():
        zipped = (root / "FireRisk.zip").is_file()
        raise DataError(
            "FireRisk folder not found",
            where=str(folder),
            hint=(f"unzip FireRisk.zip in {root}; " if zipped else "")
            + f"expected {SPEC.layout}; set the folder with --root",
        )
    present_classes(folder, SPEC.classes, "FireRisk")
    try:
        inner = FireRisk(root=str(root), split=release, download=False, checksum=False)
    except FileNotFoundError as err:  # torchvision: a class folder holds no image
        raise DataError(
            f"FireRisk {release} folder is incomplete: {err}",
            where=str(folder),
            hint=f"expected {SPEC.layout}",
        ) from err
    ids = label_ids(inner.classes, SPEC.classes, "FireRisk", folder)
    indices = list(range(len(inner)))
    if request.split != "test":
        held = stratified_holdout(list(inner.targets), val_fraction, request.seed)
        indices = [i for i in indices if (i in held) == (request.split == "val")]
    if not indices:
        raise DataError(
            f"the FireRisk {request.split} split is empty",
            where=str(folder),
            hint="val is carved out of the train folder, which needs two patches or more",
        )
    return FireRiskSplit(inner, indices, bands, ids)
