"""LEVIR-CD+ loader on the tiny fixture in tests/data/levircdplus (torchgeo LEVIRCDPlus layout)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.levircdplus import build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import DataError

ROOT = Path(__file__).resolve().parent / "data" / "levircdplus"
SPEC = EXPERIMENTS["levircdplus"]
SPLITS = ["train", "val", "test"]
SIZE = 96


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    fields: dict[str, object] = {
        "bands": SPEC.bands,
        "classes": SPEC.classes,
        "patch_size": 32,
        "options": {"crops_per_image": 2},
        **kw,
    }
    return DatasetRequest("levircdplus", root, split, **fields)  # type: ignore[arg-type]


def test_registry_entry() -> None:
    assert SPEC.loader == "eosfm_cli.data.levircdplus:build"
    assert SPEC.task == "change_detection" and SPEC.bands == ("R", "G", "B")


@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(split: str) -> None:
    ds = build(request(split))
    assert len(ds) > 0
    for i in range(len(ds)):
        sample = ds[i]
        for key in ("image", "image2"):
            assert sample[key].shape == (3, 32, 32) and sample[key].dtype == torch.float32
        assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= {0, 1}


def test_val_is_carved_from_train_and_test_is_the_release_test() -> None:
    names = {s: {sc.name for sc in build(request(s)).scenes} for s in SPLITS}
    assert names["test"] == {"test_1", "test_2"}
    assert len(names["val"]) == 1 and len(names["train"]) == 3
    assert names["val"] | names["train"] == {f"train_{i}" for i in range(1, 5)}


def test_dates_bands_and_mask_match_the_files() -> None:
    ds = build(request("test", bands=("B", "G", "R")))
    i, w = ds.windows[-1]
    scene = ds.scenes[i]
    rows, cols = slice(w.row, w.row + 32), slice(w.col, w.col + 32)
    sample = ds[len(ds) - 1]
    first = np.array(Image.open(scene.date1[0][0]))[rows, cols]
    second = np.array(Image.open(scene.date2[0][0]))[rows, cols]
    label = np.array(Image.open(scene.mask))[rows, cols]
    assert scene.date2[0][0].parent.name == "B" and scene.mask.parent.name == "label"
    np.testing.assert_array_equal(sample["image"].numpy(), first[..., ::-1].transpose(2, 0, 1))
    np.testing.assert_array_equal(sample["image2"].numpy(), second[..., ::-1].transpose(2, 0, 1))
    np.testing.assert_array_equal(sample["mask"].numpy(), (label == 255).astype(np.int64))


def test_tiles_cover_every_test_pair() -> None:
    ds = build(request("test"))
    assert len(ds) == 2 * 9
    for i in range(len(ds.scenes)):
        seen = np.zeros((SIZE, SIZE), bool)
        for j, w in ds.windows:
            if j == i:
                seen[w.row : w.row + w.height, w.col : w.col + w.width] = True
        assert seen.all()


def test_crops_per_image_option() -> None:
    assert len(build(request("train", options={"crops_per_image": 5}))) == 3 * 5
    first = build(request("train", options={"crops_per_image": 5})).windows
    assert first == build(request("train", options={"crops_per_image": 5})).windows


def test_missing_or_incomplete_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build(request(root=tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in err.value.one_line()
    root = tmp_path / "levir"
    shutil.copytree(ROOT / "LEVIR-CD+" / "train", root / "LEVIR-CD+" / "train")
    with pytest.raises(DataError) as err:  # no test folder: never a download
        build(request(root=root))
    assert str(root / "LEVIR-CD+" / "test") in err.value.one_line()
    shutil.copytree(ROOT / "LEVIR-CD+" / "test", root / "LEVIR-CD+" / "test")
    (root / "LEVIR-CD+" / "train" / "label" / "train_2.png").unlink()
    with pytest.raises(DataError, match="incomplete") as err:
        build(request(root=root))
    assert "train_2.png" in err.value.one_line()
    assert not list(tmp_path.rglob("*.zip"))


def test_one_epoch(tmp_path: Path) -> None:
    sets = ["dataset.patch_size=32", "dataset.options.crops_per_image=2"]
    _, res = run_training(tmp_path, "levircdplus", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "levircdplus", "change_detection")
    assert spec["bands"] == ["R", "G", "B"]
