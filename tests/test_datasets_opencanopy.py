"""Open-Canopy loader on the tiny fixture in tests/data/opencanopy (the HuggingFace layout)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.opencanopy import build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import DataError

ROOT = Path(__file__).resolve().parent / "data" / "opencanopy"
SPEC = EXPERIMENTS["opencanopy"]
SPLITS = ["train", "val", "test"]


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    fields: dict[str, object] = {
        "bands": SPEC.bands,
        "patch_size": 32,
        "options": {"crops_per_image": 2},
        **kw,
    }
    return DatasetRequest("opencanopy", root, split, **fields)  # type: ignore[arg-type]


def spot_and_lidar(year: int) -> tuple[np.ndarray, np.ndarray]:
    folder = ROOT / "canopy_height" / str(year)
    with rasterio.open(folder / "spot.vrt") as src:
        spot = src.read()
    with rasterio.open(folder / "lidar.vrt") as src:
        lidar = src.read(1)
    return spot, lidar


def test_registry_entry() -> None:
    assert SPEC.loader == "eosfm_cli.data.opencanopy:build"
    assert SPEC.task == "regression" and SPEC.loss == "mse"
    assert SPEC.bands == ("SPOT_B3", "SPOT_B2", "SPOT_B1")


@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(split: str) -> None:
    ds = build(request(split))
    assert len(ds) > 0
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.float32
        heights = sample["mask"][torch.isfinite(sample["mask"])]
        assert heights.numel() == 0 or (heights.min() >= 0 and heights.max() <= 29)


def test_splits_come_from_the_geometries() -> None:
    counts = {s: len(build(request(s)).areas) for s in SPLITS}
    assert counts == {"train": 3, "val": 2, "test": 2}
    assert {a.year for a in build(request("val")).areas} == {2021, 2022}


def test_band_order_heights_and_nodata_match_the_files() -> None:
    ds = build(request("train", options={"crops_per_image": 1}))
    spot, lidar = spot_and_lidar(2021)
    i, w = ds.windows[0]
    assert ds.areas[i].year == 2021
    sample = ds[0]
    rows, cols = slice(w.row, w.row + 32), slice(w.col, w.col + 32)
    # SPOT files hold R, G, B, NIR: SPOT_IRRG (NIR, red, green) is bands 4, 1, 2
    np.testing.assert_array_equal(sample["image"].numpy(), spot[[3, 0, 1], rows, cols])
    expected = lidar[rows, cols].astype(np.float32) * np.float32(0.1)
    expected[lidar[rows, cols] == 65535] = np.nan
    expected[(spot[:, rows, cols] == 0).all(axis=0)] = np.nan
    np.testing.assert_array_equal(sample["mask"].numpy(), expected)


def test_nodata_and_outside_geometry_are_nan() -> None:
    ds = build(request("val", options={}))
    # the 2021 val area starts at column 100, inside the nodata-free part: all finite
    assert all(torch.isfinite(ds[i]["mask"]).all() for i in range(len(ds)))
    tiles = build(request("test"))
    triangle = [j for j, (i, _) in enumerate(tiles.windows) if tiles.areas[i].year == 2021]
    masks = torch.stack([tiles[j]["mask"] for j in triangle])
    assert torch.isnan(masks).any() and torch.isfinite(masks).any()
    train = build(request("train", options={"crops_per_image": 30}))
    first = [j for j, (i, _) in enumerate(train.windows) if train.areas[i].index == 0]
    rows = torch.stack([train[j]["mask"] for j in first])
    assert torch.isnan(rows).any()  # SPOT rows 0-5 and LiDAR columns 0-3 of 2021 are nodata


def test_tiles_cover_every_geometry() -> None:
    ds = build(request("val"))
    for i, area in enumerate(ds.areas):
        a = area.window
        seen = np.zeros((a.height, a.width), bool)
        for j, w in ds.windows:
            if j == i:
                assert (w.height, w.width) == (32, 32)
                seen[w.row - a.row : w.row - a.row + 32, w.col - a.col : w.col - a.col + 32] = True
        assert seen.all()


def test_root_may_be_the_canopy_height_folder() -> None:
    assert len(build(request("val", root=ROOT / "canopy_height"))) == len(build(request("val")))


def test_crops_per_image_option() -> None:
    assert len(build(request("train", options={"crops_per_image": 4}))) == 3 * 4


def test_missing_or_incomplete_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build(request(root=tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in err.value.one_line()
    with pytest.raises(DataError, match=r"geometries\.geojson"):
        build(request(root=tmp_path))
    root = tmp_path / "oc"
    shutil.copytree(ROOT / "canopy_height", root / "canopy_height")
    (root / "canopy_height" / "2022" / "lidar.vrt").unlink()
    with pytest.raises(DataError) as err:
        build(request(root=root))
    assert str(root / "canopy_height" / "2022" / "lidar.vrt") in err.value.one_line()
    bad = root / "canopy_height" / "geometries.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [{"properties": {}}]}))
    with pytest.raises(DataError, match="unreadable geometries"):
        build(request(root=root))


def test_one_epoch(tmp_path: Path) -> None:
    sets = ["dataset.patch_size=32", "dataset.options.crops_per_image=2"]
    _, res = run_training(tmp_path, "opencanopy", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "opencanopy", "regression")
    assert spec["bands"] == ["SPOT_B3", "SPOT_B2", "SPOT_B1"]
