"""Windowed reading of large image/mask pairs: seeded training crops and covering tiles.

Several segmentation releases ship images far larger than a training patch (Inria 5000 px,
DeepGlobe 2448 px, LoveDA 1024 px). Their loaders list image/mask pairs and hand them to
:class:`WindowedSegmentation`, which never decodes a whole image when it exceeds the patch size:
every sample is one window read through rasterio (GDAL reads GeoTIFF, PNG and JPEG windows
without decoding the rest of the file into memory).

- **train**: ``crops_per_image`` random windows per image, drawn once from the request seed, so
  the split is the same on every run and for the statistics pass.
- **val / test**: a systematic grid of tiles that covers every pixel; the last row and column of
  tiles are aligned to the image edge (they overlap their neighbour) so every tile has the patch
  size and tiles batch together.

An image no larger than the patch (or any image when there is no patch size) is one window, the
whole image.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.errors import DataError

#: Decodes the mask bands of one window (``(k, h, w)``, file dtype) into ``int64 (h, w)``.
MaskDecoder = Callable[[np.ndarray[Any, Any], Path], np.ndarray[Any, np.dtype[np.int64]]]


@dataclass(frozen=True)
class PatchWindow:
    """A window of an image, in pixels (row and column of its top-left corner)."""

    row: int
    col: int
    height: int
    width: int


@dataclass(frozen=True)
class ImagePair:
    """One image file and its mask file."""

    image: Path
    mask: Path


def _starts(length: int, size: int) -> list[int]:
    """Offsets of ``size``-long tiles covering ``[0, length)``, the last one flush with the end."""
    if size >= length:
        return [0]
    steps = math.ceil(length / size)
    return [min(i * size, length - size) for i in range(steps)]


def tile_windows(height: int, width: int, size: int | None) -> list[PatchWindow]:
    """Return a grid of ``size`` x ``size`` windows that covers the whole image.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        size: the tile size; ``None`` gives one window, the whole image.

    Returns:
        Windows in row-major order. Along a side shorter than ``size`` the window is the side.
    """
    if size is None:
        return [PatchWindow(0, 0, height, width)]
    h, w = min(size, height), min(size, width)
    return [PatchWindow(r, c, h, w) for r in _starts(height, size) for c in _starts(width, size)]


def random_windows(
    height: int, width: int, size: int | None, count: int, rng: random.Random
) -> list[PatchWindow]:
    """Draw ``count`` random ``size`` x ``size`` windows inside the image.

    Args:
        height: image height in pixels.
        width: image width in pixels.
        size: the crop size; ``None`` gives one window, the whole image.
        count: number of crops.
        rng: the seeded random generator.

    Returns:
        The windows; a single whole-image window when the image is no larger than ``size``.
    """
    if size is None or (height <= size and width <= size):
        return [PatchWindow(0, 0, height, width)]
    h, w = min(size, height), min(size, width)
    return [
        PatchWindow(rng.randint(0, height - h), rng.randint(0, width - w), h, w)
        for _ in range(count)
    ]


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

    Raises:
        DataError: when the file is missing or unreadable.
    """
    with _open(path, layout) as src:
        return int(src.count), int(src.height), int(src.width)


def read_window(
    path: Path, window: PatchWindow, bands: Sequence[int], layout: str
) -> np.ndarray[Any, Any]:
    """Read ``bands`` (1-based, repeats allowed) of one window of a file.

    Raises:
        DataError: when the file is missing, unreadable or smaller than the window.
    """
    from rasterio.windows import Window

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
        data = src.read(unique, window=Window(window.col, window.row, window.width, window.height))
    return data[[unique.index(b) for b in bands]]  # type: ignore[no-any-return]


def int_option(options: dict[str, Any], key: str, default: int) -> int:
    """Read a positive integer dataset option.

    Raises:
        DataError: when the value is not a positive integer.
    """
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(
            f"bad value {value!r}", where=f"dataset.options.{key}", hint="use a positive integer"
        )
    return value


def fraction_option(options: dict[str, Any], key: str, default: float) -> float:
    """Read a dataset option that is a fraction in ``(0, 1)``.

    Raises:
        DataError: when the value is not a number strictly between 0 and 1.
    """
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise DataError(
            f"bad value {value!r}", where=f"dataset.options.{key}", hint="use a number in (0, 1)"
        )
    return float(value)


def hold_out(names: Sequence[str], fraction: float, seed: int) -> set[str]:
    """Pick a seeded ``fraction`` of ``names`` (at least one, never all when there are two+).

    Args:
        names: the candidates (order does not matter).
        fraction: share to hold out.
        seed: the random seed.

    Returns:
        The held-out names.
    """
    order = sorted(set(names))
    random.Random(seed).shuffle(order)
    n = round(len(order) * fraction)
    n = max(1, min(n, len(order) - 1)) if len(order) >= 2 else 0
    return set(order[:n])


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
            if split == "train":
                found = random_windows(height, width, patch_size, crops_per_image, rng)
            else:
                found = tile_windows(height, width, patch_size)
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
