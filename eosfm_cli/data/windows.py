"""Window plans for datasets whose images exceed the patch size, and seeded hold-out splits.

Large images are never read whole: a loader lists, once at build time, the windows it will read
(a :class:`Box` per sample) and reads only that window when a sample is asked for.

- **train**: ``crops_per_image`` seeded random crops per image (``dataset.options``); by default
  as many crops as the systematic tiles that cover the image, so an epoch sees about its area.
- **val / test**: systematic tiles covering the whole image; the last row and column of tiles
  are aligned on the image's far edges (they overlap their neighbours) so no pixel is dropped.

An image no larger than the patch size (or a request without ``patch_size``) is one window.

Loaders that draw their own validation split use :func:`split_keys`: sorted keys, shuffled by
the request's seed, cut into fractions, so a split never depends on file-system order. The
``option_*`` readers and :func:`check_options` validate ``dataset.options`` with messages that
name the key.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eosfm_cli.errors import DataError

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Box:
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

    def window(self) -> Any:
        """The same window as a :class:`rasterio.windows.Window`."""
        from rasterio.windows import Window

        return Window(self.col, self.row, self.width, self.height)


def _starts(length: int, size: int) -> list[int]:
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, size))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def grid_boxes(height: int, width: int, size: int | None) -> list[Box]:
    """Systematic tiles covering a ``height x width`` image.

    Args:
        height: image height.
        width: image width.
        size: tile size; ``None`` gives the whole image as one tile.

    Returns:
        Row-major tiles of ``min(size, height) x min(size, width)`` pixels; the last row and
        column are shifted onto the image's edges, so together the tiles cover every pixel.
    """
    if size is None:
        return [Box(0, 0, height, width)]
    th, tw = min(size, height), min(size, width)
    return [Box(r, c, th, tw) for r in _starts(height, size) for c in _starts(width, size)]


def random_boxes(
    height: int, width: int, size: int | None, count: int, rng: random.Random
) -> list[Box]:
    """``count`` random crops of ``size`` pixels inside a ``height x width`` image.

    Args:
        height: image height.
        width: image width.
        size: crop size; ``None`` (or an image no larger than it) gives the whole image once.
        count: number of crops.
        rng: the seeded random generator to draw from.
    """
    if size is None or (height <= size and width <= size):
        return [Box(0, 0, height, width)]
    th, tw = min(size, height), min(size, width)
    return [
        Box(rng.randint(0, height - th), rng.randint(0, width - tw), th, tw) for _ in range(count)
    ]


def plan_boxes(
    height: int,
    width: int,
    size: int | None,
    split: str,
    rng: random.Random,
    crops: int | None = None,
) -> list[Box]:
    """The windows one image contributes to a split.

    Args:
        height: image height.
        width: image width.
        size: patch size (``None``: whole images).
        split: ``train`` draws random crops; ``val`` and ``test`` take systematic tiles.
        rng: seeded generator for the training crops.
        crops: crops per training image; ``None`` means as many as the tiles of the grid.
    """
    grid = grid_boxes(height, width, size)
    if split != "train":
        return grid
    return random_boxes(height, width, size, len(grid) if crops is None else crops, rng)


def option_int(
    options: Mapping[str, Any], key: str, default: int | None, minimum: int = 1
) -> int | None:
    """Read an integer dataset option, or raise a :class:`DataError` naming the key."""
    value = options.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(
            f"bad value {value!r}",
            where=f"dataset.options.{key}",
            hint=f"use an integer of at least {minimum}",
        )
    return value


def option_fraction(options: Mapping[str, Any], key: str, default: float) -> float:
    """Read a fraction in ``[0, 1)`` from the dataset options."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise DataError(
            f"bad value {value!r}",
            where=f"dataset.options.{key}",
            hint="use a fraction in [0, 1)",
        )
    return float(value)


def option_bool(options: Mapping[str, Any], key: str, default: bool) -> bool:
    """Read a boolean dataset option."""
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise DataError(
            f"bad value {value!r}", where=f"dataset.options.{key}", hint="use true or false"
        )
    return value


def check_options(options: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    """Refuse an unknown dataset option, suggesting the closest known one."""
    import difflib

    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
            raise DataError(
                f"unknown option {key!r} for {where}",
                where=f"dataset.options.{key}",
                hint=(f"did you mean {close[0]!r}? " if close else "")
                + f"known options: {', '.join(known) or '(none)'}",
            )


def split_keys(keys: Sequence[K], seed: int, fractions: Mapping[str, float]) -> dict[str, list[K]]:
    """Split keys into named parts, seeded and disjoint.

    Args:
        keys: the keys (scenes, images, fields); duplicates are merged.
        seed: the random seed.
        fractions: share of the keys for each named hold-out part (``{"val": 0.1}``); the rest
            goes to ``train``. Each hold-out part with a positive fraction gets at least one key
            while ``train`` keeps one.

    Returns:
        ``{"train": [...], <part>: [...]}``, each in sorted order.
    """
    order = sorted(set(keys), key=repr)
    random.Random(seed).shuffle(order)
    out: dict[str, list[K]] = {}
    start = 0
    for part, fraction in fractions.items():
        n = round(len(order) * fraction)
        if fraction > 0 and n == 0 and len(order) - start > 1:
            n = 1
        n = min(n, max(len(order) - start - 1, 0))
        out[part] = sorted(order[start : start + n], key=repr)
        start += n
    out["train"] = sorted(order[start:], key=repr)
    return out
