"""The contract every dataset loader follows.

A loader is a function ``build(request: DatasetRequest) -> torch.utils.data.Dataset``
registered in :mod:`eosfm_cli.data.registry`. Its samples are dicts:

- ``image``: ``float32`` tensor ``(C, H, W)`` of **raw physical values** (reflectance x 1e4,
  SAR backscatter in dB, 8-bit DNs), with channels in the order of ``request.bands``.
  Normalisation is the model's job: each specialist carries its own statistics.
- ``image2``: the second date, same shape (change detection only).
- ``label``: ``int64`` scalar (classification), ``float32`` multi-hot ``(K,)`` (multi-label).
- ``mask``: ``int64`` ``(H, W)`` (segmentation, change detection) or ``float32`` ``(H, W)``
  (pixel regression). ``request.ignore_index`` marks pixels to ignore.
- ``boxes``: ``float32`` ``(N, 4)`` boxes in pixels, ``(xmin, ymin, xmax, ymax)`` with
  ``xmax > xmin`` and ``ymax > ymin``, and ``labels``: ``int64`` ``(N,)`` class indices
  (object detection; ``N`` may be 0). Detection samples have no ``label`` or ``mask``.

Samples whose keys do not stack into a batch (detection: ``N`` varies, and so may ``H, W``)
come from a dataset with a ``collate_fn`` attribute, which
:func:`eosfm_cli.data.loaders.make_loader` passes to its ``DataLoader``
(:func:`eosfm_cli.data.detection.collate_detection` for detection).

Loaders read the dataset's real release layout under ``request.root`` and raise
:class:`~eosfm_cli.errors.DataError` naming the path and the expected layout when files are
missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from eosfm_cli.errors import BandError, DataError

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class DatasetRequest:
    """Everything a loader needs to build one split.

    Attributes:
        name: the experiment name (``eurosat_s2``).
        root: the dataset folder.
        split: ``train``, ``val`` or ``test``.
        bands: canonical band names, in the order the model expects them.
        classes: class names.
        seed: seed of any split the loader draws itself.
        patch_size: crop or tile size for datasets with large images.
        ignore_index: label value to ignore.
        options: dataset-specific options from the profile.
    """

    name: str
    root: Path
    split: Split
    bands: tuple[str, ...]
    classes: tuple[str, ...] = ()
    seed: int = 0
    patch_size: int | None = None
    ignore_index: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


def band_indices(wanted: Sequence[str], available: Sequence[str], where: str) -> list[int]:
    """Return the positions of ``wanted`` bands among a file's ``available`` bands.

    Args:
        wanted: canonical names requested by the profile (repeats allowed).
        available: canonical names of the bands stored in the files, in file order.
        where: the dataset, for the error message.

    Raises:
        BandError: if a requested band is not in the files.
    """
    out = []
    for name in wanted:
        if name not in available:
            raise BandError(
                f"band {name} is not in this dataset",
                where=where,
                hint=f"choose among {', '.join(dict.fromkeys(available))}",
            )
        out.append(list(available).index(name))
    return out


def require_dir(path: Path, layout: str) -> Path:
    """Raise a :class:`DataError` naming ``path`` and the expected layout when it is missing."""
    if not path.is_dir():
        raise DataError(
            "dataset folder not found",
            where=str(path),
            hint=f"expected {layout}; set the folder with --root",
        )
    return path


def require_file(path: Path, layout: str) -> Path:
    """Raise a :class:`DataError` naming ``path`` and the expected layout when it is missing."""
    if not path.is_file():
        raise DataError(
            "dataset file not found",
            where=str(path),
            hint=f"expected {layout}; set the folder with --root",
        )
    return path


def check_class_count(
    request: DatasetRequest,
    classes: Sequence[str],
    dataset: str,
    where: str,
    kind: str = "",
    note: str = "",
) -> None:
    """Refuse a profile whose class list does not match the dataset's label encoding.

    Args:
        request: the dataset request (an empty ``classes`` means "the dataset's own").
        classes: the dataset's classes, in label order.
        dataset: the dataset's name for the message (``"CaFFe"``).
        where: the experiment, for the message.
        kind: the kind of classes (``"zone"``), if worth saying.
        note: extra words after the classes (``" (no-data first)"``).

    Raises:
        DataError: when the counts differ.
    """
    if request.classes and len(request.classes) != len(classes):
        raise DataError(
            f"{dataset} has {len(classes)} {kind + ' ' if kind else ''}classes{note}, "
            f"{len(request.classes)} were requested",
            where=where,
            hint=f"use the classes {', '.join(classes)}",
        )
