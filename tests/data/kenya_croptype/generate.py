#!/usr/bin/env python3
"""Write a tiny CV4A Kenya Crop Type copy in torchgeo's release layout, next to this script.

Layout (as ``radiantearth/kenya-crop-challenge`` syncs)::

    FieldIds.csv                                   train,test field ids
    data/<tile>/<tile>_label.tif                   crop id, uint8 (0: none / competition test)
    data/<tile>/<tile>_field_id.tif                field id, int32 (0: no field)
    data/<tile>/<date>/<tile>_<band>_<date>.tif    float32, bands B01..B08, B8A, B09, B11, B12, CLD

Two tiles of 48x40 px (the real ones are 3035x2016) and two of the 13 dates (20190606,
20190701). Band ``k`` of the file order lies in ``[1000 * (k + 1) + 100 * d, ... + 16)`` at date
index ``d``, so band order and date can be checked from the values. Each tile holds 8 x 8 px
fields: some with crop ids 1..7 (train fields), some with crop id 0 (the competition's test
fields), and the bottom 16 rows of tile 1 hold no field at all (chips there have no labelled
pixel). Run: ``python tests/data/kenya_croptype/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
HEIGHT, WIDTH = 48, 40
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "CLD")
DATES = ("20190606", "20190701")
# Per tile: (row, col, crop id) of 8x8 fields; crop id 0 is a competition test field.
FIELDS = {
    "0": [
        (0, 0, 1),
        (0, 16, 2),
        (8, 32, 3),
        (16, 8, 0),
        (24, 24, 4),
        (32, 0, 5),
        (40, 16, 0),
        (40, 32, 6),
    ],
    "1": [(0, 8, 7), (0, 24, 1), (8, 0, 0), (16, 16, 2), (24, 32, 3)],
}


def write(path: Path, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "height": HEIGHT,
        "width": WIDTH,
        "count": 1,
        "dtype": data.dtype.name,
        "crs": "EPSG:32636",
        "transform": from_origin(600000, 60000, 10, 10),
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def main() -> None:
    rng = np.random.default_rng(0)
    shutil.rmtree(HERE / "data", ignore_errors=True)
    next_id = 1
    train_ids, test_ids = [], []
    for tile, fields in FIELDS.items():
        label = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        field_id = np.zeros((HEIGHT, WIDTH), dtype=np.int32)
        for row, col, crop in fields:
            field_id[row : row + 8, col : col + 8] = next_id
            label[row : row + 8, col : col + 8] = crop
            (train_ids if crop else test_ids).append(next_id)
            next_id += 1
        write(HERE / "data" / tile / f"{tile}_label.tif", label)
        write(HERE / "data" / tile / f"{tile}_field_id.tif", field_id)
        for d, date in enumerate(DATES):
            for k, band in enumerate(BANDS):
                noise = rng.integers(0, 16, size=(HEIGHT, WIDTH))
                value = (1000 * (k + 1) + 100 * d + noise).astype(np.float32)
                write(HERE / "data" / tile / date / f"{tile}_{band}_{date}.tif", value)
    rows = ["train,test"]
    for i in range(max(len(train_ids), len(test_ids))):
        a = str(train_ids[i]) if i < len(train_ids) else ""
        b = str(test_ids[i]) if i < len(test_ids) else ""
        rows.append(f"{a},{b}".rstrip(","))
    (HERE / "FieldIds.csv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
