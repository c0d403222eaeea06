"""Inria Aerial Image Labeling loader on the tiny fixture in tests/data/inria (release layout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.inria import TRAIN_DIR, build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.data.registry import INRIA_CLASSES as CLASSES
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "inria"
SPLITS = ["train", "val", "test"]
SIZE, PATCH = 72, 32
TRAIN_IMAGES = {f"{c}{n}.tif" for c in ("austin", "tyrol-w") for n in (5, 6, 12, 36)}


def request(split: str = "train", root: Path = ROOT, **kw: Any) -> DatasetRequest:
    spec = EXPERIMENTS["inria_aerial"]
    fields: dict[str, Any] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "patch_size": PATCH,
        "ignore_index": spec.ignore_index,
        "options": dict(spec.options),
        **kw,
    }
    return DatasetRequest("inria_aerial", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def names(ds: Any) -> set[str]:
    return {p.image.name for p in ds.pairs}


def test_registry_entry() -> None:
    spec = EXPERIMENTS["inria_aerial"]
    assert spec.loader == "eosfm_cli.data.inria:build"
    assert spec.classes == CLASSES and spec.task == "segmentation"
    assert spec.bands == ("R", "G", "B") and spec.patch_size == 512


@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(split: str) -> None:
    ds = build(request(split))
    assert len(ds) >= 1
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, PATCH, PATCH)
        assert sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (PATCH, PATCH)
        assert sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= {0, 1}


def test_splits_follow_the_validation_protocol() -> None:
    parts = {split: names(build(request(split))) for split in SPLITS}
    # the dataset's own validation images (n <= 5 of every city) are our test split
    assert parts["test"] == {"austin5.tif", "tyrol-w5.tif"}
    assert len(parts["val"]) == 1 and len(parts["train"]) == 5
    assert parts["train"] | parts["val"] | parts["test"] == TRAIN_IMAGES
    assert not parts["train"] & parts["val"]
    # seeded: the same seed gives the same split, other seeds move the validation image
    assert names(build(request("val", seed=0))) == parts["val"]
    assert len({frozenset(names(build(request("val", seed=s)))) for s in range(8)}) > 1


def test_band_order_and_mask_match_the_files() -> None:
    ds = build(request("test", bands=("B", "G", "R", "R")))
    for i in range(len(ds)):
        index, w = ds.windows[i]
        pair = ds.pairs[index]
        rgb = read(pair.image)
        gt = read(pair.mask)
        assert rgb.dtype == np.uint8 and rgb.shape == (3, SIZE, SIZE)
        assert gt.dtype == np.uint8 and gt.shape == (1, SIZE, SIZE)
        assert set(np.unique(gt).tolist()) == {0, 255}
        rows, cols = slice(w.row, w.row + PATCH), slice(w.col, w.col + PATCH)
        sample = ds[i]
        np.testing.assert_array_equal(sample["image"].numpy(), rgb[[2, 1, 0, 0], rows, cols])
        np.testing.assert_array_equal(sample["mask"].numpy(), gt[0, rows, cols] // 255)
    # fixture bands lie in distinct ranges: R [0, 80), G [90, 170), B [180, 255]
    image = ds[0]["image"]
    assert image[0].min() >= 180 and image[2].max() < 80


def test_val_and_test_tiles_cover_every_image() -> None:
    for split in ("val", "test"):
        ds = build(request(split))
        assert len(ds) == 9 * len(ds.pairs)  # 72 px: tiles at 0, 32 and 40
        for index in range(len(ds.pairs)):
            hits = np.zeros((SIZE, SIZE), dtype=int)
            for i, w in ds.windows:
                if i == index:
                    hits[w.row : w.row + w.height, w.col : w.col + w.width] += 1
            assert hits.min() >= 1


def test_training_crops_are_seeded_and_counted() -> None:
    ds = build(request("train", options={"crops_per_image": 3}))
    assert len(ds) == 3 * len(ds.pairs)
    again = build(request("train", options={"crops_per_image": 3}))
    assert ds.windows == again.windows
    other = build(request("train", seed=5, options={"crops_per_image": 3}))
    assert [w for _, w in other.windows] != [w for _, w in ds.windows]
    assert all(w.row + PATCH <= SIZE and w.col + PATCH <= SIZE for _, w in ds.windows)


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))


def test_root_without_the_release_folder_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "NEW2-AerialImageDataset.zip").write_bytes(b"not extracted")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / TRAIN_DIR / "images"))):
        build(request(root=tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["NEW2-AerialImageDataset.zip"]


def test_image_without_ground_truth_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "inria"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    victim = root / TRAIN_DIR / "gt" / "austin12.tif"
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request(root=root))


@pytest.mark.parametrize("band", ["B04", "NIR"])
def test_unknown_band_is_a_band_error(band: str) -> None:
    with pytest.raises(BandError, match=band):
        build(request(bands=("R", band)))


def test_one_epoch_of_training(tmp_path: Path) -> None:
    # few, large batches: one-epoch tests stay fast on a busy 2-core machine
    sets = [f"dataset.patch_size={PATCH}", "dataset.options.crops_per_image=1"]
    sets.append("trainer.batch_size=16")
    _, res = run_training(tmp_path, "inria_aerial", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "inria_aerial", "segmentation")
    assert spec["bands"] == ["R", "G", "B"] and spec["classes"] == list(CLASSES)
