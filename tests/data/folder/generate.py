#!/usr/bin/env python3
"""Write tiny folder datasets (the ``folder`` experiment's layouts), next to this script.

- ``segmentation/``: ``images/tile_<i>.tif`` (4 bands B02, B03, B04, B08, uint16, 40x40) and
  ``masks/tile_<i>.tif`` (1 band, uint8 classes 0..2), 6 tiles, no split file (the loader
  draws a seeded split). 40 px does not divide by 32, so a 32 px patch size needs shifted
  windows.
- ``classification/``: ``scenes/scene_<i>.tif`` (3 bands R, G, B, uint8, 32x32) and
  ``labels.csv`` with ``path,label,split`` (4 train, 2 val, 2 test; labels are class names).
- ``multilabel/``: ``train/``, ``val/``, ``test/`` sub-folders, each with ``img_<i>.tif``
  (3 bands R, G, B, uint8, 32x32) and ``labels.csv`` with ``path,label`` where ``label`` holds
  class names separated by ``;`` (one row has none).
- ``change_detection/``: ``images1/``, ``images2/`` (4 bands B02, B03, B04, B08, uint16,
  32x32), ``masks/`` (uint8 0/1) and ``split.csv`` with ``name,split`` (2 train, 1 val, 1 test).

Values: each band ``b`` lies in ``[1000 (b + 1), 1000 (b + 1) + 400)`` for uint16 files and in
``[40 (b + 1), 40 (b + 1) + 30)`` for uint8 ones, which lets tests tell bands apart; the mask
class shows in the image as a brighter level. Run: ``python tests/data/folder/generate.py``.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent


def write(path: Path, data: np.ndarray, seed: int) -> None:
    """Write a (bands, H, W) array as a GeoTIFF in UTM zone 31N with 10 m pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs="EPSG:32631",
        transform=from_origin(400000 + 500 * seed, 4800000, 10, 10),
        compress="deflate",
    ) as dst:
        dst.write(data)


def mask(rng: np.random.Generator, size: int, classes: int) -> np.ndarray:
    """A blocky class map: 8x8 cells of random classes."""
    cells = rng.integers(0, classes, size=(size // 8 + 1, size // 8 + 1))
    return np.kron(cells, np.ones((8, 8), dtype=np.int64))[:size, :size].astype(np.uint8)


def image(rng: np.random.Generator, labels: np.ndarray, bands: int, dtype: str) -> np.ndarray:
    """Bands at distinct levels, brighter where the class index is higher."""
    scale, step, spread = (1000, 100, 100) if dtype == "uint16" else (40, 8, 6)
    out = np.empty((bands, *labels.shape), dtype=dtype)
    for b in range(bands):
        noise = rng.integers(0, spread, size=labels.shape)
        out[b] = scale * (b + 1) + step * labels.astype(np.int64) + noise
    return out


def segmentation(rng: np.random.Generator) -> None:
    root = HERE / "segmentation"
    for i in range(6):
        labels = mask(rng, 40, 3)
        write(root / "images" / f"tile_{i}.tif", image(rng, labels, 4, "uint16"), i)
        write(root / "masks" / f"tile_{i}.tif", labels[None], i)


def classification(rng: np.random.Generator) -> None:
    root = HERE / "classification"
    classes = ("water", "forest", "urban")
    rows = [["path", "label", "split"]]
    splits = ["train"] * 4 + ["val"] * 2 + ["test"] * 2
    for i, split in enumerate(splits):
        k = i % 3
        write(root / "scenes" / f"scene_{i}.tif", image(rng, np.full((32, 32), k), 3, "uint8"), i)
        rows.append([f"scenes/scene_{i}.tif", classes[k], split])
    with (root / "labels.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def multilabel(rng: np.random.Generator) -> None:
    classes = ("water", "forest", "urban")
    sets = {
        "train": ["water;forest", "urban", "forest;urban", ""],
        "val": ["water", "forest;urban"],
        "test": ["urban;water", "forest"],
    }
    seed = 0
    for split, labels in sets.items():
        folder = HERE / "multilabel" / split
        rows = [["path", "label"]]
        for i, label in enumerate(labels):
            level = sum(classes.index(n) + 1 for n in label.split(";") if n)
            data = image(rng, np.full((32, 32), level % 3), 3, "uint8")
            write(folder / f"img_{i}.tif", data, seed)
            rows.append([f"img_{i}.tif", label])
            seed += 1
        with (folder / "labels.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows(rows)


def change_detection(rng: np.random.Generator) -> None:
    root = HERE / "change_detection"
    rows = [["name", "split"]]
    for i, split in enumerate(["train", "train", "val", "test"]):
        before = mask(rng, 32, 2)
        change = mask(rng, 32, 2)
        after = np.where(change == 1, 1 - before, before)
        write(root / "images1" / f"pair_{i}.tif", image(rng, before, 4, "uint16"), i)
        write(root / "images2" / f"pair_{i}.tif", image(rng, after, 4, "uint16"), i)
        write(root / "masks" / f"pair_{i}.tif", change[None], i)
        rows.append([f"pair_{i}.tif", split])
    with (root / "split.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def main() -> None:
    """Write all four layouts."""
    for name in ("segmentation", "classification", "multilabel", "change_detection"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    rng = np.random.default_rng(0)
    segmentation(rng)
    classification(rng)
    multilabel(rng)
    change_detection(rng)


if __name__ == "__main__":
    main()
