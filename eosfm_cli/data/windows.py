"""Windowed reading of large images: window plans, raster reads and the windowed dataset.

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
"""

from __future__ import annotations

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
from eosfm_cli.tiles import tile_starts

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
