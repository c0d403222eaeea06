#!/usr/bin/env python3
"""Write a tiny FireRisk copy in the release layout, next to this script.

Layout (as ``FireRisk.zip`` extracts)::

    FireRisk/{train,val}/<Class>/<name>.png   RGB PNG

with one folder per class: High, Low, Moderate, Non-burnable, Very_High, Very_Low, Water.
File names are not read (every image of a class folder is a patch of that class); the fixture
names its patches ``<point id>_<longitude>_<latitude>.png``.
Three training patches and one validation patch per class, 32x32 px instead of 320x320.
The red band encodes the class (``R = 30 * class + [0, 8)``), green lies in [100, 108) and blue
in [200, 208), so labels and band order can be checked against the pixels.
Run: ``python tests/data/firerisk/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 32
CLASSES = ("High", "Low", "Moderate", "Non-burnable", "Very_High", "Very_Low", "Water")
PER_SPLIT = {"train": 3, "val": 1}


def patch(rng: np.random.Generator, cls: int) -> np.ndarray:
    """Return a (SIZE, SIZE, 3) uint8 patch whose red band encodes ``cls``."""
    noise = rng.integers(0, 8, (3, SIZE // 4, SIZE // 4))
    bands = [
        base + np.kron(n, np.ones((4, 4), int))
        for base, n in zip((30 * cls, 100, 200), noise, strict=True)
    ]
    return np.stack(bands, axis=-1).astype(np.uint8)


def main() -> None:
    """Write the fixture."""
    rng = np.random.default_rng(0)
    shutil.rmtree(HERE / "FireRisk", ignore_errors=True)
    point = 27032281
    for split, count in PER_SPLIT.items():
        for cls, name in enumerate(CLASSES):
            folder = HERE / "FireRisk" / split / name
            folder.mkdir(parents=True)
            for k in range(count):
                lon, lat = -103.43 + 0.001 * (point % 1000), 44.99 - 0.001 * k
                path = folder / f"{point}_{lon:.6f}_{lat:.6f}.png"
                Image.fromarray(patch(rng, cls)).save(path)
                point += 137


if __name__ == "__main__":
    main()
