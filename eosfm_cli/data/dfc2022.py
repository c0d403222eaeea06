"""IEEE GRSS Data Fusion Contest 2022 (DFC2022): 16-class land use from aerial RGB and a DEM.

Release layout (torchgeo's :class:`~torchgeo.datasets.DFC2022`, the contest's archives
extracted under the root)::

    <root>/labeled_train/<city>/BDORTHO/<tile>.tif              RGB, uint8, 0.5 m (~2000x2000)
    <root>/labeled_train/<city>/RGEALTI/<tile>_RGEALTI.tif      DEM, float32, 1 m (~1000x1000)
    <root>/labeled_train/<city>/UrbanAtlas/<tile>_UA2012.tif    classes 0..15, uint8, 0.5 m
    <root>/unlabeled_train/..., <root>/val/...                  no labels: never used

Bands are the catalog's ``R``, ``G``, ``B`` (8-bit DN) and ``DEM`` (metres). The DEM is
resampled bilinearly onto the image grid (as torchgeo does), window by window. Masks hold the
16 UrbanAtlas classes of the contest's documentation, as values 0..15 in the registry's order
(0 is "no information"); the registry ignores class 0. A value above 15 becomes
``request.ignore_index``.

Splits. Only ``labeled_train`` has labels (the contest's validation labels were never released),
so train, val and test are a seeded split of its images: ``options["test_fraction"]`` (0.2) and
``options["val_fraction"]`` (0.1).

Windows. torchgeo's class reads each ~2000x2000 image and its DEM whole; this module reads the
same files with rasterio windows instead: ``crops_per_image`` seeded random crops of
``patch_size`` per training image (default: as many as the tiles covering it), systematic tiles
for val and test.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, check_class_count, require_dir
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import check_options, fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import PatchWindow, plan_windows
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("dfc2022")

#: Bands of a sample: the three BDORTHO bands, then the RGE ALTI DEM.
FILE_BANDS: tuple[str, ...] = ("R", "G", "B", "DEM")
LABELED = "labeled_train"
OPTIONS = ("val_fraction", "test_fraction", "crops_per_image")


class Tile:
    """The three files of one labelled DFC2022 tile.

    Args:
        image: the BDORTHO GeoTIFF.
    """

    def __init__(self, image: Path) -> None:
        self.image = image
        city = image.parent.parent
        self.dem = city / "RGEALTI" / f"{image.stem}_RGEALTI.tif"
        self.target = city / "UrbanAtlas" / f"{image.stem}_UA2012.tif"

    @property
    def key(self) -> str:
        """``<city>/<tile>``, unique in the release."""
        return f"{self.image.parent.parent.name}/{self.image.stem}"


def index_tiles(root: Path) -> list[Tile]:
    """List the labelled tiles, sorted.

    Raises:
        DataError: when there is no image, or an image lacks its DEM or mask.
    """
    folder = require_dir(root / LABELED, SPEC.layout)
    tiles = [Tile(p) for p in sorted(folder.glob("*/BDORTHO/*.tif"))]
    if not tiles:
        raise DataError("no BDORTHO image found", where=str(folder), hint=f"expected {SPEC.layout}")
    for tile in tiles:
        for path in (tile.dem, tile.target):
            if not path.is_file():
                raise DataError(
                    f"DFC2022 tile {tile.key} lacks a file",
                    where=str(path),
                    hint=f"expected {SPEC.layout}",
                )
    return tiles


def _open(path: Path) -> Any:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        return rasterio.open(path)
    except RasterioIOError as err:
        raise DataError(
            f"cannot read the DFC2022 file ({err})", where=str(path), hint=f"expected {SPEC.layout}"
        ) from err


class DFC2022Split(Dataset[dict[str, Tensor]]):
    """Windows of DFC2022 tiles, bands selected by name.

    Args:
        samples: ``(tile, window)`` pairs, windows in image pixels.
        bands: requested bands among R, G, B, DEM.
        ignore_index: mask value for values that are not a class.
    """

    def __init__(
        self, samples: list[tuple[Tile, PatchWindow]], bands: tuple[str, ...], ignore_index: int
    ) -> None:
        self.samples = samples
        self.bands = bands
        self.ignore_index = ignore_index

    def __len__(self) -> int:
        """Return the number of windows."""
        return len(self.samples)

    def _dem(self, tile: Tile, box: PatchWindow, shape: tuple[int, int]) -> np.ndarray[Any, Any]:
        from rasterio.enums import Resampling
        from rasterio.windows import Window

        with _open(tile.dem) as src:
            sy, sx = src.height / shape[0], src.width / shape[1]
            window = Window(box.col * sx, box.row * sy, box.width * sx, box.height * sy)
            return src.read(  # type: ignore[no-any-return]
                1,
                window=window,
                out_shape=(box.height, box.width),
                out_dtype="float32",
                resampling=Resampling.bilinear,
            )

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, h, w), "mask": int64 (h, w)}``."""
        tile, box = self.samples[index]
        layers: dict[str, np.ndarray[Any, Any]] = {}
        rgb = [b for b in dict.fromkeys(self.bands) if b != "DEM"]
        with _open(tile.image) as src:
            shape = (src.height, src.width)
            if rgb:
                data = src.read([FILE_BANDS.index(b) + 1 for b in rgb], window=box.to_rasterio())
                layers.update(zip(rgb, data, strict=True))
        if "DEM" in self.bands:
            layers["DEM"] = self._dem(tile, box, shape)
        image = np.stack([layers[b] for b in self.bands]).astype(np.float32)
        with _open(tile.target) as src:
            mask = src.read(1, window=box.to_rasterio()).astype(np.int64)
        mask[(mask < 0) | (mask >= len(SPEC.classes))] = self.ignore_index
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one DFC2022 split from the labelled tiles.

    Args:
        request: the dataset request; ``bands`` among R, G, B, DEM. ``options``:
            ``val_fraction`` (0.1), ``test_fraction`` (0.2), ``crops_per_image``.

    Returns:
        A dataset of ``{"image": float32 (C, h, w), "mask": int64 (h, w)}``.

    Raises:
        DataError: when the root or ``labeled_train`` is missing, holds no image, a tile lacks
            its DEM or mask, or the split is empty.
        BandError: when a requested band is not R, G, B or DEM.
    """
    where = f"dataset {request.name or 'dfc2022'}"
    band_indices(request.bands, FILE_BANDS, where)
    check_options(request.options, OPTIONS, where)
    check_class_count(request, SPEC.classes, "DFC2022", where)
    fractions = {
        "test": fraction_option(request.options, "test_fraction", 0.2, allow_zero=True),
        "val": fraction_option(request.options, "val_fraction", 0.1, allow_zero=True),
    }
    crops = int_option(request.options, "crops_per_image", None)
    root = require_dir(Path(request.root), SPEC.layout)
    tiles = index_tiles(root)
    chosen = set(split_keys([t.key for t in tiles], request.seed, fractions)[request.split])
    selected = [t for t in tiles if t.key in chosen]
    if not selected:
        raise DataError(
            f"the DFC2022 {request.split} split is empty ({len(tiles)} labelled tiles)",
            where=str(root / LABELED),
            hint="add tiles, or change options.val_fraction / options.test_fraction",
        )
    rng = random.Random(request.seed)
    samples = []
    for tile in selected:
        with _open(tile.image) as src:
            height, width = src.height, src.width
        for box in plan_windows(height, width, request.patch_size, request.split, rng, crops):
            samples.append((tile, box))
    ignore = 0 if request.ignore_index is None else int(request.ignore_index)
    return DFC2022Split(samples, tuple(request.bands), ignore)
