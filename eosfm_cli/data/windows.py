"""Windowed reading of large images, dataset-option parsing and seeded hold-out splits.

Several releases ship images far larger than a training patch (Inria 5000 px, DeepGlobe
2448 px, LoveDA 1024 px, CaFFe, DFC2022, ETCI 2021 scenes). Their loaders never decode a whole
image when it exceeds the patch size: they list, once at build time, the windows they will read
(a :class:`PatchWindow` per sample) and read only that window when a sample is asked for
(GDAL reads GeoTIFF, PNG and JPEG windows without decoding the rest of the file).

- **train**: seeded random crops per image, drawn once from the request seed, so the split is
  the same on every run and for the statistics pass (:func:`random_windows`).
- **val / test**: a systematic grid of tiles that covers every pixel; the last row and column of
  tiles are aligned to the image's far edges (they overlap their neighbour) so every tile has
  the patch size and tiles batch together (:func:`tile_windows`).

:func:`plan_windows` picks between the two for a split. An image no larger than the patch (or
any image when there is no patch size) is one window, the whole image.
:class:`WindowedSegmentation` is the ready-made dataset for image/mask pairs.

Loaders that draw their own hold-out split use :func:`split_keys`: sorted keys, shuffled by the
request's seed, cut into fractions, so a split never depends on file-system order. The
``*_option`` readers and :func:`check_options` validate ``dataset.options`` with messages that
name the key.
"""

from __future__ import annotations

import difflib
import random
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.errors import DataError
from eosfm_cli.tiles import tile_starts

K = TypeVar("K", bound=Hashable)

#: Decodes the mask bands of one window (``(k, h, w)``, file dtype) into ``int64 (h, w)``.
MaskDecoder = Callable[[np.ndarray[Any, Any], Path], np.ndarray[Any, np.dtype[np.int64]]]


@dataclass(frozen=True)
class PatchWindow:
    """A window of an image, in pixels.

    Attributes:
        row: top row.
        col: left column.
        height: window height.
        width: window width.
    """

    row: int
    col: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the window, for numpy arrays."""
        return slice(self.row, self.row + self.height), slice(self.col, self.col + self.width)

    def to_rasterio(self) -> Any:
        """Return the same window as a :class:`rasterio.windows.Window`."""
        from rasterio.windows import Window

        return Window(self.col, self.row, self.width, self.height)


@dataclass(frozen=True)
class ImagePair:
    """One image file and its mask file."""

    image: Path
    mask: Path


def tile_windows(height: int, width: int, size: int | None) -> list[PatchWindow]:
    """Return a grid of ``size`` x ``size`` windows that covers the whole image.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        size: the tile size; ``None`` gives one window, the whole image.

    Returns:
        Windows in row-major order, ``min(size, height) x min(size, width)`` pixels each; the
        last row and column are shifted onto the image's edges, so together they cover every
        pixel.
    """
    if size is None:
        return [PatchWindow(0, 0, height, width)]
    h, w = min(size, height), min(size, width)
    rows, cols = tile_starts(height, size), tile_starts(width, size)
    return [PatchWindow(r, c, h, w) for r in rows for c in cols]


def random_windows(
    height: int, width: int, size: int | None, count: int, rng: random.Random
) -> list[PatchWindow]:
    """Draw ``count`` random ``size`` x ``size`` windows inside the image.

    Each window draws its row, then its column, from ``rng``; callers that share one generator
    across images therefore get the same crops for the same image order and seed.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        size: the crop size; ``None`` gives one window, the whole image.
        count: number of crops.
        rng: the seeded random generator.

    Returns:
        The windows; a single whole-image window (nothing drawn) when the image is no larger
        than ``size``.
    """
    if size is None or (height <= size and width <= size):
        return [PatchWindow(0, 0, height, width)]
    h, w = min(size, height), min(size, width)
    return [
        PatchWindow(rng.randint(0, height - h), rng.randint(0, width - w), h, w)
        for _ in range(count)
    ]


def plan_windows(
    height: int,
    width: int,
    size: int | None,
    split: str,
    rng: random.Random,
    crops: int | None = None,
) -> list[PatchWindow]:
    """Return the windows one image contributes to a split.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        size: patch size (``None``: whole images).
        split: ``train`` draws random crops; any other split takes the covering tiles.
        rng: seeded generator for the training crops.
        crops: crops per training image; ``None`` means as many as the tiles of the grid, so
            an epoch sees about the image's area.

    Returns:
        The windows, in the order they should become samples.
    """
    if split != "train":
        return tile_windows(height, width, size)
    if crops is None:
        crops = len(tile_windows(height, width, size))
    return random_windows(height, width, size, crops, rng)


def _open(path: Path, layout: str) -> Any:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as err:
        raise DataError(
            "image file missing or unreadable", where=str(path), hint=f"expected {layout}"
        ) from err


def raster_shape(path: Path, layout: str) -> tuple[int, int, int]:
    """Return ``(bands, height, width)`` of an image file, reading its header only.

    Args:
        path: the image file.
        layout: the release layout, for error messages.

    Returns:
        The band count, height and width.

    Raises:
        DataError: when the file is missing or unreadable.
    """
    with _open(path, layout) as src:
        return int(src.count), int(src.height), int(src.width)


def read_window(
    path: Path, window: PatchWindow, bands: Sequence[int], layout: str
) -> np.ndarray[Any, Any]:
    """Read ``bands`` (1-based, repeats allowed) of one window of a file.

    Args:
        path: the image file.
        window: the window to read.
        bands: 1-based bands, in the order to return them.
        layout: the release layout, for error messages.

    Returns:
        ``(len(bands), window.height, window.width)`` in the file's dtype.

    Raises:
        DataError: when the file is missing, unreadable or smaller than the window.
    """
    unique = sorted(set(bands))
    with _open(path, layout) as src:
        if window.row + window.height > src.height or window.col + window.width > src.width:
            raise DataError(
                f"file is {src.width}x{src.height} px, smaller than its image",
                where=str(path),
                hint="an image and its mask must have the same size",
            )
        if max(unique) > src.count:
            raise DataError(
                f"file has {src.count} band(s), {max(unique)} needed",
                where=str(path),
                hint=f"expected {layout}",
            )
        data = src.read(unique, window=window.to_rasterio())
    return data[[unique.index(b) for b in bands]]  # type: ignore[no-any-return]


@overload
def int_option(options: Mapping[str, Any], key: str, default: int) -> int: ...


@overload
def int_option(options: Mapping[str, Any], key: str, default: None) -> int | None: ...


def int_option(options: Mapping[str, Any], key: str, default: int | None) -> int | None:
    """Read a positive integer dataset option.

    Args:
        options: the dataset options.
        key: the option name.
        default: value when the option is absent; with a ``None`` default an explicit
            ``null`` also reads as ``None`` (e.g. "as many crops as tiles").

    Returns:
        The value.

    Raises:
        DataError: when the value is not a positive integer.
    """
    value = options.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(
            f"bad value {value!r}", where=f"dataset.options.{key}", hint="use a positive integer"
        )
    return value


def fraction_option(
    options: Mapping[str, Any], key: str, default: float, *, allow_zero: bool = False
) -> float:
    """Read a dataset option that is a fraction below 1.

    Args:
        options: the dataset options.
        key: the option name.
        default: value when the option is absent.
        allow_zero: accept 0 (the range is ``[0, 1)``); otherwise the range is ``(0, 1)``.

    Returns:
        The value as a float.

    Raises:
        DataError: when the value is not a number in the range.
    """
    value = options.get(key, default)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (0 <= value < 1 if allow_zero else 0 < value < 1):
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise DataError(
            f"bad value {value!r}",
            where=f"dataset.options.{key}",
            hint=f"use a number in {interval}",
        )
    return float(value)


def bool_option(options: Mapping[str, Any], key: str, default: bool) -> bool:
    """Read a boolean dataset option.

    Args:
        options: the dataset options.
        key: the option name.
        default: value when the option is absent.

    Returns:
        The value.

    Raises:
        DataError: when the value is not ``true`` or ``false``.
    """
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise DataError(
            f"bad value {value!r}", where=f"dataset.options.{key}", hint="use true or false"
        )
    return value


def check_options(options: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    """Refuse an unknown dataset option, suggesting the closest known one.

    Args:
        options: the dataset options.
        known: the option names the loader reads.
        where: the dataset, for the message (``"dataset caffe"``).

    Raises:
        DataError: naming the first unknown option, with a did-you-mean hint when one is close.
    """
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
            raise DataError(
                f"unknown option {key!r} for {where}",
                where=f"dataset.options.{key}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"known options: {', '.join(known) or '(none)'}",
            )


def split_keys(
    keys: Iterable[K],
    seed: int,
    fractions: Mapping[str, float],
    *,
    sort_key: Callable[[K], Any] = repr,
) -> dict[str, list[K]]:
    """Split keys into named parts, seeded and disjoint.

    The unique keys are sorted by ``sort_key``, shuffled by ``seed`` and cut in the order of
    ``fractions``. The sort only fixes the starting order, but that order decides the draw:
    ``repr`` (the default) orders any hashable keys, ``str`` orders string keys the plain way.
    A loader must keep the ``sort_key`` it was released with, or its splits change.

    Args:
        keys: the keys (scenes, images, fields); duplicates are merged.
        seed: the random seed.
        fractions: share of the keys for each named hold-out part (``{"val": 0.1}``); the rest
            goes to ``train``. Each hold-out part with a positive fraction gets at least one key
            while ``train`` keeps one.
        sort_key: orders the keys before the shuffle and within each part.

    Returns:
        ``{<part>: [...], "train": [...]}``, each sorted by ``sort_key``.
    """
    order = sorted(set(keys), key=sort_key)
    random.Random(seed).shuffle(order)
    out: dict[str, list[K]] = {}
    start = 0
    for part, fraction in fractions.items():
        n = round(len(order) * fraction)
        if fraction > 0 and n == 0 and len(order) - start > 1:
            n = 1
        n = min(n, max(len(order) - start - 1, 0))
        out[part] = sorted(order[start : start + n], key=sort_key)
        start += n
    out["train"] = sorted(order[start:], key=sort_key)
    return out


class WindowedSegmentation(Dataset[dict[str, Tensor]]):
    """Segmentation samples read as windows of large image/mask files.

    Args:
        pairs: image and mask files.
        bands: 1-based image bands to return, in order (repeats allowed).
        mask_bands: 1-based mask bands the decoder needs.
        decode: turns the mask bands of a window into class ids.
        split: ``train`` draws random crops, ``val`` and ``test`` tile.
        patch_size: crop / tile size (``None``: whole images).
        crops_per_image: random crops per image in the training split.
        seed: seed of the training crops.
        layout: the release layout, for error messages.

    Raises:
        DataError: when an image is unreadable or has too few bands.
    """

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        bands: Sequence[int],
        mask_bands: Sequence[int],
        decode: MaskDecoder,
        *,
        split: str,
        patch_size: int | None,
        crops_per_image: int,
        seed: int,
        layout: str,
    ) -> None:
        self.pairs = list(pairs)
        self.bands = list(bands)
        self.mask_bands = list(mask_bands)
        self.decode = decode
        self.layout = layout
        rng = random.Random(seed)
        #: (pair index, window) of every sample
        self.windows: list[tuple[int, PatchWindow]] = []
        for i, pair in enumerate(self.pairs):
            count, height, width = raster_shape(pair.image, layout)
            if count < max(self.bands):
                raise DataError(
                    f"image has {count} band(s), {max(self.bands)} needed",
                    where=str(pair.image),
                    hint=f"expected {layout}",
                )
            found = plan_windows(height, width, patch_size, split, rng, crops_per_image)
            self.windows.extend((i, w) for w in found)

    def __len__(self) -> int:
        """Return the number of windows."""
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, h, w) raw values, "mask": int64 (h, w)}``."""
        i, window = self.windows[index]
        pair = self.pairs[i]
        image = read_window(pair.image, window, self.bands, self.layout).astype(np.float32)
        mask = self.decode(read_window(pair.mask, window, self.mask_bands, self.layout), pair.mask)
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}
