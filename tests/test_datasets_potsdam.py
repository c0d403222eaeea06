"""ISPRS Potsdam loader on the tiny fixture in tests/data/potsdam (torchgeo Potsdam2D layout)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.potsdam import COLORS, build, tile_lists
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.data.registry import POTSDAM_CLASSES as CLASSES
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "potsdam"
SPEC = EXPERIMENTS["potsdam"]
SIZE = 96  # fixture tiles are 96x96


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    fields: dict[str, object] = {
        "bands": SPEC.bands,
        "classes": SPEC.classes,
        "ignore_index": SPEC.ignore_index,
        "patch_size": 32,
        "options": {"crops_per_image": 3},
        **kw,
    }
    return DatasetRequest("potsdam", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_registry_entry() -> None:
    assert SPEC.loader == "eosfm_cli.data.potsdam:build"
    assert SPEC.classes == CLASSES and SPEC.bands == ("NIR", "R", "G")


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_builds_every_split(split: str) -> None:
    ds = build(request(split))
    assert len(ds) > 0
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, 32, 32) and sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= set(range(-1, 6))


def test_splits_follow_the_official_lists_and_never_overlap() -> None:
    names = {s: {p.image.name for p in build(request(s)).pairs} for s in ("train", "val", "test")}
    lists = tile_lists()
    assert names["test"] == {f"{t}_RGBIR.tif" for t in ("top_potsdam_2_13", "top_potsdam_5_15")}
    assert all(n[: -len("_RGBIR.tif")] in lists["test"] for n in names["test"])
    assert len(names["val"]) == 1 and len(names["train"]) == 3
    assert not names["val"] & names["train"]
    other = {p.image.name for p in build(request("val", seed=1)).pairs}
    assert len(other) == 1


def test_band_order_and_colour_decoding_match_the_files() -> None:
    ds = build(request("test"))
    i, window = ds.windows[0]
    pair = ds.pairs[i]
    rgbir = read(pair.image)[:, : window.height, : window.width]
    label = read(pair.mask)[:, : window.height, : window.width]
    sample = ds[0]
    np.testing.assert_array_equal(sample["image"].numpy(), rgbir[[3, 0, 1]].astype(np.float32))
    assert sample["image"][0].min() >= 180  # band 4 (IR) of the fixture is in [180, 240)
    expected = np.full(label.shape[1:], -1)
    for k, colour in enumerate(COLORS):
        expected[(label.transpose(1, 2, 0) == colour).all(axis=-1)] = k
    np.testing.assert_array_equal(sample["mask"].numpy(), expected)
    assert COLORS[0] == (255, 255, 255) and COLORS[5] == (255, 0, 0)  # impervious .. clutter


def test_unknown_colours_get_the_requested_ignore_index() -> None:
    ds = build(request("test", ignore_index=255))
    values = set(torch.cat([ds[i]["mask"].flatten() for i in range(len(ds))]).tolist())
    assert 255 in values and -1 not in values


def test_validation_tiles_cover_every_image() -> None:
    ds = build(request("test"))
    for i in range(len(ds.pairs)):
        seen = np.zeros((SIZE, SIZE), bool)
        for j, w in ds.windows:
            if j == i:
                assert (w.height, w.width) == (32, 32)
                seen[w.row : w.row + w.height, w.col : w.col + w.width] = True
        assert seen.all()


def test_crops_per_image_option() -> None:
    for crops in (1, 5):
        ds = build(request("train", options={"crops_per_image": crops}))
        assert len(ds) == 3 * crops
    with pytest.raises(DataError, match="crops_per_image"):
        build(request("train", options={"crops_per_image": 0}))


def test_labels_in_the_5_labels_all_folder(tmp_path: Path) -> None:
    root = tmp_path / "potsdam"
    shutil.copytree(ROOT / "4_Ortho_RGBIR", root / "4_Ortho_RGBIR")
    (root / "5_Labels_all").mkdir()
    for label in ROOT.glob("*_label.tif"):
        shutil.copy(label, root / "5_Labels_all" / label.name)
    assert len(build(request("test", root=root))) == len(build(request("test")))


def test_missing_or_incomplete_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build(request(root=tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in err.value.one_line()
    root = tmp_path / "potsdam"
    root.mkdir()
    with pytest.raises(DataError, match="4_Ortho_RGBIR"):
        build(request(root=root))
    shutil.copytree(ROOT / "4_Ortho_RGBIR", root / "4_Ortho_RGBIR")
    with pytest.raises(DataError, match="no label") as err:
        build(request(root=root))
    assert "top_potsdam_" in err.value.one_line()


def test_unknown_band() -> None:
    with pytest.raises(BandError):
        build(request(bands=("B04",)))


def test_one_epoch(tmp_path: Path) -> None:
    sets = ["dataset.patch_size=32", "dataset.options.crops_per_image=1"]
    _, res = run_training(tmp_path, "potsdam", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "potsdam", "segmentation")
    assert spec["bands"] == ["NIR", "R", "G"] and len(spec["classes"]) == 6
