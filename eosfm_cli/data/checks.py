"""Check a dataset's samples before a stage writes anything.

Training on a sample with the wrong band count, a mask of another size, NaN pixels or an
out-of-range label fails late (mid-epoch, deep inside torch) or silently (a NaN loss). Stages
read each split through :func:`check_split` first, so such a sample is one
:class:`~eosfm_cli.errors.DataError` naming the sample, before the workspace is touched.

Small splits are read whole; larger ones through an evenly spread subset of
:data:`MAX_CHECKED` samples (always the first and the last). A bad file outside the subset
still stops the run with a :class:`~eosfm_cli.errors.DataError` when it is read, but then the
manifest records a failed run.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eosfm_cli.errors import DataError, EosfmError

#: Samples read per split at most.
MAX_CHECKED = 512

_FIX = "fix or remove the file, or leave the sample out of the split"


@functools.cache
def data_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a reader raises on a bad *file*: these become a :class:`DataError`.

    An unreadable or missing file (``OSError``, GDAL's and OGR's errors, a bad zip or a
    truncated stream) or a bad value or shape in it (``ValueError``, which a JSON or Unicode
    decoding error also is). Anything else a loader raises (``TypeError``, ``KeyError``,
    ``AttributeError``, ...) is a bug of ours and must surface as a crash with its traceback.
    """
    from pyogrio.errors import DataSourceError
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    return (
        OSError,
        ValueError,
        EOFError,
        zipfile.BadZipFile,
        RasterioError,
        CPLE_BaseError,
        DataSourceError,
    )


def _indices(n: int, cap: int) -> list[int]:
    if n <= cap:
        return list(range(n))
    step = (n - 1) / (cap - 1)
    return sorted({round(i * step) for i in range(cap)})


def describe(ds: Any, index: int, split: str, root: Path | str) -> str:
    """Name a sample for messages: the dataset's own ``source(index)`` when it has one."""
    source = getattr(ds, "source", None)
    if callable(source):
        try:
            return str(source(index))
        except Exception:  # naming must never hide the real problem
            pass
    return f"{root}: {split} sample #{index}"


def check_split(
    ds: Any,
    split: str,
    root: Path | str,
    bands: Sequence[str],
    task: str,
    num_classes: int,
    ignore_index: int | None = None,
    max_samples: int = MAX_CHECKED,
) -> None:
    """Read samples of one split and check them against the loader contract.

    Args:
        ds: the split's dataset (items are dicts of tensors, see :mod:`eosfm_cli.data.base`).
        split: ``train``, ``val`` or ``test`` (for messages).
        root: the dataset folder (for messages).
        bands: the band names the images must carry, in order.
        task: the task kind (which keys a sample holds).
        num_classes: number of classes (labels and masks must lie below it).
        ignore_index: label value that is allowed outside the classes.
        max_samples: samples read at most.

    Raises:
        DataError: naming the first bad sample and what is wrong with it.
    """
    for i in _indices(len(ds), max_samples):
        try:
            sample = ds[i]
        except EosfmError:
            raise
        except data_errors() as err:  # a bad file; the cause stays chained for --verbose
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise DataError(
                f"cannot read the sample ({first})",
                where=describe(ds, i, split, root),
                hint=_FIX,
            ) from err
        problem = sample_problem(sample, len(bands), task, num_classes, ignore_index)
        if problem:
            raise DataError(problem, where=describe(ds, i, split, root), hint=_FIX)


def sample_problem(
    sample: Any, n_bands: int, task: str, num_classes: int, ignore_index: int | None
) -> str | None:
    """What is wrong with one sample, or ``None`` when it keeps the loader contract."""
    import torch

    if not isinstance(sample, dict) or "image" not in sample:
        return "the sample has no image"
    images = [sample["image"]] + ([sample["image2"]] if "image2" in sample else [])
    for img in images:
        if not isinstance(img, torch.Tensor) or img.dim() != 3:
            return "the image is not a (bands, height, width) array"
        if img.shape[0] != n_bands:
            return f"the image has {img.shape[0]} bands, the profile asks for {n_bands}"
        if img.shape != images[0].shape:
            return f"the two dates differ in shape ({tuple(images[0].shape)} vs {tuple(img.shape)})"
        if img.numel() == 0:
            return "the image is empty"
        if img.is_floating_point() and not bool(torch.isfinite(img).all()):
            bad = int((~torch.isfinite(img)).sum())
            return f"the image holds {bad} NaN or infinite pixel values (nodata)"
        if bool((img == img.reshape(-1)[0]).all()):
            return f"every pixel of every band is {img.reshape(-1)[0].item():g} (nodata only)"
    h, w = images[0].shape[-2:]
    mask = sample.get("mask")
    if task in ("segmentation", "change_detection", "regression"):
        if not isinstance(mask, torch.Tensor):
            return "the sample has no mask"
        if tuple(mask.shape[-2:]) != (h, w) or mask.dim() != 2:
            return f"the mask is {tuple(mask.shape)}, the image is {h}x{w}"
    label = sample.get("label")
    target = mask if task in ("segmentation", "change_detection") else label
    if task in ("classification", "segmentation", "change_detection") and num_classes > 0:
        if not isinstance(target, torch.Tensor):
            return "the sample has no label"
        valid = (target >= 0) & (target < num_classes)
        if ignore_index is not None:
            valid |= target == ignore_index
        if not bool(valid.all()):
            value = target[~valid].reshape(-1)[0].item()
            return f"label {value} is outside the {num_classes} classes"
    return None
