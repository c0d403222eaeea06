"""Users' own data: a folder of GeoTIFFs, or a CSV of image paths, described by the profile.

The profile's ``dataset:`` section says what the folder holds: ``name: folder``, the ``task``,
the ``bands`` (names from the band catalog, ``eosfm datasets bands``), the ``classes`` and,
optionally, ``patch_size``, ``ignore_index`` and ``options``. Layout under ``data.root``::

    segmentation       images/<name>.tif    masks/<name>.tif           (same name)
    change_detection   images1/<name>.tif   images2/<name>.tif   masks/<name>.tif
    classification     labels.csv   path,label        label: a class name or 0-based index
    multilabel         labels.csv   path,label        label: class names separated by ";"
                       or           path,<class>,...  one 0/1 column per class

``.tif`` and ``.tiff`` are both accepted; CSV paths are relative to the CSV's folder (or
absolute) and may point at any raster GDAL reads. Masks hold one band of 0-based class indices
(``ignore_index`` marks pixels to leave out).

Splits, the first that applies:

1. sub-folders ``train/``, ``val/`` and ``test/``, each holding the layout above;
2. a ``split`` column in ``labels.csv``, or ``split.csv`` (``name,split``; ``name`` is the
   image's file name or stem) beside ``images/`` (images it does not list are left out);
3. a split drawn with the profile's ``data.split_seed``: ``options.val_fraction`` and
   ``options.test_fraction`` (0.15 each) of the images, at least one each when there are
   three or more.

Bands. The files' bands are the profile's ``bands``, in order. When the profile selects a
subset or another order, ``options.file_bands`` lists the bands the files hold, in file order,
and the profile's bands are picked from them by name.

Windows. Without ``patch_size`` every image is read whole, so all must share one size. With
it, images are read through windows of ``patch_size`` pixels: a grid covering each image for
segmentation and change detection (the last row and column of windows are moved inwards so
they stay inside), the central window for classification and multi-label. An image smaller
than ``patch_size`` is an error.

Every file is opened (header only) when a split is built, so a file that cannot be read, whose
band count differs from the declared bands, or whose mask (or second date) differs in size is
one :class:`~eosfm_cli.errors.DataError` naming the file, before any training starts.
"""

from __future__ import annotations

import contextlib
import difflib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.folder_items import FOLDERS, FolderItem, dense_items, table_items
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.errors import DataError, ProfileError
from eosfm_cli.tiles import tile_starts

TASKS: tuple[str, ...] = ("segmentation", "change_detection", "classification", "multilabel")
OPTIONS: tuple[str, ...] = ("task", "file_bands", "val_fraction", "test_fraction")
DEFAULT_FRACTION = 0.15
#: The registry's entry: its layout names the folders and files expected.
SPEC = get_experiment("folder")

#: A window: (row offset, column offset, height, width).
Window = tuple[int, int, int, int]


def _fix(declared: Sequence[str]) -> str:
    return (
        f"the profile declares {len(declared)} band(s) ({', '.join(declared)}): list the "
        "file's bands in order in dataset.bands, or in dataset.options.file_bands when the "
        "profile selects some of them"
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence rasterio's warning about files without georeferencing: training needs none."""
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def probe(path: Path, what: str) -> tuple[int, int, int]:
    """Open a raster's header and return ``(bands, height, width)``.

    Raises:
        DataError: naming the file when it is missing or unreadable.
    """
    import rasterio
    from rasterio.errors import RasterioError

    if not path.is_file():
        raise DataError(f"{what} not found", where=str(path), hint=f"expected {SPEC.layout}")
    try:
        with _quiet(), rasterio.open(path) as src:
            return int(src.count), int(src.height), int(src.width)
    except (RasterioError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise DataError(
            f"cannot read the {what} ({first})",
            where=str(path),
            hint="check that it is a raster GDAL reads (GeoTIFF), or remove it",
        ) from None


def read_window(path: Path, bands: Sequence[int], window: Window) -> np.ndarray:
    """Read 1-based ``bands`` of one window of a raster.

    Raises:
        DataError: naming the file when its pixels cannot be read.
    """
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window as RioWindow

    row, col, height, width = window
    try:
        with _quiet(), rasterio.open(path) as src:
            return src.read(list(bands), window=RioWindow(col, row, width, height))  # type: ignore[no-any-return]
    except (RasterioError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise DataError(
            f"cannot read the pixels ({first})", where=str(path), hint="re-create the file"
        ) from None


class FolderDataset(Dataset[dict[str, Tensor]]):
    """One split of a folder dataset: one sample per window of each item.

    Args:
        task: the task kind.
        items: the split's images and targets.
        windows: ``(item index, window)`` per sample.
        channels: 0-based positions of the requested bands in the files.
        num_classes: number of classes.
    """

    def __init__(
        self,
        task: str,
        items: list[FolderItem],
        windows: list[tuple[int, Window]],
        channels: list[int],
        num_classes: int,
    ) -> None:
        self.task = task
        self.items = items
        self.windows = windows
        self.bands = [c + 1 for c in channels]
        self.num_classes = num_classes

    def __len__(self) -> int:
        """Return the number of windows."""
        return len(self.windows)

    def source(self, index: int) -> str:
        """The image file (and window) of a sample, for messages."""
        item, (row, col, h, w) = self.items[self.windows[index][0]], self.windows[index][1]
        whole = (row, col, h, w) == (0, 0, item.height, item.width)
        return str(item.files[0]) + ("" if whole else f" (window {row},{col} {h}x{w})")

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return the sample of one window (keys as in :mod:`eosfm_cli.data.base`)."""
        idx, window = self.windows[index]
        item = self.items[idx]
        image = torch.from_numpy(read_window(item.files[0], self.bands, window).astype(np.float32))
        sample = {"image": image}
        if self.task == "change_detection":
            second = read_window(item.files[1], self.bands, window)
            sample["image2"] = torch.from_numpy(second.astype(np.float32))
        if self.task in FOLDERS:
            mask = read_window(item.files[-1], [1], window)[0]
            sample["mask"] = torch.from_numpy(mask.astype(np.int64))
        elif self.task == "classification":
            sample["label"] = torch.tensor(item.target, dtype=torch.int64)
        else:
            sample["label"] = torch.tensor(item.target, dtype=torch.float32)
        return sample


# Options ------------------------------------------------------------------------------------
def _options(request: DatasetRequest) -> dict[str, Any]:
    opts = dict(request.options)
    for key in opts:
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, OPTIONS, n=1)
            raise ProfileError(
                f"unknown option {key!r} of the folder dataset",
                where=f"dataset.options.{key}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"valid options: {', '.join(OPTIONS)}",
            )
    task = opts.get("task")
    if task not in TASKS:
        raise ProfileError(
            f"the folder dataset cannot hold task {task!r}",
            where="dataset.task",
            hint=f"choose one of {', '.join(TASKS)}",
        )
    for key in ("val_fraction", "test_fraction"):
        value = opts.setdefault(key, DEFAULT_FRACTION)
        if not isinstance(value, int | float) or not 0 <= value < 1:
            raise ProfileError(
                f"{key} must be a number in [0, 1), not {value!r}", where=f"dataset.options.{key}"
            )
    if opts["val_fraction"] + opts["test_fraction"] >= 1:
        raise ProfileError(
            "val_fraction + test_fraction leave no training images",
            where="dataset.options",
            hint="keep their sum below 1",
        )
    return opts


def _file_bands(request: DatasetRequest, opts: dict[str, Any]) -> list[str]:
    from eosfm_cli.bands import expand_bands

    declared = opts.get("file_bands")
    if declared is None:
        return list(request.bands)
    return expand_bands(declared)


# Checking headers and cutting windows ------------------------------------------------------
def _measure(item: FolderItem, task: str, n_bands: int, declared: Sequence[str]) -> FolderItem:
    """Open every file of an item; check band counts and sizes; record the image size."""
    count, height, width = probe(item.files[0], "image")
    if count != n_bands:
        raise DataError(
            f"the image has {count} band(s), the profile declares {n_bands}",
            where=str(item.files[0]),
            hint=_fix(declared),
        )
    if task == "change_detection":
        count2, h2, w2 = probe(item.files[1], "second-date image")
        if count2 != n_bands:
            raise DataError(
                f"the image has {count2} band(s), the profile declares {n_bands}",
                where=str(item.files[1]),
                hint=_fix(declared),
            )
        if (h2, w2) != (height, width):
            raise DataError(
                f"the second date is {h2}x{w2}, the first ({item.files[0].name}) is "
                f"{height}x{width}",
                where=str(item.files[1]),
                hint="both dates must cover the same pixels",
            )
    if task in FOLDERS:
        mcount, mh, mw = probe(item.files[-1], "mask")
        if (mh, mw) != (height, width):
            raise DataError(
                f"the mask is {mh}x{mw}, its image ({item.files[0].name}) is {height}x{width}",
                where=str(item.files[-1]),
                hint="a mask must have its image's size",
            )
        if mcount != 1:
            raise DataError(
                f"the mask has {mcount} bands, expected 1 band of class indices",
                where=str(item.files[-1]),
            )
    return FolderItem(item.files, item.target, height, width)


def _windows(items: list[FolderItem], task: str, patch: int | None) -> list[tuple[int, Window]]:
    out: list[tuple[int, Window]] = []
    if patch is None:
        first = items[0]
        for i, item in enumerate(items):
            if (item.height, item.width) != (first.height, first.width):
                raise DataError(
                    f"the image is {item.height}x{item.width}, {first.files[0].name} is "
                    f"{first.height}x{first.width}",
                    where=str(item.files[0]),
                    hint="set dataset.patch_size to read images of several sizes in windows",
                )
            out.append((i, (0, 0, item.height, item.width)))
        return out
    for i, item in enumerate(items):
        if item.height < patch or item.width < patch:
            raise DataError(
                f"the image is {item.height}x{item.width}, smaller than patch_size {patch}",
                where=str(item.files[0]),
                hint="lower dataset.patch_size or leave the image out",
            )
        if task in FOLDERS:
            out += [
                (i, (r, c, patch, patch))
                for r in tile_starts(item.height, patch)
                for c in tile_starts(item.width, patch)
            ]
        else:
            out.append((i, ((item.height - patch) // 2, (item.width - patch) // 2, patch, patch)))
    return out


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one split of a folder dataset.

    Args:
        request: the dataset request; ``request.options["task"]`` is the profile's task
            (the train stage passes it), the other options are described in the module.

    Returns:
        A dataset of samples as in :mod:`eosfm_cli.data.base`.

    Raises:
        ProfileError: for an unsupported task, an unknown option or no classes.
        DataError: naming the file that is missing, unreadable, has the wrong band count or a
            mask (or second date) of another size, and for a bad CSV row.
        BandError: when a profile band is not among ``options.file_bands``.
    """
    opts = _options(request)
    task = str(opts["task"])
    classes = list(request.classes)
    if not classes:
        raise ProfileError(
            "the folder dataset needs its class names",
            where="dataset.classes",
            hint="list the classes in label order (index 0 first)",
        )
    file_bands = _file_bands(request, opts)
    channels = band_indices(request.bands, file_bands, "dataset.options.file_bands")
    root = require_dir(Path(request.root), SPEC.layout)
    if task in FOLDERS:
        items = dense_items(root, request.split, task, request.seed, opts)
    else:
        items = table_items(root, request.split, task, classes, request.seed, opts)
    if not items:
        return FolderDataset(task, [], [], channels, len(classes))
    measured = [_measure(item, task, len(file_bands), file_bands) for item in items]
    windows = _windows(measured, task, request.patch_size)
    return FolderDataset(task, measured, windows, channels, len(classes))
