"""LoveDA loader on the tiny fixture in tests/data/loveda (the release layout)."""

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
from eosfm_cli.data.loveda import build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.data.registry import LOVEDA_CLASSES as CLASSES
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "loveda"
SPLITS = ["train", "val", "test"]
SIZE, PATCH = 72, 32
TRAIN = {"Urban/1366", "Urban/1367", "Urban/1402", "Rural/0", "Rural/17", "Rural/211"}


def request(split: str = "train", root: Path = ROOT, **kw: Any) -> DatasetRequest:
    spec = EXPERIMENTS["loveda"]
    fields: dict[str, Any] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "patch_size": PATCH,
        "ignore_index": spec.ignore_index,
        "options": dict(spec.options),
        **kw,
    }
    return DatasetRequest("loveda", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def names(ds: Any) -> set[str]:
    return {f"{p.image.parent.parent.name}/{p.image.stem}" for p in ds.pairs}


def test_registry_entry() -> None:
    spec = EXPERIMENTS["loveda"]
    assert spec.loader == "eosfm_cli.data.loveda:build"
    assert spec.classes == CLASSES and CLASSES[0] == "no-data" and len(CLASSES) == 8
    assert spec.ignore_index == 0


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
        assert set(sample["mask"].unique().tolist()) <= set(range(8))


def test_splits_never_use_the_unlabelled_test_folder() -> None:
    parts = {split: names(build(request(split))) for split in SPLITS}
    assert parts["test"] == {"Urban/3514", "Rural/2522"}  # the labelled Val folder
    assert len(parts["val"]) == 1 and parts["train"] | parts["val"] == TRAIN
    assert not parts["train"] & parts["val"]
    assert len({frozenset(names(build(request("val", seed=s)))) for s in range(8)}) > 1


def test_scene_option() -> None:
    ds = build(request("test", options={"scenes": ["rural"]}))
    assert names(ds) == {"Rural/2522"}
    with pytest.raises(DataError, match="scenes"):
        build(request("test", options={"scenes": ["suburban"]}))


def test_band_order_and_mask_match_the_files() -> None:
    seen: set[int] = set()
    for split in SPLITS:
        ds = build(request(split, bands=("B", "G", "R")))
        for i in range(len(ds)):
            index, w = ds.windows[i]
            pair = ds.pairs[index]
            rgb, mask = read(pair.image), read(pair.mask)
            assert rgb.dtype == np.uint8 and rgb.shape == (3, SIZE, SIZE)
            assert mask.dtype == np.uint8 and mask.shape == (1, SIZE, SIZE)
            rows, cols = slice(w.row, w.row + PATCH), slice(w.col, w.col + PATCH)
            sample = ds[i]
            np.testing.assert_array_equal(sample["image"].numpy(), rgb[::-1, rows, cols])
            np.testing.assert_array_equal(sample["mask"].numpy(), mask[0, rows, cols])
            seen |= set(np.unique(mask[0, rows, cols]).tolist())
    assert seen == set(range(8))  # every class and no-data (0)
    # fixture bands lie in distinct ranges: R [0, 70), G [90, 160), B [180, 250)
    image = build(request("test", bands=("B", "G", "R")))[0]["image"]
    assert image[0].min() >= 170 and image[2].max() < 80


def test_no_data_gets_the_requested_ignore_index() -> None:
    default = build(request("test", patch_size=None))
    other = build(request("test", patch_size=None, ignore_index=-1))
    for i in range(len(default)):
        raw = read(default.pairs[i].mask)[0].astype(np.int64)
        assert (raw == 0).any()
        np.testing.assert_array_equal(default[i]["mask"].numpy(), raw)
        np.testing.assert_array_equal(other[i]["mask"].numpy(), np.where(raw == 0, -1, raw))


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
    ds = build(request("train", options={"crops_per_image": 2}))
    assert len(ds) == 2 * len(ds.pairs) == 10
    assert ds.windows == build(request("train", options={"crops_per_image": 2})).windows


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))


def test_missing_folder_is_a_data_error_and_nothing_is_downloaded(tmp_path: Path) -> None:
    (tmp_path / "Train.zip").write_bytes(b"not a zip")
    expected = tmp_path / "Train" / "Urban" / "images_png"
    with pytest.raises(DataError, match=re.escape(str(expected))):
        build(request(root=tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["Train.zip"]


def test_image_without_mask_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "loveda"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    victim = root / "Val" / "Rural" / "masks_png" / "2522.png"
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request("test", root=root))


def test_unknown_band_is_a_band_error() -> None:
    with pytest.raises(BandError, match="B04"):
        build(request(bands=("B04",)))


def test_one_epoch_of_training(tmp_path: Path) -> None:
    sets = [f"dataset.patch_size={PATCH}", "dataset.options.crops_per_image=1"]
    sets.append("trainer.batch_size=16")  # few, large batches keep the test fast
    _, res = run_training(tmp_path, "loveda", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "loveda", "segmentation")
    assert spec["bands"] == ["R", "G", "B"] and spec["classes"] == list(CLASSES)
