#!/usr/bin/env python3
"""Write a tiny Cloud Cover Detection copy in torchgeo's release layout, next to this script.

Layout (``train`` = the public part, ``test`` = the private part)::

    {train,test}/{train,test}_metadata.csv       chip_id,location,datetime,cloudpath
    {train,test}/{train,test}_features/<chip_id>/{B02,B03,B04,B08}.tif   uint16, 1 band each
    {train,test}/{train,test}_labels/<chip_id>.tif                      uint8, 0 / 1

Six train chips and two test chips of 40x40 px (the real chips are 512x512). Band ``k`` of
B02, B03, B04, B08 lies in ``[1000 * (k + 1), 1000 * (k + 1) + 500)`` and is brighter under a
cloud, so the band order can be checked from the values. Run:
``python tests/data/cloud_cover/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
SIZE = 40
BANDS = ("B02", "B03", "B04", "B08")
CHIPS = {
    "train": ("adwp", "adwu", "adwz", "adxp", "aeaj", "aeap"),
    "test": ("bafm", "bagd"),
}
LOCATIONS = ("Chifunfu", "Dar es Salaam", "Lusaka", "Jimma")


def write(path: Path, data: np.ndarray) -> None:
    profile = {
        "driver": "GTiff",
        "height": SIZE,
        "width": SIZE,
        "count": 1,
        "dtype": data.dtype.name,
        "crs": "EPSG:32736",
        "transform": from_origin(500000, 9000000, 10, 10),
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def main() -> None:
    rng = np.random.default_rng(0)
    for part in CHIPS:
        shutil.rmtree(HERE / part, ignore_errors=True)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for part, chips in CHIPS.items():
        features = HERE / part / f"{part}_features"
        labels = HERE / part / f"{part}_labels"
        labels.mkdir(parents=True)
        lines = ["chip_id,location,datetime,cloudpath"]
        for n, chip in enumerate(chips):
            cy, cx = rng.uniform(0, SIZE, 2).tolist()
            r = rng.uniform(8, 16)
            cloud = (((yy - cy) ** 2 + (xx - cx) ** 2) < r**2).astype(np.uint8)
            write(labels / f"{chip}.tif", cloud)
            (features / chip).mkdir(parents=True)
            for k, band in enumerate(BANDS):
                noise = rng.integers(0, 100, size=(SIZE, SIZE))
                value = 1000 * (k + 1) + noise + 400 * cloud.astype(np.int64)
                write(features / chip / f"{band}.tif", value.astype(np.uint16))
            location = LOCATIONS[n % len(LOCATIONS)]
            lines.append(
                f"{chip},{location},2020-0{n + 1}-1{n}T08:0{n}:31Z,az://./{part}_features/{chip}"
            )
        (HERE / part / f"{part}_metadata.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
