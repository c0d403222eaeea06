#!/usr/bin/env python3
"""Write a tiny Inria Aerial Image Labeling copy in the release layout, next to this script.

Layout (as ``NEW2-AerialImageDataset.zip`` extracts)::

    AerialImageDataset/train/images/<city><n>.tif   3 bands uint8 (R, G, B), georeferenced
    AerialImageDataset/train/gt/<city><n>.tif       1 band uint8, 0 background / 255 building
    AerialImageDataset/test/images/<city><n>.tif    no ground truth

Two training cities (austin, tyrol-w, whose name holds a dash as in the real data) with images
5 (the last one of the dataset's validation protocol, n <= 5) and 6, 12, 36 (n runs to 36), and
one unlabelled test image.
Images are 72x72 px instead of 5000x5000: larger than the 32 px patches of the tests, so crops
and tiles (which overlap at the far edge, 72 = 32 + 32 + 8) are exercised.

Pixel values encode the band: R lies in [0, 80), G in [90, 170), B in [180, 255], so a band
mix-up is visible; a ramp plus 8x8 blocks of noise keeps the files small. Buildings are
rectangles of 255 in the ground truth.
Run: ``python tests/data/inria/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
SIZE = 72
TRAIN = [(city, n) for city in ("austin", "tyrol-w") for n in (5, 6, 12, 36)]
TEST = [("bellingham", 1)]
BAND_BASE = (0, 90, 180)


def write_tif(path: Path, data: np.ndarray, origin: tuple[float, float]) -> None:
    """Write a uint8 GeoTIFF with a UTM CRS and 0.3 m pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", width=SIZE, height=SIZE, count=data.shape[0], dtype="uint8",
        crs="EPSG:26914", transform=from_origin(*origin, 0.3, 0.3), compress="deflate", predictor=2,
    ) as dst:  # fmt: skip
        dst.write(data)


def image(rng: np.random.Generator) -> np.ndarray:
    """Return a (3, SIZE, SIZE) uint8 image: a ramp plus blocky noise, one range per band."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ramp = (yy + xx) * 60 // (2 * SIZE)
    blocks = [rng.integers(0, 16, (SIZE // 8, SIZE // 8)) for _ in BAND_BASE]
    bands = [
        base + ramp + np.kron(b, np.ones((8, 8), int))
        for base, b in zip(BAND_BASE, blocks, strict=True)
    ]
    return np.clip(np.stack(bands), 0, 255).astype(np.uint8)


def buildings(rng: np.random.Generator) -> np.ndarray:
    """Return a (1, SIZE, SIZE) uint8 mask of a few 255 rectangles on 0."""
    gt = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for _ in range(4):
        r, c = rng.integers(0, SIZE - 12, size=2)
        h, w = rng.integers(6, 16, size=2)
        gt[r : r + h, c : c + w] = 255
    return gt[None]


def main() -> None:
    """Write the fixture."""
    rng = np.random.default_rng(0)
    shutil.rmtree(HERE / "AerialImageDataset", ignore_errors=True)
    base = HERE / "AerialImageDataset"
    for i, (city, n) in enumerate(TRAIN):
        origin = (600000.0 + 30 * i, 3350000.0)
        write_tif(base / "train" / "images" / f"{city}{n}.tif", image(rng), origin)
        write_tif(base / "train" / "gt" / f"{city}{n}.tif", buildings(rng), origin)
    for city, n in TEST:
        write_tif(base / "test" / "images" / f"{city}{n}.tif", image(rng), (500000.0, 5400000.0))


if __name__ == "__main__":
    main()
