#!/usr/bin/env python3
"""Write a tiny SEN12MS copy in the release layout, next to this script.

Layout (as the ROIs<id>_<season>_{s1,s2,lc}.tar.gz archives extract)::

    ROIs<id>_<season>/s1_<scene>/ROIs<id>_<season>_s1_<scene>_p<patch>.tif   2 bands float32 dB
    ROIs<id>_<season>/s2_<scene>/ROIs<id>_<season>_s2_<scene>_p<patch>.tif   13 bands uint16
    ROIs<id>_<season>/lc_<scene>/ROIs<id>_<season>_lc_<scene>_p<patch>.tif   4 bands uint16

Two seasons, six scenes (scene 1 exists in both seasons, as scene numbers repeat across seasons
in the real data), nine patches. One patch (spring scene 3, p77) has no S1 file, as happens
when a source is missing. Patches have the real size, 256x256 px; values are smooth ramps with
sparse noise so that the files compress well.

S2 bands are stored B01..B08, B8A, B09..B12; band ``k`` of that order lies in
``[1000 * (k + 1), 1000 * (k + 1) + 400)``. VV lies in ``[-15, -5]`` dB, VH in ``[-25, -15]``.
The IGBP layer is blocky (MODIS 500 m upsampled) with every class 1..17 used and some 0
(no data) blocks. Run: ``python tests/data/sen12ms/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

HERE = Path(__file__).resolve().parent
SIZE = 256
BLOCK = 64
# (season folder, scene, patch numbers)
SCENES = (
    ("ROIs1158_spring", 1, (30, 31)),
    ("ROIs1158_spring", 2, (5,)),
    ("ROIs1158_spring", 3, (10, 77)),
    ("ROIs2017_winter", 1, (112,)),
    ("ROIs2017_winter", 4, (8,)),
    ("ROIs2017_winter", 5, (41, 42)),
)
NO_S1 = {("ROIs1158_spring", 3, 77)}
LCCS_LC = (1, 2, 11, 12, 13, 14, 15, 16, 21, 22, 31, 32, 41, 42, 43)
LCCS_LU = (1, 2, 9, 10, 20, 25, 30, 35, 36, 40)
LCCS_SH = (1, 2, 3, 27, 50, 51)


def blocky(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Return a SIZE x SIZE uint16 layer of BLOCK x BLOCK blocks drawn from ``values``."""
    n = SIZE // BLOCK
    block = rng.choice(values, size=(n, n)).astype(np.uint16)
    return np.kron(block, np.ones((BLOCK, BLOCK), dtype=np.uint16))


def write_tif(path: Path, data: np.ndarray, origin: tuple[float, float]) -> None:
    """Write a multi-band GeoTIFF with a UTM CRS and 10 m pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor = 3 if data.dtype == np.float32 else 2
    with rasterio.open(
        path, "w", driver="GTiff", width=SIZE, height=SIZE, count=data.shape[0],
        dtype=data.dtype.name, crs="EPSG:32631", transform=from_origin(*origin, 10, 10),
        compress="deflate", predictor=predictor, interleave="band",
    ) as dst:  # fmt: skip
        dst.write(data)


def main() -> None:
    """Write the fixture."""
    rng = np.random.default_rng(0)
    for season in {s for s, _, _ in SCENES}:
        shutil.rmtree(HERE / season, ignore_errors=True)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    igbp_cycle = list(range(1, 18))
    for season, scene, patches in SCENES:
        for patch in patches:
            origin = (300000.0 + 2560 * patch, 4000000.0 + 2560 * scene)
            stem = f"{season}_{{}}_{scene}_p{patch}.tif"
            folder = HERE / season
            s2 = np.empty((13, SIZE, SIZE), dtype=np.uint16)
            for k in range(13):
                sparse = rng.integers(1, 4, size=(SIZE, SIZE)) * (rng.random((SIZE, SIZE)) < 1 / 64)
                s2[k] = 1000 * (k + 1) + (yy + xx) // 2 + 16 * sparse
            write_tif(folder / f"s2_{scene}" / stem.format("s2"), s2, origin)
            if (season, scene, patch) not in NO_S1:
                ramp = np.round((yy + xx) / (2 * SIZE - 2) * 80) / 8
                s1 = np.stack([-15.0 + ramp, -25.0 + ramp]).astype(np.float32)
                write_tif(folder / f"s1_{scene}" / stem.format("s1"), s1, origin)
            # IGBP: cycle through all 17 classes over the patches, plus no-data (0) blocks
            values = np.array([*igbp_cycle[:5], 0])
            igbp_cycle = igbp_cycle[5:] + igbp_cycle[:5]
            lc = np.stack([
                blocky(rng, values),
                blocky(rng, np.array(LCCS_LC)),
                blocky(rng, np.array(LCCS_LU)),
                blocky(rng, np.array(LCCS_SH)),
            ])  # fmt: skip
            write_tif(folder / f"lc_{scene}" / stem.format("lc"), lc, origin)


if __name__ == "__main__":
    main()
