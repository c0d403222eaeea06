"""Write a tiny MiniFrance copy in the release layout (the ``labeled_train`` partition).

Run from anywhere: ``python tests/data/minifrance/generate.py``. Fixed seed. Layout written
beside this script::

    labeled_train/<city>/BDORTHO/<tile>.tif              3 bands uint8 (R, G, B), 96x96
    labeled_train/<city>/UrbanAtlas/<tile>_UA2012.tif    1 band uint8, classes 0..15

Five tiles in two cities (BD ORTHO tile names in EPSG:2154, 50 cm). Band k of an image lies in
``[80 k, 80 k + 70)``; the masks use every class value 0..15.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

HERE = Path(__file__).resolve().parent
SIZE = 96
TILES = {
    "Nice": (
        "06-2014-0994-6311-LA93-0M50-E080",
        "06-2014-0999-6311-LA93-0M50-E080",
        "06-2014-1004-6316-LA93-0M50-E080",
    ),
    "Nantes_Saint-Nazaire": (
        "44-2013-0286-6713-LA93-0M50-E080",
        "44-2013-0291-6713-LA93-0M50-E080",
    ),
}


def write(path: Path, data: np.ndarray, west: float, north: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=SIZE,
        height=SIZE,
        count=data.shape[0],
        dtype="uint8",
        crs=CRS.from_epsg(2154),
        transform=Affine(0.5, 0.0, west, 0.0, -0.5, north),
        compress="deflate",
    ) as dst:
        dst.write(data)


def main() -> None:
    rng = np.random.default_rng(0)
    for city, tiles in TILES.items():
        for tile in tiles:
            west, north = float(tile[8:12]) * 1000, float(tile[13:17]) * 1000
            blocks = rng.integers(0, 16, size=(SIZE // 12, SIZE // 12))
            mask = np.kron(blocks, np.ones((12, 12), dtype=np.int64)).astype(np.uint8)
            image = np.stack(
                [80 * k + 4 * mask + rng.integers(0, 4, (SIZE, SIZE)) for k in range(3)]
            ).astype(np.uint8)
            folder = HERE / "labeled_train" / city
            write(folder / "BDORTHO" / f"{tile}.tif", image, west, north)
            write(folder / "UrbanAtlas" / f"{tile}_UA2012.tif", mask[None], west, north)


if __name__ == "__main__":
    main()
