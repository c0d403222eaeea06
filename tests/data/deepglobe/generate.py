#!/usr/bin/env python3
"""Write a tiny DeepGlobe Land Cover copy in the release layout, next to this script.

Layout (the labelled Kaggle re-split torchgeo reads, ``data.zip`` extracted)::

    data/training_data/images/<id>_sat.jpg    RGB JPEG
    data/training_data/masks/<id>_mask.png    RGB PNG, classes coded by colour
    data/test_data/images/<id>_sat.jpg
    data/test_data/masks/<id>_mask.png

Five training and two test images of 80x80 px instead of 2448x2448: larger than the 32 px
patches of the tests (tiles start at 0, 32 and 48, so the last one overlaps). Image bands lie
in distinct ranges (R [0, 70), G [90, 160), B [180, 250)) so a band mix-up is visible; JPEGs
are written without chroma subsampling at quality 95 so decoders agree to about 1 DN.

Masks are 16x16 px blocks of the seven legend colours. As in the real masks, some pixels are
not exactly 0 or 255 (the loader binarises at 128), and one training mask holds a block of red,
a colour outside the legend. Run: ``python tests/data/deepglobe/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 80
BLOCK = 16
SPLITS = {"training_data": (119, 855, 2334, 10452, 21717), "test_data": (3901, 44877)}
COLOURS = (
    (0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255),
    (0, 0, 0),
)  # fmt: skip
RED = (255, 0, 0)
BAND_BASE = (0, 90, 180)


def image(rng: np.random.Generator) -> np.ndarray:
    """Return a (SIZE, SIZE, 3) uint8 image: a ramp plus blocky noise, one range per band."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ramp = (yy + xx) * 50 // (2 * SIZE)
    bands = [
        base + ramp + np.kron(rng.integers(0, 20, (SIZE // 8, SIZE // 8)), np.ones((8, 8), int))
        for base in BAND_BASE
    ]
    return np.clip(np.stack(bands, axis=-1), 0, 255).astype(np.uint8)


def mask(rng: np.random.Generator, first: int, red: bool) -> np.ndarray:
    """Return a (SIZE, SIZE, 3) uint8 colour-coded mask, classes from ``first`` on, cycling."""
    n = SIZE // BLOCK
    classes = (first + np.arange(n * n).reshape(n, n)) % len(COLOURS)
    rgb = np.array(COLOURS, dtype=np.uint8)[np.kron(classes, np.ones((BLOCK, BLOCK), int))]
    if red:
        rgb[:BLOCK, -BLOCK:] = RED
    # off-white / off-black values, as lossy edits leave in the real masks
    noisy = rng.random((SIZE, SIZE)) < 0.05
    rgb[noisy] = np.where(rgb[noisy] > 127, 250, 3).astype(np.uint8)
    return rgb


def main() -> None:
    """Write the fixture."""
    rng = np.random.default_rng(0)
    shutil.rmtree(HERE / "data", ignore_errors=True)
    k = 0
    for folder, ids in SPLITS.items():
        (HERE / "data" / folder / "images").mkdir(parents=True)
        (HERE / "data" / folder / "masks").mkdir(parents=True)
        for id_ in ids:
            path = HERE / "data" / folder / "images" / f"{id_}_sat.jpg"
            Image.fromarray(image(rng)).save(path, quality=95, subsampling=0)
            colours = mask(rng, first=k, red=k == 0)
            Image.fromarray(colours).save(HERE / "data" / folder / "masks" / f"{id_}_mask.png")
            k += 3


if __name__ == "__main__":
    main()
