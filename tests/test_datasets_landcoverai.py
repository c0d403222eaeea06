"""LandCover.ai loader on the tiny fixture in tests/data/landcoverai (torchgeo's layout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.landcoverai import build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.data.registry import LANDCOVERAI_CLASSES as CLASSES
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "landcoverai"
SPLITS = ["train", "val", "test"]
SIZE, PATCH = 48, 32
SPLIT_SIZES = {"train": 4, "val": 2, "test": 2}


def request(split: str = "train", root: Path = ROOT, **kw: Any) -> DatasetRequest:
    spec = EXPERIMENTS["landcoverai"]
    fields: dict[str, Any] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "patch_size": PATCH,
        "ignore_index": spec.ignore_index,
        "options": dict(spec.options),
        **kw,
    }
    return DatasetRequest("landcoverai", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def copy_root(tmp_path: Path) -> Path:
    root = tmp_path / "landcoverai"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    return root


def test_registry_entry() -> None:
    spec = EXPERIMENTS["landcoverai"]
    assert spec.loader == "eosfm_cli.data.landcoverai:build"
    assert spec.classes == CLASSES and len(CLASSES) == 5 and spec.patch_size == 512


@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split_from_its_split_file(split: str) -> None:
    ds = build(request(split))
    listed = (ROOT / f"{split}.txt").read_text().split()
    assert [p.image.stem for p in ds.pairs] == listed
    assert len(ds.pairs) == SPLIT_SIZES[split]
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, PATCH, PATCH)
        assert sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (PATCH, PATCH)
        assert sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= set(range(5))


def test_tiles_without_patch_size_are_whole_tiles() -> None:
    ds = build(request("val", patch_size=None))
    assert len(ds) == 2 and ds[0]["image"].shape == (3, SIZE, SIZE)
    ds = build(request("train", patch_size=512))  # the real patch size: one sample per tile
    assert len(ds) == 4 and ds[0]["mask"].shape == (SIZE, SIZE)


def test_band_order_and_mask_match_the_files() -> None:
    seen: set[int] = set()
    for split in SPLITS:
        ds = build(request(split, bands=("B", "G", "R")))
        for i in range(len(ds)):
            index, w = ds.windows[i]
            pair = ds.pairs[index]
            rgb, mask = read(pair.image), read(pair.mask)
            assert rgb.dtype == np.uint8 and rgb.shape == (3, SIZE, SIZE)
            # split.py writes masks with three identical channels
            assert mask.shape == (3, SIZE, SIZE) and (mask == mask[:1]).all()
            with Image.open(pair.mask) as img:  # what torchgeo reads
                np.testing.assert_array_equal(np.array(img.convert("L")), mask[0])
            rows, cols = slice(w.row, w.row + PATCH), slice(w.col, w.col + PATCH)
            sample = ds[i]
            np.testing.assert_array_equal(sample["image"].numpy(), rgb[::-1, rows, cols])
            np.testing.assert_array_equal(sample["mask"].numpy(), mask[0, rows, cols])
            seen |= set(np.unique(mask).tolist())
    assert seen == set(range(5))
    # fixture bands lie in distinct ranges: R [0, 70), G [90, 160), B [180, 250)
    image = build(request("test", bands=("B", "G", "R")))[0]["image"]
    assert image[0].min() >= 170 and image[2].max() < 80


def test_jpeg_pixels_agree_with_pillow() -> None:
    path = build(request("test")).pairs[0].image
    with Image.open(path) as img:
        pillow = np.array(img).transpose(2, 0, 1).astype(int)
    assert np.abs(read(path).astype(int) - pillow).max() <= 2


def test_val_and_test_tiles_cover_every_tile() -> None:
    for split in ("val", "test"):
        ds = build(request(split))
        assert len(ds) == 4 * len(ds.pairs)  # 48 px: windows at 0 and 16
        for index in range(len(ds.pairs)):
            hits = np.zeros((SIZE, SIZE), dtype=int)
            for i, w in ds.windows:
                if i == index:
                    hits[w.row : w.row + w.height, w.col : w.col + w.width] += 1
            assert hits.min() >= 1


def test_training_crops_are_seeded() -> None:
    ds = build(request("train", options={"crops_per_image": 3}))
    assert len(ds) == 12
    assert ds.windows == build(request("train", options={"crops_per_image": 3})).windows
    assert ds.windows != build(request("train", seed=1, options={"crops_per_image": 3})).windows


def test_out_of_range_mask_value(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    tile = (root / "val.txt").read_text().split()[0]
    path = root / "output" / f"{tile}_m.png"
    with Image.open(path) as img:
        mask = np.array(img)
    mask[:4, :4] = 9
    Image.fromarray(mask).save(path)
    with pytest.raises(DataError, match=re.escape(str(path))):
        build(request("val", root=root, patch_size=None))[0]
    sample = build(request("val", root=root, patch_size=None, ignore_index=-1))[0]
    assert (sample["mask"][:4, :4] == -1).all() and (sample["mask"][4:] >= 0).all()


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))


def test_orthophotos_only_is_a_data_error_and_nothing_is_extracted(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "output.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "output"))):
        build(request(root=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "output.zip"]


def test_missing_split_file_is_a_data_error(tmp_path: Path) -> None:
    root = copy_root(tmp_path)
    (root / "test.txt").unlink()
    assert len(build(request("train", root=root))) == 4
    with pytest.raises(DataError, match=re.escape(str(root / "test.txt"))):
        build(request("test", root=root))


@pytest.mark.parametrize("suffix", [".jpg", "_m.png"])
def test_missing_tile_is_a_data_error(tmp_path: Path, suffix: str) -> None:
    root = copy_root(tmp_path)
    tile = (root / "train.txt").read_text().split()[-1]
    victim = root / "output" / f"{tile}{suffix}"
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request("train", root=root))


def test_unknown_band_is_a_band_error() -> None:
    with pytest.raises(BandError, match="NIR"):
        build(request(bands=("NIR",)))


def test_one_epoch_of_training(tmp_path: Path) -> None:
    sets = [f"dataset.patch_size={PATCH}", "trainer.batch_size=16"]  # few, large batches
    _, res = run_training(tmp_path, "landcoverai", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "landcoverai", "segmentation")
    assert spec["bands"] == ["R", "G", "B"] and spec["classes"] == list(CLASSES)
