#!/usr/bin/env python3
"""Write a tiny LandCover.ai v1 copy in torchgeo LandCoverAI's layout, next to this script.

Layout (the ``output/`` tiles that the release's ``split.py`` cuts from the orthophotos, and the
release's split files)::

    output/<ortho>_<k>.jpg      RGB JPEG tile
    output/<ortho>_<k>_m.png    mask tile, classes 0..4, three identical channels (cv2.imwrite
                                of a mask read with cv2.imread, as split.py does)
    {train,val,test}.txt        one ``<ortho>_<k>`` per line

Two orthophotos, eight tiles of 48x48 px instead of 512x512 (larger than the 32 px patches of
the tests, so tiling with an overlapping last tile is exercised). ``k`` skips numbers, as
split.py counts the partial edge tiles it drops. The orthophotos themselves (``images/``,
``masks/``) are left out: torchgeo's LandCoverAI does not read them. Image bands lie in
distinct ranges (R [0, 70), G [90, 160), B [180, 250)); JPEGs are written without chroma
subsampling at quality 95. Run: ``python tests/data/landcoverai/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 48
SPLITS = {
    "train": ("M-33-20-D-c-4-2_0", "M-33-20-D-c-4-2_1", "M-33-20-D-c-4-2_3", "N-34-61-B-a-1-1_7"),
    "val": ("M-33-20-D-c-4-2_4", "N-34-61-B-a-1-1_2"),
    "test": ("N-34-61-B-a-1-1_5", "N-34-61-B-a-1-1_6"),
}
BAND_BASE = (0, 90, 180)


def image(rng: np.random.Generator) -> np.ndarray:
    """Return a (SIZE, SIZE, 3) uint8 tile: a ramp plus blocky noise, one range per band."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ramp = (yy + xx) * 50 // (2 * SIZE)
    bands = [
        base + ramp + np.kron(rng.integers(0, 20, (SIZE // 8, SIZE // 8)), np.ones((8, 8), int))
        for base in BAND_BASE
    ]
    return np.clip(np.stack(bands, axis=-1), 0, 255).astype(np.uint8)


def mask(first: int) -> np.ndarray:
    """Return a (SIZE, SIZE, 3) uint8 mask of 12 px blocks cycling through the 5 classes."""
    n = SIZE // 12
    classes = (first + np.arange(n * n).reshape(n, n)) % 5
    one = np.kron(classes, np.ones((12, 12), int)).astype(np.uint8)
    return np.repeat(one[..., None], 3, axis=-1)


def main() -> None:
    """Write the fixture."""
    rng = np.random.default_rng(0)
    shutil.rmtree(HERE / "output", ignore_errors=True)
    (HERE / "output").mkdir()
    k = 0
    for split, ids in SPLITS.items():
        for tile in ids:
            Image.fromarray(image(rng)).save(HERE / "output" / f"{tile}.jpg", quality=95,
                                             subsampling=0)  # fmt: skip
            Image.fromarray(mask(k)).save(HERE / "output" / f"{tile}_m.png")
            k += 2
        (HERE / f"{split}.txt").write_text("".join(f"{tile}\n" for tile in ids))


if __name__ == "__main__":
    main()
