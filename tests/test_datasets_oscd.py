"""OSCD loader on the tiny fixture in tests/data/oscd (torchgeo OSCD layout)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from training_helpers import check_specialist, run_training

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.oscd import FILE_BANDS, IMAGES, build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "oscd"
SPEC = EXPERIMENTS["oscd"]
SPLITS = ["train", "val", "test"]
HEIGHT, WIDTH = 40, 48


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    fields: dict[str, object] = {
        "bands": SPEC.bands,
        "classes": SPEC.classes,
        "patch_size": 32,
        "options": {"crops_per_image": 3},
        **kw,
    }
    return DatasetRequest("oscd", root, split, **fields)  # type: ignore[arg-type]


def test_specialist_bands_are_the_13_real_s2_bands() -> None:
    assert SPEC.loader == "eosfm_cli.data.oscd:build"
    assert SPEC.bands == FILE_BANDS == BAND_SETS["S2_WAVELENGTH"]
    assert len(set(SPEC.bands)) == 13


@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(split: str) -> None:
    ds = build(request(split))
    assert len(ds) > 0
    for i in range(len(ds)):
        sample = ds[i]
        for key in ("image", "image2"):
            assert sample[key].shape == (13, 32, 32) and sample[key].dtype == torch.float32
        assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= {0, 1}


def test_val_is_carved_from_train_cities() -> None:
    names = {s: {sc.name for sc in build(request(s)).scenes} for s in SPLITS}
    assert names["test"] == {"brasilia"}
    assert len(names["val"]) == 1 and len(names["train"]) == 2
    assert names["val"] | names["train"] == {"abudhabi", "beihai", "bercy"}


def test_band_order_dates_and_mask_match_the_files() -> None:
    ds = build(request("test"))
    sample = ds[0]
    _, w = ds.windows[0]
    city = ROOT / IMAGES / "brasilia"
    for k, band in enumerate(FILE_BANDS):
        for date, key in ((1, "image"), (2, "image2")):
            with rasterio.open(city / f"imgs_{date}_rect" / f"{band}.tif") as src:
                data = src.read(1)[w.row : w.row + 32, w.col : w.col + 32]
            np.testing.assert_array_equal(sample[key][k].numpy(), data.astype(np.float32))
    # fixture: band at wavelength position k holds [1000 k, 1000 k + 43) on date 1
    assert sample["image"][8].min() >= 8000 and sample["image"][8].max() < 8043  # B8A
    assert sample["image"][12].min() >= 12000  # B12 last
    label = ROOT / "Onera Satellite Change Detection dataset - Test Labels/brasilia/cm/cm.png"
    cm = np.array(Image.open(label))[w.row : w.row + 32, w.col : w.col + 32]
    np.testing.assert_array_equal(sample["mask"].numpy(), (cm > 0).astype(np.int64))
    subset = build(request("test", bands=("B04", "B03", "B02", "B04")))[0]["image"]
    np.testing.assert_array_equal(subset.numpy(), sample["image"][[3, 2, 1, 3]].numpy())


def test_tiles_cover_the_city() -> None:
    ds = build(request("test"))
    assert len(ds) == 4  # 40x48 with 32 px tiles: 2 x 2, the last ones flush with the edge
    seen = np.zeros((HEIGHT, WIDTH), bool)
    for _, w in ds.windows:
        assert (w.height, w.width) == (32, 32)
        seen[w.row : w.row + 32, w.col : w.col + 32] = True
    assert seen.all()


def test_crops_per_image_option() -> None:
    assert len(build(request("train", options={"crops_per_image": 7}))) == 2 * 7


def test_missing_or_incomplete_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build(request(root=tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in err.value.one_line()
    (tmp_path / "Onera Satellite Change Detection dataset - Images.zip").write_bytes(b"")
    with pytest.raises(DataError, match="not found") as err:  # never extracts the archive
        build(request(root=tmp_path))
    assert IMAGES in err.value.one_line()
    root = tmp_path / "oscd"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    (root / IMAGES / "beihai" / "imgs_2_rect" / "B8A.tif").unlink()
    with pytest.raises(DataError, match="B8A") as err:
        build(request(root=root))
    assert str(root / IMAGES / "beihai" / "imgs_2_rect") in err.value.one_line()


def test_unknown_band() -> None:
    with pytest.raises(BandError):
        build(request(bands=("VV",)))


def test_one_epoch(tmp_path: Path) -> None:
    sets = ["dataset.patch_size=32", "dataset.options.crops_per_image=2"]
    _, res = run_training(tmp_path, "oscd", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "oscd", "change_detection")
    assert tuple(spec["bands"]) == FILE_BANDS and spec["in_chans"] == 13
