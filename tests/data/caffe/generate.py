#!/usr/bin/env python3
"""Write a tiny CaFFe copy in torchgeo's release layout, next to this script.

Layout (as ``caffe.zip`` extracts)::

    caffe/sar_images/{train,val,test}/<name>__<tile>.png          8-bit grey SAR
    caffe/zones/{train,val,test}/<name>_zones__<tile>.png         zones: 0, 64, 127, 254
    caffe/fronts/{train,val,test}/<name>_front__<tile>.png        fronts: 0, 255

Two images per split, 48x40 px (the real tiles are 512x512; these are just bigger than the
32 px patch of the tests, so windowed reading is exercised). Zone masks are four horizontal
bands (NA, rock, glacier, ocean) with a wavy boundary; the SAR grey level follows the zone with
noise. Run: ``python tests/data/caffe/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
HEIGHT, WIDTH = 48, 40
ZONE_VALUES = (0, 64, 127, 254)
NAMES = {
    "train": (
        "Crane_2002-11-09_ERS_20_2_061__93_102_0_0_0",
        "JAC_2015-12-23_TSX_6_1_005__57_49_195_384_1024",
    ),
    "val": (
        "Crane_2007-09-22_ENVISAT_20_1_467__93_102_8_1024_0",
        "Mapple_2011-03-02_TSX_7_1_034__40_38_0_0_512",
    ),
    "test": (
        "Columbia_2013-06-05_TSX_7_1_001__87_95_0_512_0",
        "SI_2014-01-12_TSX_7_1_110__55_47_3_0_512",
    ),
}


def zone_name(name: str, kind: str) -> str:
    """``<glacier>_..._<kind>__<tile>.png`` from ``<glacier>_...__<tile>``."""
    head, tile = name.split("__")
    return f"{head}_{kind}__{tile}.png"


def main() -> None:
    rng = np.random.default_rng(0)
    shutil.rmtree(HERE / "caffe", ignore_errors=True)
    rows = np.arange(HEIGHT)[:, None]
    cols = np.arange(WIDTH)[None, :]
    for split, names in NAMES.items():
        for kind in ("sar_images", "zones", "fronts"):
            (HERE / "caffe" / kind / split).mkdir(parents=True)
        for name in names:
            shift = rng.uniform(0, 6)
            edge = rows + 3 * np.sin(cols / 5 + shift)
            zone_index = np.clip((edge // (HEIGHT / 4)).astype(int), 0, 3)
            zones = np.asarray(ZONE_VALUES, dtype=np.uint8)[zone_index]
            grey = 40 + 50 * zone_index + rng.integers(0, 30, size=zone_index.shape)
            front = np.zeros_like(zones)
            front[np.diff(zone_index, axis=0, prepend=zone_index[:1]) != 0] = 255
            Image.fromarray(grey.astype(np.uint8)).save(
                HERE / "caffe" / "sar_images" / split / f"{name}.png"
            )
            Image.fromarray(zones).save(HERE / "caffe" / "zones" / split / zone_name(name, "zones"))
            Image.fromarray(front).save(
                HERE / "caffe" / "fronts" / split / zone_name(name, "front")
            )


if __name__ == "__main__":
    main()
