"""Write a tiny OSCD copy in the release layout (torchgeo ``OSCD``).

Run from anywhere: ``python tests/data/oscd/generate.py``. Fixed seed. Layout written beside
this script::

    Onera Satellite Change Detection dataset - Images/<city>/imgs_{1,2}_rect/B01.tif..B12.tif
        one band per file, uint16 reflectance x 1e4, 40x48 px (B8A.tif included)
    Onera Satellite Change Detection dataset - Images/<city>/dates.txt
    Onera Satellite Change Detection dataset - Images/{train,test}.txt
    Onera Satellite Change Detection dataset - {Train,Test} Labels/<city>/cm/cm.png
        one band uint8, 0 no change / 255 change

Three training cities and one test city. Band file ``Bxx`` of date ``d`` holds values in
``[1000 i + 100 (d - 1), 1000 i + 100 (d - 1) + 43)`` where ``i`` is the band's position in
wavelength order (B01=0 .. B8A=8 .. B12=12), so band order and dates can be checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "Onera Satellite Change Detection dataset - Images"
LABELS = "Onera Satellite Change Detection dataset - {} Labels"
HEIGHT, WIDTH = 40, 48
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
CITIES = {"Train": ("abudhabi", "beihai", "bercy"), "Test": ("brasilia",)}


def main() -> None:
    rng = np.random.default_rng(0)
    for split, cities in CITIES.items():
        for index, city in enumerate(cities):
            folder = IMAGES / city
            change = np.zeros((HEIGHT, WIDTH), np.uint8)
            r, c = rng.integers(0, HEIGHT - 12), rng.integers(0, WIDTH - 12)
            change[r : r + 12, c : c + 12] = 255
            for date in (1, 2):
                out = folder / f"imgs_{date}_rect"
                out.mkdir(parents=True, exist_ok=True)
                for i, band in enumerate(BANDS):
                    base = 1000 * i + 100 * (date - 1)
                    data = base + rng.integers(0, 3, (HEIGHT, WIDTH))
                    if date == 2:
                        data = data + 40 * (change > 0)
                    with rasterio.open(
                        out / f"{band}.tif",
                        "w",
                        driver="GTiff",
                        width=WIDTH,
                        height=HEIGHT,
                        count=1,
                        dtype="uint16",
                        crs=CRS.from_epsg(32640),
                        transform=Affine(10.0, 0.0, 240000.0 + 1000 * index, 0.0, -10.0, 2700000.0),
                        compress="deflate",
                    ) as dst:
                        dst.write(data.astype(np.uint16)[None])
            (folder / "dates.txt").write_text("date_1: 20160120\ndate_2: 20180328\n")
            mask_dir = HERE / LABELS.format(split) / city / "cm"
            mask_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(change, mode="L").save(mask_dir / "cm.png")
        (IMAGES / f"{split.lower()}.txt").write_text(",".join(cities) + "\n")


if __name__ == "__main__":
    main()
