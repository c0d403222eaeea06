"""MiniFrance loader on the tiny fixture in tests/data/minifrance (the release layout)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.minifrance import build
from eosfm_cli.data.registry import EXPERIMENTS, URBANATLAS16_CLASSES
from eosfm_cli.data.registry import URBANATLAS16_CLASSES as CLASSES
from eosfm_cli.errors import DataError
from eosfm_cli.tiles import tile_starts as strided_starts

ROOT = Path(__file__).resolve().parent / "data" / "minifrance"
SPEC = EXPERIMENTS["minifrance"]
SPLITS = ["train", "val", "test"]
SIZE = 96


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    fields: dict[str, object] = {
        "bands": SPEC.bands,
        "classes": SPEC.classes,
        "ignore_index": SPEC.ignore_index,
        "patch_size": 32,
        "options": {"crops_per_image": 2, "stride": 16},
        **kw,
    }
    return DatasetRequest("minifrance", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_registry_entry() -> None:
    assert SPEC.loader == "eosfm_cli.data.minifrance:build"
    assert CLASSES == URBANATLAS16_CLASSES and len(CLASSES) == 16 and SPEC.ignore_index == 0


@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(split: str) -> None:
    ds = build(request(split))
    assert len(ds) > 0
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= set(range(16))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seeded_splits_are_disjoint_and_complete(seed: int) -> None:
    names = {s: {p.image.name for p in build(request(s, seed=seed)).pairs} for s in SPLITS}
    assert [len(names[s]) for s in SPLITS] == [3, 1, 1]
    assert len(names["train"] | names["val"] | names["test"]) == 5
    assert names == {s: {p.image.name for p in build(request(s, seed=seed)).pairs} for s in SPLITS}


def test_band_order_and_mask_match_the_files() -> None:
    ds = build(request("val"))
    seen = set()
    for i, window in ds.windows:
        pair = ds.pairs[i]
        rows = slice(window.row, window.row + window.height)
        cols = slice(window.col, window.col + window.width)
        sample = ds[ds.windows.index((i, window))]
        rgb = read(pair.image)[:, rows, cols]
        np.testing.assert_array_equal(sample["image"].numpy(), rgb.astype(np.float32))
        np.testing.assert_array_equal(sample["mask"].numpy(), read(pair.mask)[0, rows, cols])
        seen |= set(sample["mask"].unique().tolist())
    assert ds[0]["image"][2].min() >= 160  # blue is the third band, in [160, 230)
    assert 0 in seen  # class 0 ("No information") is the ignore_index, kept as 0


def test_validation_tiles_cover_the_image_with_the_stride() -> None:
    assert strided_starts(96, 32, 16) == [0, 16, 32, 48, 64]
    assert strided_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    assert strided_starts(20, 32, 16) == [0]
    ds = build(request("test"))
    assert len(ds) == 25  # one 96x96 image, 5 x 5 tiles
    seen = np.zeros((SIZE, SIZE), int)
    for _, w in ds.windows:
        assert (w.height, w.width) == (32, 32)
        seen[w.row : w.row + 32, w.col : w.col + 32] += 1
    assert seen.min() >= 1 and seen.max() == 4
    default = build(request("test", options={}))  # stride defaults to half the patch
    assert len(default) == 25


def test_crops_per_image_option() -> None:
    assert len(build(request("train", options={"crops_per_image": 4}))) == 3 * 4
    assert len(build(request("train", options={"crops_per_image": 1}))) == 3


def test_missing_or_incomplete_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build(request(root=tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in err.value.one_line()
    with pytest.raises(DataError, match="labeled_train"):
        build(request(root=tmp_path))
    shutil.copytree(ROOT / "labeled_train", tmp_path / "labeled_train")
    victim = next((tmp_path / "labeled_train" / "Nice" / "UrbanAtlas").glob("*.tif"))
    victim.unlink()
    with pytest.raises(DataError, match="no UrbanAtlas mask") as err:
        build(request(root=tmp_path))
    assert victim.name in err.value.one_line()


def test_one_epoch(tmp_path: Path) -> None:
    sets = [
        "dataset.patch_size=32",
        "dataset.options.crops_per_image=1",
        "dataset.options.stride=32",
    ]
    _, res = run_training(tmp_path, "minifrance", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "minifrance", "segmentation")
    assert spec["bands"] == ["R", "G", "B"] and len(spec["classes"]) == 16
