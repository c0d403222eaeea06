"""ETCI 2021 flood detection (NASA IMPACT / IEEE GRSS): binary flood segmentation of S1 tiles.

Release layout (the archives torchgeo's :class:`~torchgeo.datasets.ETCI2021` expects, extracted
under the root; one folder per scene, 256x256 PNG tiles)::

    <root>/train/<region>_<date>/tiles/vv/<region>_<date>_x-<i>_y-<j>_vv.png
    <root>/train/<region>_<date>/tiles/vh/<region>_<date>_x-<i>_y-<j>_vh.png
    <root>/train/<region>_<date>/tiles/flood_label/<region>_<date>_x-<i>_y-<j>.png
    <root>/train/<region>_<date>/tiles/water_body_label/<region>_<date>_x-<i>_y-<j>.png
    <root>/test/...            (val_with_ref_labels.zip: the same, with flood labels)
    <root>/test_internal/...   (test_without_ref_labels.zip: no flood label, never used)

VV and VH tiles are 8-bit PNGs (HyP3 renderings of the backscatter, three equal channels); the
grey value (0-255) is returned as is for catalog bands ``VV_U8`` and ``VH_U8``, not ``VV`` and
``VH``: those are backscatter in dB, and the release does not give the dB-to-grey mapping, so an
ETCI specialist in an ensemble reads only grey-level inputs and is never fed dB. Flood labels
are 0 (no flood) or 255 (flood), returned as 0/1.

Splits. Only ``train/`` and ``test/`` carry flood labels. ``test`` is ``test/`` (torchgeo calls
it ``val``); it never validates. ``val`` is a seeded hold-out of whole ``train/`` scenes
(``options["val_fraction"]``, 0.1 of the scenes, at least one), ``train`` the other scenes.

Cleaning. With ``options["drop_empty"]`` (the paper's cleaning; on in the registry), a tile is
dropped when more than ``options["empty_fraction"]`` (0.1) of its VV or of its VH pixels are 0 or
255 (no-data or saturated swath edges). This reads every tile once when the split is built.

torchgeo's class is not used: it pairs VV, VH and labels by zipping sorted file lists (one
missing file shifts every later pair), returns the three RGB channels of each polarisation and a
two-layer (water, flood) mask, and its ``test`` split has no flood labels.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, check_class_count, require_dir
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import bool_option, check_options, fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import PatchWindow, plan_windows
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("etci2021")

#: Catalog band of each polarisation folder.
FILE_BANDS: dict[str, str] = {"VV_U8": "vv", "VH_U8": "vh"}
OPTIONS = ("val_fraction", "drop_empty", "empty_fraction", "crops_per_image")
_VV_RE = re.compile(r"^(?P<stem>.+)_vv\.png$")


class Tile:
    """The files of one ETCI tile.

    Args:
        scene: the scene folder.
        stem: the tile name without polarisation suffix (``<scene>_x-0_y-1``).
    """

    def __init__(self, scene: Path, stem: str) -> None:
        self.scene = scene
        self.stem = stem

    def path(self, kind: str) -> Path:
        """The file of ``kind``: ``vv``, ``vh`` or ``flood_label``."""
        name = f"{self.stem}.png" if kind == "flood_label" else f"{self.stem}_{kind}.png"
        return self.scene / "tiles" / kind / name


def read_grey(path: Path) -> np.ndarray[Any, Any]:
    """Decode a PNG into one 8-bit grey layer (RGB tiles have three equal channels)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img if img.mode == "L" else img.convert("L"))
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read the ETCI tile ({err})", where=str(path), hint=f"expected {SPEC.layout}"
        ) from err


def png_size(path: Path) -> tuple[int, int]:
    """Return ``(height, width)`` from a PNG's header."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
    except (OSError, ValueError) as err:
        raise DataError(
            f"cannot read the ETCI tile ({err})", where=str(path), hint=f"expected {SPEC.layout}"
        ) from err
    return height, width


def index_scenes(folder: Path) -> dict[str, list[Tile]]:
    """List the labelled tiles of each scene folder under ``train/`` or ``test/``.

    Raises:
        DataError: when there is no scene, or a VV tile lacks its VH tile or flood label.
    """
    scenes: dict[str, list[Tile]] = {}
    for scene in sorted(p for p in folder.iterdir() if (p / "tiles").is_dir()):
        tiles = []
        for vv in sorted((scene / "tiles" / "vv").glob("*_vv.png")):
            match = _VV_RE.match(vv.name)
            assert match is not None
            tile = Tile(scene, match["stem"])
            for kind in ("vh", "flood_label"):
                if not tile.path(kind).is_file():
                    raise DataError(
                        f"ETCI tile {tile.stem} has no {kind} file",
                        where=str(tile.path(kind)),
                        hint=f"expected {SPEC.layout}",
                    )
            tiles.append(tile)
        if tiles:
            scenes[scene.name] = tiles
    if not scenes:
        raise DataError(
            "no scene with VV tiles found", where=str(folder), hint=f"expected {SPEC.layout}"
        )
    return scenes


def is_near_empty(tile: Tile, fraction: float) -> bool:
    """Whether more than ``fraction`` of the VV or of the VH pixels are 0 or 255."""
    for kind in ("vv", "vh"):
        grey = read_grey(tile.path(kind))
        if np.mean((grey == 0) | (grey == 255)) > fraction:
            return True
    return False


class ETCI2021Split(Dataset[dict[str, Tensor]]):
    """Windows of ETCI tiles, bands selected by name.

    Args:
        samples: ``(tile, window)`` pairs.
        bands: requested bands among VV_U8 and VH_U8 (repeats allowed).
    """

    def __init__(self, samples: list[tuple[Tile, PatchWindow]], bands: tuple[str, ...]) -> None:
        self.samples = samples
        self.bands = bands

    def __len__(self) -> int:
        """Return the number of samples."""
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, h, w) grey values, "mask": int64 (h, w) 0/1}``."""
        tile, box = self.samples[index]
        rows, cols = box.slices
        layers = {
            b: read_grey(tile.path(FILE_BANDS[b]))[rows, cols] for b in dict.fromkeys(self.bands)
        }
        image = np.stack([layers[b] for b in self.bands]).astype(np.float32)
        flood = read_grey(tile.path("flood_label"))[rows, cols]
        mask = (flood > 0).astype(np.int64)
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one ETCI 2021 split.

    Args:
        request: the dataset request; ``bands`` among VV_U8 and VH_U8 (``VV_U8, VH_U8,
            VH_U8`` in the registry). ``options``: ``val_fraction`` (0.1 of the train scenes),
            ``drop_empty`` (false unless set; the registry sets it), ``empty_fraction`` (0.1) and
            ``crops_per_image`` (when ``patch_size`` is below the tile size).

    Returns:
        A dataset of ``{"image": float32 (C, h, w), "mask": int64 (h, w)}``.

    Raises:
        DataError: when the root or the ``train``/``test`` folder is missing, holds no scene,
            or a tile lacks a file; or when cleaning leaves the split empty.
        BandError: when a requested band is not VV_U8 or VH_U8.
    """
    where = f"dataset {request.name or 'etci2021'}"
    band_indices(request.bands, tuple(FILE_BANDS), where)
    check_options(request.options, OPTIONS, where)
    check_class_count(request, SPEC.classes, "ETCI 2021", where)
    val_fraction = fraction_option(request.options, "val_fraction", 0.1, allow_zero=True)
    drop_empty = bool_option(request.options, "drop_empty", False)
    empty_fraction = fraction_option(request.options, "empty_fraction", 0.1, allow_zero=True)
    crops = int_option(request.options, "crops_per_image", None)

    root = require_dir(Path(request.root), SPEC.layout)
    part = "test" if request.split == "test" else "train"
    scenes = index_scenes(require_dir(root / part, SPEC.layout))
    if part == "train":
        names = split_keys(list(scenes), request.seed, {"val": val_fraction})[request.split]
    else:
        names = sorted(scenes)
    tiles = [t for name in names for t in scenes[name]]
    if drop_empty:
        tiles = [t for t in tiles if not is_near_empty(t, empty_fraction)]
    if not tiles:
        raise DataError(
            f"the {request.split} split is empty"
            + (" after dropping near-empty tiles" if drop_empty else ""),
            where=str(root / part),
            hint="add scenes, or change options.val_fraction / options.drop_empty",
        )
    rng = random.Random(request.seed)
    samples = []
    for tile in tiles:
        height, width = png_size(tile.path("flood_label"))
        for box in plan_windows(height, width, request.patch_size, request.split, rng, crops):
            samples.append((tile, box))
    return ETCI2021Split(samples, tuple(request.bands))
