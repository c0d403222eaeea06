"""Write a tiny Open-Canopy copy in the release layout (HuggingFace ``AI4Forest/Open-Canopy``).

Run from anywhere: ``python tests/data/opencanopy/generate.py``. Fixed seed. Layout written
beside this script, in EPSG:2154 on a 1.5 m grid::

    canopy_height/geometries.geojson         7 areas (split, lidar_year)
    canopy_height/<year>/spot/<n>.tif        4 bands uint8 (R, G, B, NIR), 96 rows, 72 cols
    canopy_height/<year>/lidar/<n>.tif       1 band uint16, canopy height in dm, nodata 65535
    canopy_height/<year>/spot.vrt, lidar.vrt mosaics of the two tiles side by side (96x144)

Years 2021 (train, train, val, test areas; the test area is a triangle) and 2022 (train, val,
test). SPOT band k lies in ``[50 k, 50 k + 40)``; heights are ``10 x (row % 30)`` dm. Pixels
of 2021 SPOT rows 0-5 of tile 0 are 0 in every band (nodata), and 2021 LiDAR columns 0-3 are
nodata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

HERE = Path(__file__).resolve().parent / "canopy_height"
RES = 1.5
ROWS, COLS = 96, 72
X0, Y0 = {2021: 650000.0, 2022: 700000.0}, 6800000.0


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[list[float]]]:
    return [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]


def area(year: int, row: int, col: int, height: int, width: int) -> list[list[list[float]]]:
    """A rectangle in pixel units of the year's mosaic, in map coordinates."""
    x0 = X0[year] + col * RES
    y1 = Y0 - row * RES
    return box(x0, y1 - height * RES, x0 + width * RES, y1)


def write_tif(path: Path, data: np.ndarray, west: float, nodata: float | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=str(data.dtype),
        crs=CRS.from_epsg(2154),
        transform=Affine(RES, 0.0, west, 0.0, -RES, Y0),
        nodata=nodata,
        compress="deflate",
    ) as dst:
        dst.write(data)


def write_vrt(path: Path, folder: str, bands: int, dtype: str, west: float, nodata: str) -> None:
    crs = CRS.from_epsg(2154).to_wkt()
    parts = [
        f'<VRTDataset rasterXSize="{2 * COLS}" rasterYSize="{ROWS}">',
        f"  <SRS>{crs}</SRS>",
        f"  <GeoTransform>{west}, {RES}, 0.0, {Y0}, 0.0, {-RES}</GeoTransform>",
    ]
    for band in range(1, bands + 1):
        parts.append(f'  <VRTRasterBand dataType="{dtype}" band="{band}">')
        if nodata:
            parts.append(f"    <NoDataValue>{nodata}</NoDataValue>")
        for tile in range(2):
            parts += [
                "    <SimpleSource>",
                f'      <SourceFilename relativeToVRT="1">{folder}/{tile}.tif</SourceFilename>',
                f"      <SourceBand>{band}</SourceBand>",
                f'      <SrcRect xOff="0" yOff="0" xSize="{COLS}" ySize="{ROWS}"/>',
                f'      <DstRect xOff="{tile * COLS}" yOff="0" xSize="{COLS}" ySize="{ROWS}"/>',
                "    </SimpleSource>",
            ]
        parts.append("  </VRTRasterBand>")
    parts.append("</VRTDataset>")
    path.write_text("\n".join(parts) + "\n")


def main() -> None:
    rng = np.random.default_rng(0)
    for year, west in X0.items():
        folder = HERE / str(year)
        for tile in range(2):
            spot = np.stack(
                [50 * k + 1 + rng.integers(0, 39, (ROWS, COLS)) for k in range(4)]
            ).astype(np.uint8)
            heights = np.broadcast_to(10 * (np.arange(ROWS)[:, None] % 30), (ROWS, COLS)).astype(
                np.uint16
            )
            if year == 2021 and tile == 0:
                spot[:, :6] = 0
                heights[:, :4] = 65535
            x = west + tile * COLS * RES
            write_tif(folder / "spot" / f"{tile}.tif", spot, x, None)
            write_tif(folder / "lidar" / f"{tile}.tif", heights[None], x, 65535)
        write_vrt(folder / "spot.vrt", "spot", 4, "Byte", west, "")
        write_vrt(folder / "lidar.vrt", "lidar", 1, "UInt16", west, "65535")

    triangle = [
        [
            [X0[2021] + 80 * RES, Y0 - 50 * RES],
            [X0[2021] + 140 * RES, Y0 - 50 * RES],
            [X0[2021] + 80 * RES, Y0 - 94 * RES],
            [X0[2021] + 80 * RES, Y0 - 50 * RES],
        ]
    ]
    areas = [
        ("train", 2021, area(2021, 0, 0, 48, 48)),
        ("train", 2021, area(2021, 0, 48, 48, 50)),
        ("val", 2021, area(2021, 0, 100, 40, 40)),
        ("test", 2021, triangle),
        ("train", 2022, area(2022, 10, 10, 60, 60)),
        ("val", 2022, area(2022, 0, 80, 40, 60)),
        ("test", 2022, area(2022, 60, 80, 36, 60)),
    ]
    features = [
        {
            "type": "Feature",
            "properties": {"split": split, "lidar_year": year},
            "geometry": {"type": "Polygon", "coordinates": coords},
        }
        for split, year, coords in areas
    ]
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::2154"}},
        "features": features,
    }
    (HERE / "geometries.geojson").write_text(json.dumps(collection, indent=1) + "\n")


if __name__ == "__main__":
    main()
