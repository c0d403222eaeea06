"""Write two tiny OSCD copies: the release layout (torchgeo ``OSCD``) and a native-resolution one.

Run from anywhere: ``python tests/data/oscd/generate.py``. Fixed seeds. ``_rect`` layout,
written beside this script::

    Onera Satellite Change Detection dataset - Images/<city>/imgs_{1,2}_rect/B01.tif..B12.tif
        one band per file, uint16 reflectance x 1e4, 40x48 px (B8A.tif included)
    Onera Satellite Change Detection dataset - Images/<city>/dates.txt
    Onera Satellite Change Detection dataset - Images/{train,test}.txt
    Onera Satellite Change Detection dataset - {Train,Test} Labels/<city>/cm/cm.png
        one band uint8, 0 no change / 255 change

Three training cities and one test city. Band file ``Bxx`` of date ``d`` holds values in
``[1000 i + 100 (d - 1), 1000 i + 100 (d - 1) + 43)`` where ``i`` is the band's position in
wavelength order (B01=0 .. B8A=8 .. B12=12), so band order and dates can be checked.

Native-resolution layout, written to ``native/``: the copy that circulates without the
``_rect`` folders and without test labels::

    Onera Satellite Change Detection dataset - Images/<city>/imgs_{1,2}/S2A_OPER_..._B01.tif
        one band per file at its native size: 10 m bands 60x48 px, 20 m bands 30x24,
        60 m bands 10x8 (S, S/2, S/6 with S = 60 rows, 48 columns)
    Onera Satellite Change Detection dataset - Images/<city>/dates.txt, train.txt
    Onera Satellite Change Detection dataset - Train Labels/<city>/cm/<city>-cm.tif
        uint8, 1 no change / 2 change, as in the circulating copy
    Onera Satellite Change Detection dataset - Train Labels/<city>/cm/cm.png
        RGBA, 0 no change / 255 change

Three training cities, no test city. Values follow the same per-band rule as above; the change
is a block aligned to the 60 m pixels, so every band of date 2 shows it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "Onera Satellite Change Detection dataset - Images"
LABELS = "Onera Satellite Change Detection dataset - {} Labels"
HEIGHT, WIDTH = 40, 48
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
CITIES = {"Train": ("abudhabi", "beihai", "bercy"), "Test": ("brasilia",)}

NATIVE = HERE / "native"
NATIVE_CITIES = ("nantes", "paris", "rennes")
#: 10 m grid of the native copy, and each band's pixel size in metres.
NATIVE_HEIGHT, NATIVE_WIDTH = 60, 48
RESOLUTION = {
    **dict.fromkeys(("B02", "B03", "B04", "B08"), 10),
    **dict.fromkeys(("B05", "B06", "B07", "B8A", "B11", "B12"), 20),
    **dict.fromkeys(("B01", "B09", "B10"), 60),
}
PREFIX = {
    1: "S2A_OPER_MSI_L1C_TL_SGS__20160822T110537_A006076_T30TWT_",
    2: "S2A_OPER_MSI_L1C_TL_MTI__20171019T112149_A012082_T30TWT_",
}


def write_band(path: Path, data: np.ndarray, x0: float, metres: float) -> None:
    """Write one uint16 band as a deflate GeoTIFF with ``metres`` pixels."""
    height, width = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="uint16",
        crs=CRS.from_epsg(32640),
        transform=Affine(metres, 0.0, x0, 0.0, -metres, 2700000.0),
        compress="deflate",
    ) as dst:
        dst.write(data.astype(np.uint16)[None])


def write_rect(rng: np.random.Generator) -> None:
    """Write the ``_rect`` layout beside this script (train and test labels)."""
    for split, cities in CITIES.items():
        for index, city in enumerate(cities):
            folder = IMAGES / city
            change = np.zeros((HEIGHT, WIDTH), np.uint8)
            r, c = rng.integers(0, HEIGHT - 12), rng.integers(0, WIDTH - 12)
            change[r : r + 12, c : c + 12] = 255
            for date in (1, 2):
                out = folder / f"imgs_{date}_rect"
                out.mkdir(parents=True, exist_ok=True)
                for i, band in enumerate(BANDS):
                    base = 1000 * i + 100 * (date - 1)
                    data = base + rng.integers(0, 3, (HEIGHT, WIDTH))
                    if date == 2:
                        data = data + 40 * (change > 0)
                    write_band(out / f"{band}.tif", data, 240000.0 + 1000 * index, 10.0)
            (folder / "dates.txt").write_text("date_1: 20160120\ndate_2: 20180328\n")
            mask_dir = HERE / LABELS.format(split) / city / "cm"
            mask_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(change, mode="L").save(mask_dir / "cm.png")
        (IMAGES / f"{split.lower()}.txt").write_text(",".join(cities) + "\n")


def write_native(rng: np.random.Generator) -> None:
    """Write the native-resolution layout under ``native/`` (train labels only)."""
    images = NATIVE / IMAGES.name
    for index, city in enumerate(NATIVE_CITIES):
        folder = images / city
        change = np.zeros((NATIVE_HEIGHT, NATIVE_WIDTH), bool)
        # a 12 px block on the 60 m pixel boundaries
        r, c = (6 * rng.integers(0, n // 6 - 2) for n in (NATIVE_HEIGHT, NATIVE_WIDTH))
        change[r : r + 12, c : c + 12] = True
        for date in (1, 2):
            out = folder / f"imgs_{date}"
            out.mkdir(parents=True, exist_ok=True)
            for i, band in enumerate(BANDS):
                step = RESOLUTION[band] // 10
                shape = (NATIVE_HEIGHT // step, NATIVE_WIDTH // step)
                data = 1000 * i + 100 * (date - 1) + rng.integers(0, 3, shape)
                if date == 2:
                    data = data + 40 * change[::step, ::step]
                x0 = 240000.0 + 1000 * index
                write_band(out / f"{PREFIX[date]}{band}.tif", data, x0, float(RESOLUTION[band]))
        (folder / "dates.txt").write_text("date_1: 20160822\ndate_2: 20171019\n")
        mask_dir = NATIVE / LABELS.format("Train") / city / "cm"
        mask_dir.mkdir(parents=True, exist_ok=True)
        # no CRS nor transform, like the circulating copy's label GeoTIFFs
        with rasterio.open(
            mask_dir / f"{city}-cm.tif",
            "w",
            driver="GTiff",
            width=NATIVE_WIDTH,
            height=NATIVE_HEIGHT,
            count=1,
            dtype="uint8",
            compress="deflate",
        ) as dst:
            dst.write((1 + change).astype(np.uint8)[None])
        png = np.full((NATIVE_HEIGHT, NATIVE_WIDTH, 4), 255, np.uint8)
        png[..., :3] = 255 * change[..., None]
        Image.fromarray(png, mode="RGBA").save(mask_dir / "cm.png")
    (images / "train.txt").write_text(",".join(NATIVE_CITIES) + "\n")


def main() -> None:
    warnings.simplefilter("ignore", NotGeoreferencedWarning)
    write_rect(np.random.default_rng(0))
    write_native(np.random.default_rng(1))


if __name__ == "__main__":
    main()
