"""ETCI 2021 loader on the tiny fixture in tests/data/etci2021 (the release layout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.etci2021 import build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "etci2021"
SPLITS = ["train", "val", "test"]
SIZE = 40
TRAIN_SCENES = {"bangladesh_20170314t115609", "nebraska_20170108t002112", "northal_20190302t234651"}
TEST_SCENES = {"florence_20180510t231343", "florence_20180522t231344"}
NEAR_EMPTY = {"nebraska_20170108t002112_x-0_y-1", "florence_20180510t231343_x-1_y-0"}


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    spec = EXPERIMENTS["etci2021"]
    fields: dict[str, object] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        "patch_size": spec.patch_size,
        "options": {},
        **kw,
    }
    return DatasetRequest("etci2021", root, split, **fields)  # type: ignore[arg-type]


def stems(ds: object) -> set[str]:
    return {tile.stem for tile, _ in ds.samples}  # type: ignore[attr-defined]


def scenes(ds: object) -> set[str]:
    return {tile.scene.name for tile, _ in ds.samples}  # type: ignore[attr-defined]


def test_registry_entry() -> None:
    spec = EXPERIMENTS["etci2021"]
    assert spec.loader == "eosfm_cli.data.etci2021:build"
    assert spec.bands == ("VV_U8", "VH_U8", "VH_U8") and len(spec.classes) == 2
    assert spec.options["drop_empty"] is True


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


def test_splits_never_use_the_unlabelled_test_and_val_is_whole_train_scenes() -> None:
    train, val, test = (build(request(s)) for s in SPLITS)
    assert scenes(train) | scenes(val) == TRAIN_SCENES and not scenes(train) & scenes(val)
    assert len(scenes(val)) == 1
    assert scenes(test) == TEST_SCENES
    assert len(test) == 3  # every tile of test/, none of test_internal/


def test_band_order_and_flood_labels_match_the_files() -> None:
    ds = build(request("test"))
    tile, _ = ds.samples[0]  # type: ignore[attr-defined]
    vv_file = Image.open(tile.path("vv"))
    assert vv_file.mode == "RGB"
    vv = np.asarray(vv_file)[:, :, 0]
    vh = np.asarray(Image.open(tile.path("vh")))[:, :, 0]
    flood = np.asarray(Image.open(tile.path("flood_label")))
    assert set(np.unique(flood).tolist()) == {0, 255}
    sample = ds[0]
    np.testing.assert_array_equal(sample["image"][0].numpy(), vv)
    np.testing.assert_array_equal(sample["image"][1].numpy(), vh)
    np.testing.assert_array_equal(sample["image"][2].numpy(), vh)
    assert (sample["image"][0] > sample["image"][1]).all()  # VV is brighter in the fixture
    np.testing.assert_array_equal(sample["mask"].numpy(), (flood == 255).astype(np.int64))


def test_same_tiles_as_torchgeo() -> None:
    from torchgeo.datasets import ETCI2021

    theirs = ETCI2021(root=str(ROOT), split="val", download=False, checksum=False)  # test/ folder
    ours = build(request("test"))
    by_vv = {Path(f["vv"]).name: i for i, f in enumerate(theirs.files)}
    for i, (tile, _) in enumerate(ours.samples):  # type: ignore[attr-defined]
        sample = theirs[by_vv[tile.path("vv").name]]
        torch.testing.assert_close(ours[i]["image"][0], sample["image"][0])  # VV
        torch.testing.assert_close(ours[i]["image"][1], sample["image"][3])  # VH
        torch.testing.assert_close(ours[i]["mask"], sample["mask"][1])  # flood layer


def test_drop_empty_removes_only_near_empty_tiles() -> None:
    kept = {s: stems(build(request(s, options={"drop_empty": True}))) for s in SPLITS}
    full = {s: stems(build(request(s))) for s in SPLITS}
    for split in SPLITS:
        assert kept[split] == full[split] - NEAR_EMPTY
    dropped = set().union(*full.values()) - set().union(*kept.values())
    assert dropped == NEAR_EMPTY
    assert "northal_20190302t234651_x-0_y-1" in set().union(*kept.values())  # 5 % at 0: kept
    looser = build(request("test", options={"drop_empty": True, "empty_fraction": 0.25}))
    assert "florence_20180510t231343_x-1_y-0" in stems(looser)


def test_windows_cover_each_tile() -> None:
    ds = build(request("test", patch_size=32))
    for stem in stems(ds):
        covered = np.zeros((SIZE, SIZE), dtype=int)
        for tile, box in ds.samples:  # type: ignore[attr-defined]
            if tile.stem == stem:
                covered[box.slices] += 1
        assert covered.min() >= 1
    train = build(request("train", patch_size=32, options={"crops_per_image": 3}))
    assert len(train) == 3 * len(stems(train))


def test_bad_band_and_options() -> None:
    with pytest.raises(BandError):
        build(request(bands=("HH",)))
    with pytest.raises(BandError):  # grey levels are not served as dB backscatter
        build(request(bands=("VV", "VH")))
    with pytest.raises(DataError, match="drop_empty"):
        build(request(options={"drop_empty": "yes"}))
    with pytest.raises(DataError, match="did you mean 'drop_empty'"):
        build(request(options={"drop_emtpy": True}))


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "test"))):
        build(request("test", root=tmp_path))


def test_incomplete_root_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py"))
    victim = root / "train" / "northal_20190302t234651" / "tiles" / "flood_label"
    victim = victim / "northal_20190302t234651_x-0_y-0.png"
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request("train", root))


def test_one_epoch(tmp_path: Path) -> None:
    _, res = run_training(
        tmp_path,
        "etci2021",
        ROOT,
        sets=["dataset.patch_size=32", "dataset.options.crops_per_image=1"],
    )
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "etci2021", "segmentation")
    assert spec["bands"] == ["VV_U8", "VH_U8", "VH_U8"]
