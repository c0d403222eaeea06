#!/usr/bin/env python3
"""Write a tiny DFC2022 copy in the contest's release layout, next to this script.

Layout (as ``labeled_train.zip``, ``unlabeled_train.zip`` and ``val.zip`` extract)::

    labeled_train/<city>/BDORTHO/<tile>.tif               RGB uint8, 0.5 m
    labeled_train/<city>/RGEALTI/<tile>_RGEALTI.tif       DEM float32, 1 m (half the size)
    labeled_train/<city>/UrbanAtlas/<tile>_UA2012.tif     classes 0..15 uint8, 0.5 m
    unlabeled_train/<city>/{BDORTHO,RGEALTI}/...          no labels
    val/<city>/{BDORTHO,RGEALTI}/...                      no labels

Five labelled tiles in two cities, 48x48 px (the real ones are ~2000x2000), DEMs 24x24, in
Lambert-93. R lies in [150, 200), G in [80, 130), B in [10, 60); the DEM is the plane
``100 + 0.5 x + 0.25 y`` metres (x, y in DEM pixels), so bilinear resampling is exact inside
the tile. Masks are 12x12 px blocks of classes 0..15. Run:
``python tests/data/dfc2022/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
SIZE = 48
TILES = {
    "labeled_train": {
        "Nantes_Saint-Nazaire": (
            "44-2013-0295-6713-LA93-0M50-E080",
            "44-2013-0374-6713-LA93-0M50-E080",
            "44-2013-0384-6705-LA93-0M50-E080",
        ),
        "Nice": ("06-2014-1007-6318-LA93-0M50-E080", "06-2014-1008-6318-LA93-0M50-E080"),
    },
    "unlabeled_train": {"LeMans": ("72-2013-0469-6789-LA93-0M50-E080",)},
    "val": {"Rennes": ("35-2012-0337-6769-LA93-0M50-E080",)},
}


def write(path: Path, data: np.ndarray, gsd: float, x0: float, y0: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = data.shape
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": data.dtype.name,
        "crs": "EPSG:2154",
        "transform": from_origin(x0, y0, gsd, gsd),
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def main() -> None:
    rng = np.random.default_rng(0)
    half = SIZE // 2
    yy, xx = np.mgrid[0:half, 0:half]
    for part, cities in TILES.items():
        shutil.rmtree(HERE / part, ignore_errors=True)
        for city, tiles in cities.items():
            for tile in tiles:
                x0, y0 = float(tile.split("-")[2]) * 1000, float(tile.split("-")[3]) * 1000
                rgb = np.stack(
                    [lo + rng.integers(0, 50, size=(SIZE, SIZE)) for lo in (150, 80, 10)]
                ).astype(np.uint8)
                write(HERE / part / city / "BDORTHO" / f"{tile}.tif", rgb, 0.5, x0, y0)
                dem = (100 + 0.5 * xx + 0.25 * yy).astype(np.float32)[None]
                write(HERE / part / city / "RGEALTI" / f"{tile}_RGEALTI.tif", dem, 1.0, x0, y0)
                if part == "labeled_train":
                    blocks = rng.integers(0, 16, size=(SIZE // 12, SIZE // 12))
                    mask = np.kron(blocks, np.ones((12, 12), dtype=np.int64)).astype(np.uint8)
                    write(
                        HERE / part / city / "UrbanAtlas" / f"{tile}_UA2012.tif",
                        mask[None],
                        0.5,
                        x0,
                        y0,
                    )


if __name__ == "__main__":
    main()
