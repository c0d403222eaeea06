"""SEN12MS loader on the tiny fixture in tests/data/sen12ms (the release layout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.registry import EXPERIMENTS, SEN12MS_CLASSES
from eosfm_cli.data.registry import SEN12MS_CLASSES as CLASSES
from eosfm_cli.data.sen12ms import build, index_patches, split_scenes
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "sen12ms"
EXPERIMENT_NAMES = ["sen12ms_rgb", "sen12ms_s1", "sen12ms_s2", "sen12ms_all"]
SPLITS = ["train", "val", "test"]
ALL_SCENES = {
    "ROIs1158_spring/1", "ROIs1158_spring/2", "ROIs1158_spring/3",
    "ROIs2017_winter/1", "ROIs2017_winter/4", "ROIs2017_winter/5",
}  # fmt: skip
# IGBP (1..17) -> simplified IGBP, 0-based, written out by hand; 0 (no data) -> ignore.
EXPECTED_CLASS = {
    1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 1, 7: 1, 8: 2, 9: 2, 10: 3,
    11: 4, 12: 5, 13: 6, 14: 5, 15: 7, 16: 8, 17: 9,
}  # fmt: skip


def request(
    split: str = "train", experiment: str = "sen12ms_all", root: Path = ROOT, **kw: object
) -> DatasetRequest:
    spec = EXPERIMENTS[experiment]
    fields: dict[str, object] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        **kw,
    }
    return DatasetRequest(experiment, root, split, **fields)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_classes_match_the_registry() -> None:
    assert CLASSES == SEN12MS_CLASSES
    assert len(CLASSES) == 10


@pytest.mark.parametrize("experiment", EXPERIMENT_NAMES)
@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(experiment: str, split: str) -> None:
    ds = build(request(split, experiment))
    assert len(ds) >= 1
    channels = len(EXPERIMENTS[experiment].bands)
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (channels, 256, 256)
        assert sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (256, 256)
        assert sample["mask"].dtype == torch.int64
        values = set(sample["mask"].unique().tolist())
        assert values <= set(range(-1, 10))


def test_band_order_matches_the_files() -> None:
    ds = build(request("train", "sen12ms_all"))
    key = ds.patches[0]
    image = ds[0]["image"].numpy()
    s1 = read(key.path(ROOT, "s1"))
    s2 = read(key.path(ROOT, "s2"))
    assert s1.dtype == np.float32 and s1.shape == (2, 256, 256)
    assert s2.dtype == np.uint16 and s2.shape == (13, 256, 256)
    np.testing.assert_array_equal(image[:2], s1)  # VV, VH
    np.testing.assert_array_equal(image[2:], s2.astype(np.float32))  # B01..B08, B8A, B09..B12
    # fixture S2 band k lies in [1000 (k + 1), 1000 (k + 1) + 400): B8A is the 9th file band
    b8a = EXPERIMENTS["sen12ms_all"].bands.index("B8A")
    assert image[b8a].min() >= 9000 and image[b8a].max() < 9400

    rgb = build(request("train", "sen12ms_rgb"))[0]["image"].numpy()
    np.testing.assert_array_equal(rgb, s2[[3, 2, 1]].astype(np.float32))
    assert rgb[0, 17, 42] == s2[3, 17, 42]
    sar = build(request("train", "sen12ms_s1"))[0]["image"].numpy()
    np.testing.assert_array_equal(sar, s1[[0, 1, 1]])


def test_mask_is_the_simplified_igbp() -> None:
    seen = set()
    for split in SPLITS:
        ds = build(request(split, "sen12ms_s2"))
        for i in range(len(ds)):
            igbp = read(ds.patches[i].path(ROOT, "lc"))[0]
            expected = np.vectorize(lambda v: EXPECTED_CLASS.get(int(v), -1))(igbp)
            np.testing.assert_array_equal(ds[i]["mask"].numpy(), expected)
            seen |= set(np.unique(igbp).tolist())
    assert seen == set(range(18))  # the fixture uses every IGBP class and no-data


def test_ignore_index_is_the_requested_one() -> None:
    ds = build(request("val", "sen12ms_rgb", ignore_index=255))
    masks = torch.stack([ds[i]["mask"] for i in range(len(ds))])
    assert 255 in masks.unique().tolist()
    assert -1 not in masks.unique().tolist()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_splits_are_grouped_by_scene(seed: int) -> None:
    scenes = {}
    for split in SPLITS:
        ds = build(request(split, "sen12ms_s2", seed=seed))
        scenes[split] = set(ds.scenes)
        # every patch of a chosen scene is in the split
        patches = index_patches(ROOT, ["s2"])
        assert len(ds) == sum(p.scene_id in scenes[split] for p in patches)
    assert scenes["train"] | scenes["val"] | scenes["test"] == ALL_SCENES
    assert not scenes["train"] & scenes["val"]
    assert not scenes["train"] & scenes["test"]
    assert not scenes["val"] & scenes["test"]
    assert (len(scenes["train"]), len(scenes["val"]), len(scenes["test"])) == (4, 1, 1)


def test_splits_are_seeded_and_deterministic() -> None:
    def test_scenes(seed: int) -> list[str]:
        return build(request("test", "sen12ms_s2", seed=seed)).scenes

    assert test_scenes(7) == test_scenes(7)
    assert len({tuple(test_scenes(seed)) for seed in range(10)}) > 1


def test_every_band_set_sees_the_same_split() -> None:
    for split in SPLITS:
        scenes = {tuple(build(request(split, e, seed=3)).scenes) for e in EXPERIMENT_NAMES}
        assert len(scenes) == 1


def test_patch_without_s1_is_left_out_only_when_s1_is_needed() -> None:
    def names(experiment: str) -> set[str]:
        out = set()
        for split in SPLITS:
            ds = build(request(split, experiment))
            out |= {p.path(ROOT, "lc").name for p in ds.patches}
        return out

    orphan = "ROIs1158_spring_lc_3_p77.tif"
    assert orphan in names("sen12ms_s2") and orphan in names("sen12ms_rgb")
    assert orphan not in names("sen12ms_s1") and orphan not in names("sen12ms_all")
    assert len(names("sen12ms_s2")) == 9 and len(names("sen12ms_all")) == 8


def test_split_fractions() -> None:
    scenes = [f"s/{i}" for i in range(20)]
    parts = split_scenes(scenes, seed=0)
    assert [len(parts[s]) for s in SPLITS] == [14, 2, 4]  # 70 / 10 / 20 %
    parts = split_scenes(scenes, seed=0, test_fraction=0.5, val_fraction=0.0)
    assert [len(parts[s]) for s in SPLITS] == [10, 0, 10]
    with pytest.raises(DataError, match="fractions"):
        split_scenes(scenes, seed=0, test_fraction=0.7, val_fraction=0.4)


def test_empty_split_is_a_data_error(tmp_path: Path) -> None:
    season = tmp_path / "ROIs1158_spring"
    season.mkdir()
    for source in ("s1", "s2", "lc"):
        (season / f"{source}_1").symlink_to(ROOT / "ROIs1158_spring" / f"{source}_1")
    assert len(build(request("train", root=tmp_path))) == 2
    with pytest.raises(DataError, match="test split is empty"):
        build(request("test", root=tmp_path))


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))


def test_root_without_seasons_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "something_else").mkdir()
    with pytest.raises(DataError, match=re.escape(str(tmp_path))):
        build(request(root=tmp_path))


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "sen12ms"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    ds = build(request("train", "sen12ms_all", root=root))
    victim = ds.patches[0].path(root, "s2")
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        ds[0]


@pytest.mark.parametrize("band", ["R", "HH", "L8_B4"])
def test_unknown_band_is_a_band_error(band: str) -> None:
    with pytest.raises(BandError, match=band):
        build(request(bands=("B04", band)))
