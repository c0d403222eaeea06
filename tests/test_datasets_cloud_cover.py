"""Cloud Cover Detection loader on the tiny fixture in tests/data/cloud_cover (torchgeo layout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.cloud_cover import FILE_BANDS, build, chip_ids
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "cloud_cover"
SPLITS = ["train", "val", "test"]
SIZE = 40
TRAIN_CHIPS = {"adwp", "adwu", "adwz", "adxp", "aeaj", "aeap"}
TEST_CHIPS = {"bafm", "bagd"}


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    spec = EXPERIMENTS["cloud_cover"]
    fields: dict[str, object] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        "patch_size": spec.patch_size,
        **kw,
    }
    return DatasetRequest("cloud_cover", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def chips_of(ds: object) -> set[str]:
    if hasattr(ds, "rows"):  # whole chips through torchgeo
        return {str(ds.inner.metadata.iat[i, 0]) for i in ds.rows}  # type: ignore[attr-defined]
    return {chip for chip, _ in ds.samples}  # type: ignore[attr-defined]


def test_registry_entry() -> None:
    spec = EXPERIMENTS["cloud_cover"]
    assert spec.loader == "eosfm_cli.data.cloud_cover:build"
    assert spec.bands == ("B08", "B04", "B03") and len(spec.classes) == 2


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("patch", [None, 32])
def test_builds_every_split(split: str, patch: int | None) -> None:
    ds = build(request(split, patch_size=patch))
    assert len(ds) >= 1
    size = SIZE if patch is None else patch
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, size, size) and sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (size, size) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= {0, 1}


def test_val_is_held_out_of_train_and_test_is_the_test_part() -> None:
    train, val, test = (chips_of(build(request(s))) for s in SPLITS)
    assert train | val == TRAIN_CHIPS and not train & val and len(val) == 1
    assert test == TEST_CHIPS
    again = chips_of(build(request("val")))
    other = {frozenset(chips_of(build(request("val", seed=s)))) for s in range(6)}
    assert again == val and len(other) > 1
    windowed = chips_of(build(request("val", patch_size=32)))
    assert windowed == val


@pytest.mark.parametrize("patch", [None, 32])
def test_band_order_and_labels_match_the_files(patch: int | None) -> None:
    ds = build(request("test", patch_size=patch))
    features = ROOT / "test" / "test_features"
    sample = ds[0]
    if patch is None:
        chip, rows, cols = chip_ids(ROOT, "test")[ds.rows[0]], slice(None), slice(None)  # type: ignore[attr-defined]
    else:
        chip, box = ds.samples[0]  # type: ignore[attr-defined]
        rows, cols = box.slices
    files = {b: read(features / chip / f"{b}.tif") for b in FILE_BANDS}
    assert files["B02"].dtype == np.uint16
    for c, band in enumerate(("B08", "B04", "B03")):
        np.testing.assert_array_equal(sample["image"][c].numpy(), files[band][rows, cols])
    label = read(ROOT / "test" / "test_labels" / f"{chip}.tif")
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(sample["mask"].numpy(), label[rows, cols])


def test_windows_cover_each_chip_and_train_crops_are_seeded() -> None:
    ds = build(request("test", patch_size=32))
    for chip in TEST_CHIPS:
        covered = np.zeros((SIZE, SIZE), dtype=int)
        for c, box in ds.samples:
            if c == chip:
                covered[box.slices] += 1
        assert covered.min() >= 1
    a = build(request("train", patch_size=32, options={"crops_per_image": 2}))
    b = build(request("train", patch_size=32, options={"crops_per_image": 2}))
    assert len(a) == 2 * 5 and a.samples == b.samples  # type: ignore[attr-defined]


def test_bad_band_and_options() -> None:
    with pytest.raises(BandError):
        build(request(bands=("B05",)))
    with pytest.raises(DataError, match="val_fraction"):
        build(request(options={"val_fraction": 1.5}))


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "train"))):
        build(request(root=tmp_path))


def test_incomplete_root_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py"))
    (root / "test" / "test_metadata.csv").unlink()
    with pytest.raises(DataError, match=re.escape(str(root / "test" / "test_metadata.csv"))):
        build(request("test", root))
    label = root / "train" / "train_labels" / "adwu.tif"
    label.unlink()
    with pytest.raises(DataError, match=re.escape(str(label))):
        build(request("train", root))


def test_one_epoch(tmp_path: Path) -> None:
    _, res = run_training(
        tmp_path,
        "cloud_cover",
        ROOT,
        sets=["dataset.patch_size=32", "dataset.options.crops_per_image=1"],
    )
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "cloud_cover", "segmentation")
    assert spec["bands"] == ["B08", "B04", "B03"]
