"""Write a tiny ISPRS Potsdam copy in the release layout (torchgeo ``Potsdam2D``).

Run from anywhere: ``python tests/data/potsdam/generate.py``. Fixed seed, so the output is the
same on every run. Layout written beside this script::

    4_Ortho_RGBIR/top_potsdam_<x>_<y>_RGBIR.tif   4 bands uint8 (R, G, B, IR), 96x96
    top_potsdam_<x>_<y>_label.tif                 3 bands uint8, RGB colour-coded classes

Four tiles of the official train list and two of the test list. Band k of an image lies in
``[60 k, 60 k + 50)`` so that band order can be checked; each label holds the six class colours
and a few black (unknown) pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

HERE = Path(__file__).resolve().parent
SIZE = 96
TRAIN = ("top_potsdam_2_10", "top_potsdam_2_11", "top_potsdam_3_10", "top_potsdam_7_7")
TEST = ("top_potsdam_2_13", "top_potsdam_5_15")
COLORS = np.array(
    [(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)],
    dtype=np.uint8,
)


def write(path: Path, data: np.ndarray, index: int) -> None:
    transform = Affine(0.05, 0.0, 366000.0 + 300.0 * index, 0.0, -0.05, 5808000.0)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=SIZE,
        height=SIZE,
        count=data.shape[0],
        dtype="uint8",
        crs=CRS.from_epsg(32633),
        transform=transform,
        compress="deflate",
    ) as dst:
        dst.write(data)


def main() -> None:
    rng = np.random.default_rng(0)
    (HERE / "4_Ortho_RGBIR").mkdir(exist_ok=True)
    for index, tile in enumerate(TRAIN + TEST):
        # blocky class map: 8x8 blocks of random classes, plus a few unknown-colour pixels
        blocks = rng.integers(0, len(COLORS), size=(SIZE // 8, SIZE // 8))
        classes = np.kron(blocks, np.ones((8, 8), dtype=np.int64))
        label = COLORS[classes].transpose(2, 0, 1).copy()
        for r, c in rng.integers(0, SIZE, size=(5, 2)):
            label[:, r, c] = 0
        image = np.stack(
            [60 * k + 8 * classes + rng.integers(0, 3, (SIZE, SIZE)) for k in range(4)]
        ).astype(np.uint8)
        write(HERE / "4_Ortho_RGBIR" / f"{tile}_RGBIR.tif", image, index)
        write(HERE / f"{tile}_label.tif", label, index)


if __name__ == "__main__":
    main()
