"""OSCD (Daudt et al., 2018): urban change detection from pairs of 13-band Sentinel-2 images.

The official release holds, per city, the bands at their native size and the same bands
resampled to the 10 m grid; copies circulate with only the native folders, and early ones
without test labels::

    <root>/Onera Satellite Change Detection dataset - Images/<city>/
        imgs_1_rect/B01.tif ... B12.tif, B8A.tif   one uint16 band per file (reflectance x 1e4),
        imgs_2_rect/...                            all on the 10 m grid (torchgeo reads these)
        imgs_1/S2A_OPER_..._B01.tif ... _B8A.tif   the same bands at their native size: 10 m
        imgs_2/...                                 (B02-B04, B08), 60 m (B01, B09, B10), else 20 m
        dates.txt                                  "date_1: YYYYMMDD" / "date_2: YYYYMMDD"
    <root>/Onera Satellite Change Detection dataset - Train Labels/<city>/cm/<city>-cm.tif, cm.png
    <root>/Onera Satellite Change Detection dataset - Test Labels/<city>/cm/...   (optional)

A band file is recognised by the name after its last ``_`` (``B01.tif`` or ``..._B01.tif``).
A date's ``imgs_<d>_rect`` folder is read when present, else its ``imgs_<d>`` folder. Every band
is read on the city's 10 m grid, the size of date 1's B02 (the release keeps the older image's
size where the two dates differ by a few pixels): a band file of another size is resampled
onto it, bilinear, as it is read (each sample reads only its window of every file).

Change maps: ``<city>-cm.tif`` when present, else ``cm/cm.png``, read whole at build time and
checked against the grid. The GeoTIFF codes 1 no change / 2 change in the circulating copy
(0 / 1 in the release notes; both are read, and a map of only 1s is no change). The PNG codes
0 / 255 and may be a lossy RGB image, so it is thresholded at 128 (a 0 / 1 PNG is read as is).
torchgeo's :class:`~torchgeo.datasets.OSCD` reads only ``imgs_*_rect`` and ``cm.png``, so this
module lists the files itself; a missing or partial root is a :class:`DataError`, never an
archive extraction or download.

Splits: the cities of ``Train Labels``; ``options["val_fraction"]`` (0.15) of them, at least
one, validate and never train. The test split is the cities of ``Test Labels`` that have a
change map. A copy without any (no such folder, or no change map in it) holds
``options["test_fraction"]`` (0.2) of the training cities, at least one, out as the test split
instead, drawn before the validation cities from the same seeded shuffle of the sorted names
(``request.seed``, the profile's ``data.split_seed``): the same cities on every run. One
warning line says so. Samples are windows (:class:`OSCDPairs`): ``options["crops_per_image"]``
(32) random ``patch_size`` (96) crops per training city, drawn once from ``request.seed``, and a
grid of tiles covering every validation and test city.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.change_pairs import ChangeScene, Channel, WindowedChangePairs
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import check_options, fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import PatchWindow
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("oscd")

#: The 13 bands, in the order the registry feeds them.
FILE_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
IMAGES = "Onera Satellite Change Detection dataset - Images"
LABELS = "Onera Satellite Change Detection dataset - {split} Labels"
#: What error messages show (the registry holds it): the ``_rect`` and the native-resolution copies.
LAYOUT = SPEC.layout
OPTIONS = ("crops_per_image", "val_fraction", "test_fraction")

#: Band files a dataset keeps open per process: two cities' worth.
MAX_OPEN = 64

#: Roots already warned about their missing test labels: one line per run, not per split.
_WARNED: set[Path] = set()

BoolMap = np.ndarray[Any, np.dtype[np.bool_]]


def band_key(path: Path) -> str:
    """Return the band a file holds, from the name after its last ``_`` (``B8A`` for B08A)."""
    key = os.path.splitext(path.name)[0].split("_")[-1]
    return "B8A" if key.upper() == "B08A" else key.upper()


def _open(path: Path) -> Any:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            # the label GeoTIFFs of the circulating copy have no georeferencing
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioIOError as err:
        raise DataError(
            "file missing or unreadable", where=str(path), hint=f"expected {LAYOUT}"
        ) from err


def band_files(city: Path, date: int) -> dict[str, Path]:
    """Return ``{band: file}`` of one date: ``imgs_<date>_rect`` when present, else ``imgs_<date>``.

    Raises:
        DataError: when neither folder exists, or the folder lacks or repeats a band.
    """
    folder = city / f"imgs_{date}_rect"
    if not folder.is_dir():
        folder = city / f"imgs_{date}"
    if not folder.is_dir():
        raise DataError(
            f"OSCD city {city.name} has neither imgs_{date}_rect nor imgs_{date}",
            where=str(city),
            hint=f"expected {LAYOUT}",
        )
    files = sorted(folder.glob("*.tif"))
    found = [band_key(p) for p in files]
    missing = [b for b in FILE_BANDS if found.count(b) != 1]
    if missing or len(found) != len(FILE_BANDS):
        raise DataError(
            f"OSCD city {city.name}: {folder.name} needs exactly one file per band "
            f"(missing or repeated: {', '.join(missing) or 'extra files'})",
            where=str(folder),
            hint=f"expected {LAYOUT}",
        )
    return {band_key(p): p for p in files}


def change_map_file(labels: Path, city: str) -> Path | None:
    """Return a city's change map, ``cm/<city>-cm.tif`` before ``cm/cm.png``, or ``None``."""
    for path in (labels / city / "cm" / f"{city}-cm.tif", labels / city / "cm" / "cm.png"):
        if path.is_file():
            return path
    return None


def read_change_map(path: Path) -> BoolMap:
    """Read a whole change map as ``True`` where the city changed.

    Raises:
        DataError: when the file is unreadable or a GeoTIFF holds other codes than 1 / 2 or 0 / 1.
    """
    if path.suffix.lower() == ".png":
        from PIL import Image

        try:
            with Image.open(path) as img:
                data = np.asarray(img.convert("L"))
        except OSError as err:
            raise DataError(
                "change map unreadable", where=str(path), hint=f"expected {LAYOUT}"
            ) from err
        return data > (0 if data.max() <= 1 else 127)  # type: ignore[no-any-return]
    with _open(path) as src:
        data = src.read(1)
    codes = set(np.unique(data).tolist())
    if codes <= {1, 2}:
        return data == 2  # type: ignore[no-any-return]
    if codes <= {0, 1}:
        return data == 1  # type: ignore[no-any-return]
    raise DataError(
        f"change map holds the values {sorted(codes)[:6]}",
        where=str(path),
        hint="expected 1 no change and 2 change (or 0 and 1)",
    )


def load_city(images: Path, labels: Path, city: str, bands: Sequence[str]) -> ChangeScene:
    """Check one city's files and return its scene, on date 1's B02 grid.

    Raises:
        DataError: naming the first missing file, or a change map off the grid.
    """
    folder = require_dir(images / city, LAYOUT)
    if not (folder / "dates.txt").is_file():
        raise DataError(
            f"OSCD city {city} has no dates.txt",
            where=str(folder / "dates.txt"),
            hint=f"expected {LAYOUT}",
        )
    date1, date2 = band_files(folder, 1), band_files(folder, 2)
    mask = change_map_file(labels, city)
    if mask is None:
        raise DataError(
            f"OSCD city {city} has no change map",
            where=str(labels / city / "cm"),
            hint=f"expected {city}-cm.tif or cm.png there",
        )
    with _open(date1["B02"]) as src:
        height, width = int(src.height), int(src.width)
    with _open(mask) as src:
        if (src.height, src.width) != (height, width):
            raise DataError(
                f"OSCD city {city}: the change map is {src.width}x{src.height} px, "
                f"its 10 m grid (imgs_1 B02) {width}x{height}",
                where=str(mask),
                hint="a change map must cover the city's date-1 B02 pixels",
            )
    one: tuple[Channel, ...] = tuple((date1[b], 1) for b in bands)
    two: tuple[Channel, ...] = tuple((date2[b], 1) for b in bands)
    return ChangeScene(city, one, two, mask, height, width)


def read_on_grid(
    channels: Sequence[Channel],
    window: PatchWindow,
    grid: tuple[int, int],
    source: Callable[[Path], Any] = _open,
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Read one window of the 10 m ``grid`` from every band file, as ``float32 (C, h, w)``.

    A file of the grid's size is read as is; any other is resampled bilinear from the matching
    (fractional) window of the file, so a sample costs the native pixels of its window only.
    ``source`` returns an open file (the caller keeps it open).
    """
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    out = np.empty((len(channels), window.height, window.width), np.float32)
    done: dict[Path, int] = {}
    for i, (path, _) in enumerate(channels):
        if path in done:  # a band requested twice
            out[i] = out[done[path]]
            continue
        done[path] = i
        src = source(path)
        if (src.height, src.width) == grid:
            out[i] = src.read(1, window=window.to_rasterio())
            continue
        sy, sx = src.height / grid[0], src.width / grid[1]
        native = Window(window.col * sx, window.row * sy, window.width * sx, window.height * sy)
        out[i] = src.read(
            1,
            window=native,
            out_shape=(window.height, window.width),
            resampling=Resampling.bilinear,
        )
    return out


class OSCDPairs(WindowedChangePairs):
    """OSCD windows: bands read on each city's 10 m grid, change maps decoded once.

    A sample reads 26 band files; opening them costs more than reading a window, so each
    process keeps the last :data:`MAX_OPEN` files open (never shared with a forked worker).

    Args:
        scenes: the cities of the split.
        change_maps: each city's change map, ``True`` where it changed.
        **kwargs: as :class:`~eosfm_cli.data.change_pairs.WindowedChangePairs`.
    """

    def __init__(
        self, scenes: Sequence[ChangeScene], change_maps: Sequence[BoolMap], **kwargs: Any
    ) -> None:
        super().__init__(scenes, **kwargs)
        self.change_maps = list(change_maps)
        self._open: OrderedDict[Path, Any] = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the open files (for spawned DataLoader workers)."""
        return {**self.__dict__, "_open": OrderedDict()}

    def open_file(self, path: Path) -> Any:
        """Return ``path`` opened, from this process's most recently used files."""
        if self._pid != os.getpid():  # a forked worker: its parent's handles are not its own
            self._open, self._pid = OrderedDict(), os.getpid()
        src = self._open.pop(path, None)
        self._open[path] = src = _open(path) if src is None else src
        if len(self._open) > MAX_OPEN:
            self._open.popitem(last=False)[1].close()
        return src

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image", "image2": float32 (C, h, w), "mask": int64 (h, w) 0/1}``."""
        i, window = self.windows[index]
        scene = self.scenes[i]
        grid = (scene.height, scene.width)
        mask = self.change_maps[i][window.slices].astype(np.int64)
        return {
            "image": torch.from_numpy(read_on_grid(scene.date1, window, grid, self.open_file)),
            "image2": torch.from_numpy(read_on_grid(scene.date2, window, grid, self.open_file)),
            "mask": torch.from_numpy(mask),
        }


def city_folders(labels: Path) -> list[str]:
    """Return the sorted city folders of a labels folder (none when it does not exist)."""
    return sorted(p.name for p in labels.iterdir() if p.is_dir()) if labels.is_dir() else []


def split_cities(
    root: Path, split: str, seed: int, val: float, test: float
) -> tuple[list[str], Path]:
    """Return the cities of one split and their labels folder.

    Without test labels, train cities are held out for test (see the module's docstring) and
    one warning line says so, once per root and process.

    Args:
        root: the dataset root.
        split: ``train``, ``val`` or ``test``.
        seed: seed of the hold-out draws.
        val: share of the training cities that validate.
        test: share of the training cities held out for test, without test labels.

    Raises:
        DataError: when the train labels folder is missing.
    """
    train_labels = require_dir(root / LABELS.format(split="Train"), LAYOUT)
    train = city_folders(train_labels)
    test_labels = root / LABELS.format(split="Test")
    tested = city_folders(test_labels)
    if any(change_map_file(test_labels, city) for city in tested):
        if split == "test":
            return tested, test_labels
        return split_keys(train, seed, {"val": val}, sort_key=str)[split], train_labels
    parts = split_keys(train, seed, {"test": test, "val": val}, sort_key=str)
    if root not in _WARNED and parts["test"]:
        from rich.markup import escape

        from eosfm_cli.console import warn

        _WARNED.add(root)
        held = parts["test"]
        warn(
            escape(
                f"OSCD has no test labels under {root}; testing on {len(held)} held-out "
                f"train cities ({', '.join(held)})"
            )
        )
    return parts[split], train_labels


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one OSCD split.

    Args:
        request: the dataset request; ``request.bands`` are S2 band names (repeats allowed).
            ``options``: ``crops_per_image`` (32), ``val_fraction`` (0.15), ``test_fraction``
            (0.2, used only without test labels).

    Returns:
        A dataset of ``{"image", "image2": float32 (C, P, P) reflectance x 1e4 on the 10 m
        grid, "mask": int64 (P, P) 0 no change / 1 change}``.

    Raises:
        DataError: when a folder or file is missing, a change map is malformed, or the split
            holds no city.
        BandError: when a requested band is not one of the 13 Sentinel-2 bands.
    """
    where = f"dataset {request.name or 'oscd'}"
    band_indices(request.bands, FILE_BANDS, where)
    check_options(request.options, OPTIONS, where)
    if request.classes and tuple(request.classes) != SPEC.classes:
        raise DataError(
            "OSCD has the classes 'no change' and 'change'; the request differs",
            where=where,
            hint="use the classes no change, change",
        )
    root = require_dir(Path(request.root), LAYOUT)
    options = request.options
    crops = int_option(options, "crops_per_image", SPEC.options["crops_per_image"])
    val = fraction_option(options, "val_fraction", SPEC.options["val_fraction"])
    test = fraction_option(options, "test_fraction", SPEC.options["test_fraction"])
    images = require_dir(root / IMAGES, LAYOUT)

    cities, labels = split_cities(root, request.split, request.seed, val, test)
    if not cities:
        raise DataError(
            f"the OSCD {request.split} split is empty",
            where=str(root),
            hint=f"expected {LAYOUT}",
        )
    scenes = [load_city(images, labels, city, request.bands) for city in cities]
    return OSCDPairs(
        scenes,
        [read_change_map(scene.mask) for scene in scenes],
        split=request.split,
        patch_size=SPEC.crop_size(request.patch_size),
        crops_per_image=crops,
        seed=request.seed,
        layout=LAYOUT,
    )
