#!/usr/bin/env python3
"""Write tiny BigEarthNet copies in the v1 and v2 (reBEN) release layouts, next to this script.

``v1/`` (BigEarthNet-S2 v1.0 + BigEarthNet-S1 v1.0, as torchgeo's ``BigEarthNet`` reads it)::

    BigEarthNet-v1.0/<s2>/<s2>_B01.tif ... <s2>_B12.tif, <s2>_B8A.tif, <s2>_labels_metadata.json
    BigEarthNet-S1-v1.0/<s1>/<s1>_VV.tif, <s1>_VH.tif, <s1>_labels_metadata.json
    bigearthnet-{train,val,test}.csv      lines "<s2>,<s1>" (the BigEarthNet-MM splits)

``v2/`` (reBEN, as torchgeo's ``BigEarthNetV2`` reads it)::

    metadata.parquet     patch_id, labels, split (train/validation/test), country, s1_name,
                         s2v1_name, contains_seasonal_snow, contains_cloud_or_shadow
    BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_B01.tif ...
    BigEarthNet-S1/<scene>/<s1_name>/<s1_name>_VV.tif, _VH.tif
    Reference_Maps/<tile>/<patch_id>/<patch_id>_reference_map.tif   (uint16 CLC codes)

Two patches per split in each layout. S2 bands are uint16 at their native sizes (10 m: 120x120,
20 m: 60x60, 60 m: 20x20 px); S1 bands are float32 dB at 120x120. Pixel values: S2 band ``k``
of ``S2_BANDS`` lies in ``[1000 * (k + 1), 1000 * (k + 1) + 400)``; VV in ``[-15, -5]`` dB and
VH in ``[-25, -15]`` dB. The v1 labels deliberately mix CORINE classes that merge, and classes
that the 19-class nomenclature drops. Needs ``pyarrow`` for the parquet file.
Run: ``python tests/data/bigearthnet/generate.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
S2_RES = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}  # fmt: skip
CRS = "EPSG:32633"
WKT = 'PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984"]],UNIT["metre",1]]'

# v1: 43-class CORINE names, as in the labels_metadata.json files.
V1_LABELS = (
    ["Continuous urban fabric", "Discontinuous urban fabric",
     "Road and rail networks and associated land"],
    ["Non-irrigated arable land", "Pastures", "Mixed forest"],
    ["Coniferous forest", "Transitional woodland/shrub", "Water bodies"],
    ["Sea and ocean", "Beaches, dunes, sands", "Salt marshes"],
    ["Land principally occupied by agriculture, with significant areas of natural vegetation",
     "Broad-leaved forest", "Sparsely vegetated areas", "Natural grassland"],
    ["Vineyards", "Olive groves", "Annual crops associated with permanent crops",
     "Complex cultivation patterns", "Peatbogs", "Moors and heathland",
     "Sclerophyllous vegetation", "Industrial or commercial units"],
)  # fmt: skip
# v2: 19-class names, as in metadata.parquet.
V2_LABELS = (
    ["Urban fabric", "Arable land"],
    ["Coniferous forest", "Mixed forest", "Inland waters"],
    ["Pastures"],
    ["Marine waters", "Coastal wetlands", "Beaches, dunes, sands"],
    ["Permanent crops", "Complex cultivation patterns", "Agro-forestry areas"],
    ["Broad-leaved forest", "Transitional woodland, shrub", "Inland wetlands",
     "Natural grassland and sparsely vegetated areas"],
)  # fmt: skip
V2_CLC = (112, 211, 312, 313, 512, 231, 523, 421, 331, 221, 242, 244, 311, 324, 411, 321)
SPLITS = ("train", "train", "val", "val", "test", "test")


def s2_band(rng: np.random.Generator, k: int, size: int) -> np.ndarray:
    """Return one uint16 S2 band: a ramp, sparse noise, and a level that names the band."""
    yy, xx = np.mgrid[0:size, 0:size] * (120 // size)
    noise = rng.integers(1, 4, size=(size, size)) * (rng.random((size, size)) < 0.125)
    return (1000 * (k + 1) + yy + xx + noise * 16).astype(np.uint16)


def s1_band(rng: np.random.Generator, pol: str) -> np.ndarray:
    """Return one float32 S1 band in dB, quantised to 1/8 dB so that it compresses."""
    yy, xx = np.mgrid[0:120, 0:120]
    base = -15.0 if pol == "VV" else -25.0
    noise = rng.integers(0, 8, size=(120, 120)) * (rng.random((120, 120)) < 0.125)
    return (base + np.round((yy + xx) / 238 * 72) / 8 + noise / 8).astype(np.float32)


def write_tif(path: Path, data: np.ndarray, res: int, origin: tuple[float, float]) -> None:
    """Write a single-band GeoTIFF with a UTM CRS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor = 3 if data.dtype == np.float32 else 2
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
        dtype=data.dtype.name, crs=CRS, transform=from_origin(*origin, res, res),
        compress="deflate", predictor=predictor,
    ) as dst:  # fmt: skip
        dst.write(data, 1)


def write_s2(folder: Path, rng: np.random.Generator, origin: tuple[float, float]) -> None:
    """Write the 12 band files of one S2 patch at their native resolutions."""
    for k, band in enumerate(S2_BANDS):
        size = 1200 // S2_RES[band]
        write_tif(folder / f"{folder.name}_{band}.tif", s2_band(rng, k, size), S2_RES[band], origin)


def write_s1(folder: Path, rng: np.random.Generator, origin: tuple[float, float]) -> None:
    """Write the VV and VH files of one S1 patch."""
    for pol in ("VV", "VH"):
        write_tif(folder / f"{folder.name}_{pol}.tif", s1_band(rng, pol), 10, origin)


def coordinates(origin: tuple[float, float]) -> dict[str, float]:
    """Return the patch corners as in the v1 metadata files."""
    return {"ulx": origin[0], "uly": origin[1], "lrx": origin[0] + 1200, "lry": origin[1] - 1200}


def generate_v1(rng: np.random.Generator) -> None:
    """Write ``v1/``."""
    root = HERE / "v1"
    shutil.rmtree(root, ignore_errors=True)
    rows: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i, (labels, split) in enumerate(zip(V1_LABELS, SPLITS, strict=True)):
        row, col = 10 + i, 40 + 2 * i
        s2 = f"S2A_MSIL2A_20170613T101031_{row}_{col}"
        s1 = f"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_{row}_{col}"
        origin = (400000.0 + 1200 * col, 5800000.0 - 1200 * row)
        s2_dir = root / "BigEarthNet-v1.0" / s2
        s1_dir = root / "BigEarthNet-S1-v1.0" / s1
        write_s2(s2_dir, rng, origin)
        write_s1(s1_dir, rng, origin)
        (s2_dir / f"{s2}_labels_metadata.json").write_text(json.dumps({
            "labels": labels,
            "coordinates": coordinates(origin),
            "projection": WKT,
            "tile_source": "S2A_MSIL1C_20170613T101031_N0205_R022_T33UUP_20170613T101033",
            "acquisition_date": "2017-06-13 10:10:31",
        }))  # fmt: skip
        (s1_dir / f"{s1}_labels_metadata.json").write_text(json.dumps({
            "labels": labels,
            "coordinates": coordinates(origin),
            "projection": WKT,
            "corresponding_s2_patch": s2,
            "scene_source": "S1A_IW_GRDH_1SDV_20170613T165043_20170613T165108_017015_01C5F1_4E3B",
            "acquisition_time": "2017-06-13T16:50:43",
        }))  # fmt: skip
        rows[split].append(f"{s2},{s1}")
    for split, lines in rows.items():
        (root / f"bigearthnet-{split}.csv").write_text("\n".join(lines) + "\n")


def generate_v2(rng: np.random.Generator) -> None:
    """Write ``v2/``."""
    root = HERE / "v2"
    shutil.rmtree(root, ignore_errors=True)
    records = []
    for i, (labels, split) in enumerate(zip(V2_LABELS, SPLITS, strict=True)):
        row, col = 20 + i // 2, 50 + i  # two patches per row share a tile folder
        tile = (
            "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
            if i < 4
            else ("S2B_MSIL2A_20180525T94031_N9999_R036_T35VNJ")
        )
        scene = "S1A_IW_GRDH_1SDV_20170613T165043" if i < 4 else "S1B_IW_GRDH_1SDV_20180525T155015"
        patch_id = f"{tile}_{row}_{col}"
        s1_name = f"{scene}_{tile[-5:]}_{row}_{col}"
        origin = (400000.0 + 1200 * col, 5800000.0 - 1200 * row)
        write_s2(root / "BigEarthNet-S2" / tile / patch_id, rng, origin)
        write_s1(root / "BigEarthNet-S1" / scene / s1_name, rng, origin)
        block = rng.choice(V2_CLC, size=(4, 4)).astype(np.uint16)
        ref_map = np.kron(block, np.ones((30, 30), dtype=np.uint16))
        ref_path = root / "Reference_Maps" / tile / patch_id / f"{patch_id}_reference_map.tif"
        write_tif(ref_path, ref_map, 10, origin)
        records.append({
            "patch_id": patch_id,
            "labels": labels,
            "split": {"val": "validation"}.get(split, split),
            "country": "Finland" if i < 4 else "Portugal",
            "s1_name": s1_name,
            "s2v1_name": f"S2A_MSIL2A_20170613T101031_{row}_{col}",
            "contains_seasonal_snow": False,
            "contains_cloud_or_shadow": False,
        })  # fmt: skip
    pd.DataFrame.from_records(records).to_parquet(root / "metadata.parquet", index=False)


def main() -> None:
    """Write both fixtures."""
    rng = np.random.default_rng(0)
    generate_v1(rng)
    generate_v2(rng)


if __name__ == "__main__":
    main()
