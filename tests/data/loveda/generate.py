#!/usr/bin/env python3
"""Write a tiny LoveDA copy in the release layout, next to this script.

Layout (as ``Train.zip``, ``Val.zip`` and ``Test.zip`` extract)::

    {Train,Val}/{Urban,Rural}/images_png/<n>.png   RGB PNG
    {Train,Val}/{Urban,Rural}/masks_png/<n>.png    single-band (L) PNG: 0 no-data, 1..7 classes
    Test/{Urban,Rural}/images_png/<n>.png          no masks

Train holds three urban and three rural images, Val one of each, Test one of each; file numbers
are unique across scenes, as in the release. Images are 72x72 px instead of 1024x1024: larger
than the 32 px patches of the tests (tiles start at 0, 32 and 40). Image bands lie in distinct
ranges (R [0, 70), G [90, 160), B [180, 250)). Masks are 12 px blocks cycling through the values
0..7, so every mask holds no-data. Run: ``python tests/data/loveda/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 72
FILES = {
    ("Train", "Urban"): (1366, 1367, 1402),
    ("Train", "Rural"): (0, 17, 211),
    ("Val", "Urban"): (3514,),
    ("Val", "Rural"): (2522,),
    ("Test", "Urban"): (5167,),
    ("Test", "Rural"): (4191,),
}
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


def mask(first: int) -> np.ndarray:
    """Return a (SIZE, SIZE) uint8 mask of 12 px blocks cycling through the values 0..7."""
    n = SIZE // 12
    values = (first + np.arange(n * n).reshape(n, n)) % 8
    return np.kron(values, np.ones((12, 12), int)).astype(np.uint8)


def main() -> None:
    """Write the fixture."""
    rng = np.random.default_rng(0)
    for split in ("Train", "Val", "Test"):
        shutil.rmtree(HERE / split, ignore_errors=True)
    for k, ((split, scene), numbers) in enumerate(FILES.items()):
        base = HERE / split / scene
        (base / "images_png").mkdir(parents=True)
        if split != "Test":
            (base / "masks_png").mkdir(parents=True)
        for i, n in enumerate(numbers):
            Image.fromarray(image(rng)).save(base / "images_png" / f"{n}.png")
            if split != "Test":
                Image.fromarray(mask(3 * k + i), mode="L").save(base / "masks_png" / f"{n}.png")


if __name__ == "__main__":
    main()
