#!/usr/bin/env python3
"""Write a tiny ETCI 2021 copy in the release layout, next to this script.

Layout (``train.zip``, ``val_with_ref_labels.zip`` -> ``test/``, ``test_without_ref_labels.zip``
-> ``test_internal/``)::

    <part>/<region>_<date>/tiles/vv/<region>_<date>_x-<i>_y-<j>_vv.png      RGB, 3 equal channels
    <part>/<region>_<date>/tiles/vh/<region>_<date>_x-<i>_y-<j>_vh.png      RGB, 3 equal channels
    <part>/<region>_<date>/tiles/flood_label/<region>_<date>_x-<i>_y-<j>.png         L, 0 / 255
    <part>/<region>_<date>/tiles/water_body_label/<region>_<date>_x-<i>_y-<j>.png    L, 0 / 255

(no ``flood_label`` in ``test_internal``). Tiles are 40x40 px (real: 256x256). VV grey values lie
in [80, 176], VH in [20, 48] (so VV > VH everywhere); flooded pixels are darker. Near-empty tiles
for the cleaning option: ``nebraska_20170108t002112_x-0_y-1`` has 30 % of its VV pixels at 0,
``florence_20180510t231343_x-1_y-0`` 20 % of its VH at 255; ``northal_20190302t234651_x-0_y-1``
has only 5 % of VV at 0 and is kept. Run: ``python tests/data/etci2021/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SIZE = 40
PARTS = {
    "train": {
        "bangladesh_20170314t115609": ("x-0_y-0", "x-0_y-1"),
        "nebraska_20170108t002112": ("x-0_y-0", "x-0_y-1"),
        "northal_20190302t234651": ("x-0_y-0", "x-0_y-1"),
    },
    "test": {
        "florence_20180510t231343": ("x-0_y-0", "x-1_y-0"),
        "florence_20180522t231344": ("x-0_y-0",),
    },
    "test_internal": {"redrivernorth_20190104t002247": ("x-0_y-0",)},
}
# (scene, tile) -> (band, fraction of the columns set to value)
DEFECTS = {
    ("nebraska_20170108t002112", "x-0_y-1"): ("vv", 0.30, 0),
    ("florence_20180510t231343", "x-1_y-0"): ("vh", 0.20, 255),
    ("northal_20190302t234651", "x-0_y-1"): ("vv", 0.05, 0),
}


def rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2).astype(np.uint8), "RGB")


def main() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for part, scenes in PARTS.items():
        shutil.rmtree(HERE / part, ignore_errors=True)
        for scene, tiles in scenes.items():
            folder = HERE / part / scene / "tiles"
            kinds = ["vv", "vh", "water_body_label"] + (
                [] if part == "test_internal" else ["flood_label"]
            )
            for kind in kinds:
                (folder / kind).mkdir(parents=True)
            for tile in tiles:
                stem = f"{scene}_{tile}"
                slope = rng.uniform(-1, 1)
                flood = (yy - SIZE / 2 > slope * (xx - SIZE / 2)).astype(np.uint8)
                water = (xx < 6).astype(np.uint8)
                vv = 160 + rng.integers(0, 17, size=flood.shape) - 80 * flood
                vh = 40 + rng.integers(0, 9, size=flood.shape) - 20 * flood
                bands = {"vv": vv, "vh": vh}
                if (scene, tile) in DEFECTS:
                    band, fraction, value = DEFECTS[(scene, tile)]
                    bands[band][:, : round(SIZE * fraction)] = value
                rgb(bands["vv"]).save(folder / "vv" / f"{stem}_vv.png")
                rgb(bands["vh"]).save(folder / "vh" / f"{stem}_vh.png")
                Image.fromarray(water * 255, "L").save(folder / "water_body_label" / f"{stem}.png")
                if part != "test_internal":
                    Image.fromarray(flood * 255, "L").save(folder / "flood_label" / f"{stem}.png")


if __name__ == "__main__":
    main()
