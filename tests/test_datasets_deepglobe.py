"""DeepGlobe Land Cover loader on the tiny fixture in tests/data/deepglobe (release layout)."""

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
from eosfm_cli.data.deepglobe import COLOURS, build
from eosfm_cli.data.registry import DEEPGLOBE_CLASSES as CLASSES
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "deepglobe"
SPLITS = ["train", "val", "test"]
SIZE, PATCH = 80, 32
TRAIN_IDS = {"119", "855", "2334", "10452", "21717"}
TEST_IDS = {"3901", "44877"}
# the legend, written out by hand: colour -> class id
LEGEND = {
    (0, 255, 255): 0, (255, 255, 0): 1, (255, 0, 255): 2, (0, 255, 0): 3, (0, 0, 255): 4,
    (255, 255, 255): 5, (0, 0, 0): 6,
}  # fmt: skip


def request(split: str = "train", root: Path = ROOT, **kw: Any) -> DatasetRequest:
    spec = EXPERIMENTS["deepglobe_lcc"]
    fields: dict[str, Any] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "patch_size": PATCH,
        "ignore_index": spec.ignore_index,
        "options": dict(spec.options),
        **kw,
    }
    return DatasetRequest("deepglobe_lcc", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def ids(ds: Any) -> set[str]:
    return {p.image.name.removesuffix("_sat.jpg") for p in ds.pairs}


def expected_mask(rgb: np.ndarray, unlisted: int) -> np.ndarray:
    bits = np.where(rgb >= 128, 255, 0)
    out = np.full(rgb.shape[1:], unlisted, dtype=np.int64)
    for colour, cls in LEGEND.items():
        out[np.all(bits == np.array(colour)[:, None, None], axis=0)] = cls
    return out


def test_registry_entry() -> None:
    spec = EXPERIMENTS["deepglobe_lcc"]
    assert spec.loader == "eosfm_cli.data.deepglobe:build"
    assert spec.classes == CLASSES and len(CLASSES) == 7
    assert dict(zip(COLOURS, range(7), strict=True)) == LEGEND


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
        assert set(sample["mask"].unique().tolist()) <= set(range(7))


def test_splits() -> None:
    parts = {split: ids(build(request(split))) for split in SPLITS}
    assert parts["test"] == TEST_IDS
    assert len(parts["val"]) == 1 and parts["train"] | parts["val"] == TRAIN_IDS
    assert not parts["train"] & parts["val"]
    assert len({frozenset(ids(build(request("val", seed=s)))) for s in range(8)}) > 1


def test_band_order_and_colour_decoding_match_the_files() -> None:
    seen: set[int] = set()
    for split in SPLITS:
        ds = build(request(split, bands=("B", "G", "R")))
        for i in range(len(ds)):
            index, w = ds.windows[i]
            pair = ds.pairs[index]
            rgb, colours = read(pair.image), read(pair.mask)
            assert rgb.dtype == np.uint8 and rgb.shape == (3, SIZE, SIZE)
            assert colours.dtype == np.uint8 and colours.shape == (3, SIZE, SIZE)
            rows, cols = slice(w.row, w.row + PATCH), slice(w.col, w.col + PATCH)
            sample = ds[i]
            np.testing.assert_array_equal(sample["image"].numpy(), rgb[::-1, rows, cols])
            mask = expected_mask(colours[:, rows, cols], unlisted=6)
            np.testing.assert_array_equal(sample["mask"].numpy(), mask)
            seen |= set(np.unique(mask).tolist())
    assert seen == set(range(7))
    # fixture bands lie in distinct ranges: R [0, 70), G [90, 160), B [180, 250)
    image = build(request("test", bands=("B", "G", "R")))[0]["image"]
    assert image[0].min() >= 170 and image[2].max() < 80


def test_colour_outside_the_legend_gets_the_ignore_index() -> None:
    # the first training mask holds a red block (a colour outside the legend) top right
    red = ROOT / "data" / "training_data" / "masks" / "119_mask.png"
    assert (read(red)[:, :16, -16:] >= 128).all(axis=(1, 2)).tolist() == [True, False, False]
    masks = {}
    for ignore in (255, None):
        for split in ("train", "val"):  # whole images: no patch size
            ds = build(request(split, patch_size=None, ignore_index=ignore))
            for i, (index, _) in enumerate(ds.windows):
                if ds.pairs[index].mask == red:
                    masks[ignore] = ds[i]["mask"]
    assert masks[255].shape == (SIZE, SIZE)
    assert (masks[255][:16, -16:] == 255).all() and (masks[255] == 255).sum() == 256
    assert (masks[None][:16, -16:] == CLASSES.index("Unknown")).all()


def test_val_and_test_tiles_cover_every_image() -> None:
    for split in ("val", "test"):
        ds = build(request(split))
        assert len(ds) == 9 * len(ds.pairs)  # 80 px: tiles at 0, 32 and 48
        for index in range(len(ds.pairs)):
            hits = np.zeros((SIZE, SIZE), dtype=int)
            for i, w in ds.windows:
                if i == index:
                    hits[w.row : w.row + w.height, w.col : w.col + w.width] += 1
            assert hits.min() >= 1


def test_training_crops_are_seeded_and_counted() -> None:
    ds = build(request("train", options={"crops_per_image": 2}))
    assert len(ds) == 2 * len(ds.pairs)
    assert ds.windows == build(request("train", options={"crops_per_image": 2})).windows


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))


def test_unextracted_root_is_a_data_error_and_nothing_is_extracted(tmp_path: Path) -> None:
    (tmp_path / "data.zip").write_bytes(b"not a zip")
    expected = tmp_path / "data" / "training_data" / "images"
    with pytest.raises(DataError, match=re.escape(str(expected))):
        build(request(root=tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["data.zip"]


def test_image_without_mask_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "deepglobe"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    victim = root / "data" / "test_data" / "masks" / "3901_mask.png"
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request("test", root=root))


def test_unknown_band_is_a_band_error() -> None:
    with pytest.raises(BandError, match="B08"):
        build(request(bands=("R", "B08")))


def test_one_epoch_of_training(tmp_path: Path) -> None:
    sets = [f"dataset.patch_size={PATCH}", "dataset.options.crops_per_image=1"]
    sets.append("trainer.batch_size=16")  # few, large batches keep the test fast
    _, res = run_training(tmp_path, "deepglobe_lcc", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "deepglobe_lcc", "segmentation")
    assert spec["bands"] == ["R", "G", "B"] and len(spec["classes"]) == 7
