"""FireRisk loader on the tiny fixture in tests/data/firerisk (torchgeo's release layout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.firerisk import build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.data.registry import FIRERISK_CLASSES as CLASSES
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "firerisk"
SPLITS = ["train", "val", "test"]
SIZE = 32


def request(split: str = "train", root: Path = ROOT, **kw: Any) -> DatasetRequest:
    spec = EXPERIMENTS["firerisk"]
    fields: dict[str, Any] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "options": dict(spec.options),
        **kw,
    }
    return DatasetRequest("firerisk", root, split, **fields)  # type: ignore[arg-type]


def files(ds: Any) -> list[Path]:
    return [Path(ds.inner.samples[i][0]) for i in ds.indices]


def test_registry_entry() -> None:
    spec = EXPERIMENTS["firerisk"]
    assert spec.loader == "eosfm_cli.data.firerisk:build"
    assert spec.classes == CLASSES and len(CLASSES) == 7 and spec.task == "classification"


@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(split: str) -> None:
    ds = build(request(split))
    assert len(ds) == {"train": 14, "val": 7, "test": 7}[split]
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, SIZE, SIZE)
        assert sample["image"].dtype == torch.float32
        assert sample["label"].shape == () and sample["label"].dtype == torch.int64


def test_splits() -> None:
    parts = {split: set(files(build(request(split)))) for split in SPLITS}
    assert all(p.parts[-3] == "val" for p in parts["test"])  # the release's val folder
    assert all(p.parts[-3] == "train" for p in parts["train"] | parts["val"])
    assert not parts["train"] & parts["val"]
    assert len(parts["train"] | parts["val"]) == 21
    # stratified: one validation patch of every class
    labels = sorted(int(build(request("val"))[i]["label"]) for i in range(7))
    assert labels == list(range(7))
    assert len({frozenset(files(build(request("val", seed=s)))) for s in range(6)}) > 1


def test_labels_and_band_order_match_the_files() -> None:
    for split in SPLITS:
        ds = build(request(split, bands=("B", "G", "R")))
        for i, path in enumerate(files(ds)):
            sample = ds[i]
            assert int(sample["label"]) == CLASSES.index(path.parent.name)
            with Image.open(path) as img:
                assert img.mode == "RGB"
                rgb = np.array(img).transpose(2, 0, 1)
            np.testing.assert_array_equal(sample["image"].numpy(), rgb[::-1])
            # the fixture's red band encodes the class: R = 30 * class + [0, 8)
            red, low = sample["image"][2], 30 * int(sample["label"])
            assert red.min() >= low and red.max() < low + 8


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))


def test_zip_is_never_extracted(tmp_path: Path) -> None:
    (tmp_path / "FireRisk.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "FireRisk" / "train"))):
        build(request(root=tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["FireRisk.zip"]


def test_a_subset_of_class_folders_keeps_the_class_ids_and_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eosfm_cli.data import class_folders

    class_folders._WARNED.clear()
    root = tmp_path / "firerisk"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    dropped = ("High", "Moderate")  # the first and a middle class: ids would shift
    for release in ("train", "val"):
        for name in dropped:
            shutil.rmtree(root / "FireRisk" / release / name)
    for split in SPLITS:
        ds = build(request(split, root=root))
        assert len(ds) > 0
        for i in range(len(ds)):
            label = int(ds[i]["label"])
            # The label is the full-list id of the class folder the file sits in.
            assert CLASSES[label] == files(ds)[i].parent.name
            assert CLASSES[label] not in dropped
    err = capsys.readouterr().err
    assert err.count("no folder for 2 of 7 classes (High, Moderate)") == 1, err
    _, res = run_training(tmp_path, "firerisk", root, sets=["trainer.batch_size=16"])
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "firerisk", "classification")
    assert spec["classes"] == list(CLASSES)  # the head still has all 7 outputs


def test_no_class_folder_at_all_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "firerisk"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    for path in (root / "FireRisk" / "val").iterdir():
        shutil.rmtree(path)
    with pytest.raises(DataError, match="none of the 7 class folders"):
        build(request("test", root=root))


def test_empty_class_folder_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "firerisk"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    folder = root / "FireRisk" / "val" / "Low"
    for path in folder.iterdir():
        path.unlink()
    with pytest.raises(DataError, match=re.escape(str(root / "FireRisk" / "val"))):
        build(request("test", root=root))


def test_unknown_band_is_a_band_error() -> None:
    with pytest.raises(BandError, match="B04"):
        build(request(bands=("B04", "G", "B")))


def test_one_epoch_of_training(tmp_path: Path) -> None:
    _, res = run_training(tmp_path, "firerisk", ROOT, sets=["trainer.batch_size=16"])
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "firerisk", "classification")
    assert spec["bands"] == ["R", "G", "B"] and spec["classes"] == list(CLASSES)
