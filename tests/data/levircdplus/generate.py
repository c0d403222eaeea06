"""Write a tiny LEVIR-CD+ copy in the release layout (torchgeo ``LEVIRCDPlus``).

Run from anywhere: ``python tests/data/levircdplus/generate.py``. Fixed seed. Layout written
beside this script::

    LEVIR-CD+/{train,test}/A/<name>.png       RGB uint8, 96x96 (first date)
    LEVIR-CD+/{train,test}/B/<name>.png       RGB uint8, 96x96 (second date)
    LEVIR-CD+/{train,test}/label/<name>.png   one band uint8, 0 no change / 255 change

Four training pairs and two test pairs named like the release (``train_1.png``...). Channel k
of date ``d`` lies in ``[80 k + 20 (d - 1), 80 k + 20 (d - 1) + 3)`` outside changed pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent / "LEVIR-CD+"
SIZE = 96
PAIRS = {"train": ("train_1", "train_2", "train_3", "train_4"), "test": ("test_1", "test_2")}


def main() -> None:
    rng = np.random.default_rng(0)
    for split, names in PAIRS.items():
        for folder in ("A", "B", "label"):
            (HERE / split / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            change = np.zeros((SIZE, SIZE), np.uint8)
            for _ in range(2):
                r, c = rng.integers(0, SIZE - 20, size=2)
                change[r : r + 20, c : c + 20] = 255
            for date, folder in ((1, "A"), (2, "B")):
                image = np.stack(
                    [80 * k + 20 * (date - 1) + rng.integers(0, 3, (SIZE, SIZE)) for k in range(3)],
                    axis=-1,
                )
                if date == 2:
                    image[change > 0] = 250
                Image.fromarray(image.astype(np.uint8), mode="RGB").save(
                    HERE / split / folder / f"{name}.png"
                )
            Image.fromarray(change, mode="L").save(HERE / split / "label" / f"{name}.png")


if __name__ == "__main__":
    main()
