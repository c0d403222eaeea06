#!/usr/bin/env python3
"""Write a tiny EuroSAT copy in torchgeo's release layout, next to this script.

Layout (as in EuroSATallBands.zip / EuroSAT100.zip)::

    ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<N>.tif
    eurosat-{train,val,test}.txt        full split files (2 / 1 / 1 patch per class)
    eurosat-100-{train,val,test}.txt    EuroSAT100 split files (1 / 1 / 1 patch per class)

Every patch is a 64x64 GeoTIFF of 13 uint16 bands in EuroSAT's order (B01..B12, then B8A),
UTM CRS, 10 m pixels. torchgeo numbers classes by folder, so every class appears in every split.
Values are smooth ramps plus small noise (so the files compress well) with a distinct level per
band; band ``i`` of every patch lies in ``[1000 * (i + 1), 1000 * (i + 1) + 400)``, which lets
tests tell the bands apart. Run: ``python tests/data/eurosat/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip
IMAGE_DIR = Path("ds", "images", "remote_sensing", "otherDatasets", "sentinel_2", "tif")
SIZE = 64
BANDS = 13


def patch(rng: np.random.Generator) -> np.ndarray:
    """Return one (13, 64, 64) uint16 patch."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    ramp = (yy + xx) * 2  # 0..252
    out = np.empty((BANDS, SIZE, SIZE), dtype=np.uint16)
    for band in range(BANDS):
        # sparse noise: about one pixel in eight is raised by 16..48
        noise = rng.integers(1, 4, size=(SIZE, SIZE)) * (rng.random((SIZE, SIZE)) < 0.125)
        out[band] = 1000 * (band + 1) + ramp + noise * 16
    return out


def write_tif(path: Path, data: np.ndarray, seed: int) -> None:
    """Write a 13-band uint16 GeoTIFF in UTM zone 32N with 10 m pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    transform = from_origin(500000 + 640 * seed, 5500000, 10, 10)
    with rasterio.open(
        path, "w", driver="GTiff", width=SIZE, height=SIZE, count=BANDS, dtype="uint16",
        crs="EPSG:32632", transform=transform, compress="deflate", predictor=2,
        interleave="band",
    ) as dst:  # fmt: skip
        dst.write(data)


def main() -> None:
    """Write the fixture."""
    rng = np.random.default_rng(0)
    if (HERE / "ds").exists():
        shutil.rmtree(HERE / "ds")
    full: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    small: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    counter = 0
    for cls in CLASSES:
        numbers = sorted(rng.choice(np.arange(1, 3001), size=4, replace=False).tolist())
        for k, number in enumerate(numbers):
            name = f"{cls}_{number}"
            write_tif(HERE / IMAGE_DIR / cls / f"{name}.tif", patch(rng), counter)
            counter += 1
            split = ("train", "train", "val", "test")[k]
            full[split].append(f"{name}.jpg")  # the official lists say .jpg for the .tif
            if k != 1:
                small[split].append(f"{name}.jpg")
    for split in full:
        (HERE / f"eurosat-{split}.txt").write_text("\n".join(full[split]) + "\n")
        (HERE / f"eurosat-100-{split}.txt").write_text("\n".join(small[split]) + "\n")


if __name__ == "__main__":
    main()
