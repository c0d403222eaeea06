"""BigEarthNet loader on the tiny v1 and v2 fixtures in tests/data/bigearthnet."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.bigearthnet import S2_BANDS, build
from eosfm_cli.data.bigearthnet_labels import CLC43_TO_BEN19, clc43_to_indices
from eosfm_cli.data.bigearthnet_layouts import detect_version
from eosfm_cli.data.registry import BEN19_CLASSES, EXPERIMENTS
from eosfm_cli.data.registry import BEN19_CLASSES as CLASSES
from eosfm_cli.errors import BandError, DataError

DATA = Path(__file__).resolve().parent / "data" / "bigearthnet"
V1 = DATA / "v1"
V2 = DATA / "v2"
EXPERIMENT_NAMES = ["ben_rgb", "ben_s1", "ben_all"]
SPLITS = ["train", "val", "test"]

needs_parquet = pytest.mark.skipif(
    importlib.util.find_spec("pyarrow") is None,
    reason="BigEarthNet v2 metadata.parquet needs pyarrow",
)
VERSIONS = [pytest.param(V1, id="v1"), pytest.param(V2, id="v2", marks=needs_parquet)]

# Expected 19-class indices, written by hand from the fixture's labels (generate.py).
V1_EXPECTED = {
    "S2A_MSIL2A_20170613T101031_10_40": {0},  # urban x2 merged, road dropped
    "S2A_MSIL2A_20170613T101031_11_42": {2, 4, 10},
    "S2A_MSIL2A_20170613T101031_12_44": {9, 13, 17},
    "S2A_MSIL2A_20170613T101031_13_46": {18, 14, 16},
    "S2A_MSIL2A_20170613T101031_14_48": {6, 8, 11},  # grassland + sparse veg. merged
    "S2A_MSIL2A_20170613T101031_15_50": {3, 5, 15, 12, 1},
}
V2_EXPECTED = [{0, 2}, {9, 10, 17}, {4}, {18, 16, 14}, {3, 5, 7}, {8, 13, 15, 11}]


def request(
    root: Path, split: str = "train", experiment: str = "ben_all", **kw: object
) -> DatasetRequest:
    spec = EXPERIMENTS[experiment]
    fields: dict[str, object] = {"bands": spec.bands, "classes": spec.classes, **kw}
    return DatasetRequest(experiment, root, split, **fields)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def band_file(ds: object, index: int, band: str) -> Path:
    return ds.band_path(ds.patches[index], band)


@pytest.mark.parametrize("root", VERSIONS)
@pytest.mark.parametrize("experiment", EXPERIMENT_NAMES)
@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(root: Path, experiment: str, split: str) -> None:
    ds = build(request(root, split, experiment))
    assert len(ds) == 2
    channels = len(EXPERIMENTS[experiment].bands)
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (channels, 120, 120)
        assert sample["image"].dtype == torch.float32
        assert sample["label"].shape == (19,)
        assert sample["label"].dtype == torch.float32
        assert set(sample["label"].unique().tolist()) <= {0.0, 1.0}
        assert sample["label"].sum() >= 1


def test_classes_match_the_registry() -> None:
    assert CLASSES == BEN19_CLASSES


def test_v1_labels_follow_the_official_43_to_19_mapping() -> None:
    for split in SPLITS:
        ds = build(request(V1, split, "ben_rgb"))
        for i in range(len(ds)):
            name = ds.patches[i].s2_dir.name
            got = set(ds[i]["label"].nonzero().flatten().tolist())
            assert got == V1_EXPECTED[name]
            assert ds[i]["label"].sum() == len(V1_EXPECTED[name])


@needs_parquet
def test_v2_labels_come_from_the_metadata() -> None:
    got = []
    for split in SPLITS:
        ds = build(request(V2, split, "ben_s1"))
        got += [set(ds[i]["label"].nonzero().flatten().tolist()) for i in range(len(ds))]
    assert got == V2_EXPECTED


def test_mapping_covers_the_43_classes_and_reaches_the_19() -> None:
    from torchgeo.datasets import BigEarthNet

    names43 = BigEarthNet.class_sets[43]
    assert set(CLC43_TO_BEN19) == set(names43)
    assert {v for v in CLC43_TO_BEN19.values() if v} == set(CLASSES)
    # Same mapping as torchgeo's index-based converter (both from the official label file).
    for i, name in enumerate(names43):
        expected = BigEarthNet.label_converter.get(i)
        assert clc43_to_indices([name], "test") == (() if expected is None else (expected,))


def test_unknown_label_is_a_data_error() -> None:
    with pytest.raises(DataError, match="Urban jungle"):
        clc43_to_indices(["Urban jungle"], "some.json")


@pytest.mark.parametrize("root", VERSIONS)
def test_ten_metre_and_sar_bands_match_the_files(root: Path) -> None:
    ds = build(request(root, "val", "ben_all"))
    image = ds[1]["image"].numpy()
    bands = EXPERIMENTS["ben_all"].bands
    assert bands[:2] == ("VV", "VH")
    for c, band in enumerate(bands):
        if band in ("VV", "VH", "B02", "B03", "B04", "B08"):
            raw = read(band_file(ds, 1, band))
            assert raw.shape == (120, 120)
            np.testing.assert_array_equal(image[c], raw.astype(np.float32))
    assert image[0].min() >= -15.0 and image[0].max() <= -5.0  # VV, dB
    assert image[1].min() >= -25.0 and image[1].max() <= -15.0  # VH, dB
    # fixture S2 band k lies in [1000 (k + 1), 1000 (k + 1) + 400)
    for c, band in enumerate(bands[2:], start=2):
        level = 1000 * (S2_BANDS.index(band) + 1)
        assert level <= image[c].min() and image[c].max() < level + 400


@pytest.mark.parametrize("root", VERSIONS)
def test_coarse_bands_are_upsampled_to_120(root: Path) -> None:
    bands = ("B01", "B8A", "B09", "B12")
    nearest = build(request(root, "test", bands=bands, options={"resampling": "nearest"}))
    bilinear = build(request(root, "test", bands=bands))
    for c, band in enumerate(bands):
        raw = read(band_file(nearest, 0, band)).astype(np.float32)
        factor = 120 // raw.shape[0]
        assert factor == (6 if band in ("B01", "B09") else 2)  # 60 m and 20 m native sizes
        np.testing.assert_array_equal(
            nearest[0]["image"][c].numpy(), np.kron(raw, np.ones((factor, factor)))
        )
        smooth = bilinear[0]["image"][c].numpy()
        assert smooth.shape == (120, 120)
        assert raw.min() <= smooth.min() and smooth.max() <= raw.max()
        assert not np.array_equal(smooth, nearest[0]["image"][c].numpy())


def test_v1_matches_torchgeo() -> None:
    from torchgeo.datasets import BigEarthNet

    ours = build(request(V1, "train", bands=S2_BANDS))
    theirs = BigEarthNet(str(V1), split="train", bands="s2", num_classes=19)
    for i in range(len(ours)):
        np.testing.assert_allclose(ours[i]["image"].numpy(), theirs[i]["image"].numpy())
        assert torch.equal(ours[i]["label"], theirs[i]["label"].float())


@needs_parquet
def test_v2_matches_torchgeo() -> None:
    from torchgeo.datasets import BigEarthNetV2

    ours = build(request(V2, "val", bands=S2_BANDS))
    theirs = BigEarthNetV2(str(V2), split="val", bands="s2")
    for i in range(len(ours)):
        np.testing.assert_allclose(ours[i]["image"].numpy(), theirs[i]["image"].numpy())
        assert torch.equal(ours[i]["label"], theirs[i]["label"].float())


def _v1_copy(tmp_path: Path, *, s2: bool = True, s1: bool = True) -> Path:
    root = tmp_path / "ben"
    root.mkdir()
    for name, keep in (("BigEarthNet-v1.0", s2), ("BigEarthNet-S1-v1.0", s1)):
        if keep:
            (root / name).symlink_to(V1 / name, target_is_directory=True)
    return root


def test_v1_official_one_column_splits_find_s1_through_metadata(tmp_path: Path) -> None:
    root = _v1_copy(tmp_path)
    for split in SPLITS:
        names = [
            line.split(",")[0] for line in (V1 / f"bigearthnet-{split}.csv").read_text().split()
        ]
        (root / f"{split}.csv").write_text("\n".join(names) + "\n")
    for split in SPLITS:
        ours = build(request(root, split, "ben_all"))
        reference = build(request(V1, split, "ben_all"))
        for i in range(2):
            assert torch.equal(ours[i]["image"], reference[i]["image"])
            assert torch.equal(ours[i]["label"], reference[i]["label"])


def test_v1_s1_only_needs_no_s2_folder(tmp_path: Path) -> None:
    root = _v1_copy(tmp_path, s2=False)
    shutil.copy(V1 / "bigearthnet-train.csv", root)
    ds = build(request(root, "train", "ben_s1"))
    reference = build(request(V1, "train", "ben_s1"))
    assert torch.equal(ds[0]["image"], reference[0]["image"])
    assert torch.equal(ds[0]["label"], reference[0]["label"])  # from the S1 metadata file
    with pytest.raises(DataError, match=re.escape("BigEarthNet-v1.0")):
        build(request(root, "train", "ben_rgb"))


def test_layout_detection(tmp_path: Path) -> None:
    assert detect_version(V1) == "v1"
    assert detect_version(V2) == "v2"
    assert detect_version(V2, "v1") == "v1"
    with pytest.raises(DataError, match=re.escape(str(tmp_path))):
        detect_version(tmp_path)
    with pytest.raises(DataError, match="v3"):
        build(request(V1, options={"version": "v3"}))


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(missing))


def test_missing_split_file_names_the_path(tmp_path: Path) -> None:
    root = _v1_copy(tmp_path)
    with pytest.raises(DataError, match=re.escape("bigearthnet-val.csv")) as err:
        build(request(root, "val"))
    assert str(root) in str(err.value)


def test_missing_band_file_is_reported_at_build(tmp_path: Path) -> None:
    root = tmp_path / "ben"
    shutil.copytree(V1, root)
    first = (V1 / "bigearthnet-train.csv").read_text().split()[0].split(",")[0]
    victim = root / "BigEarthNet-v1.0" / first / f"{first}_B8A.tif"
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request(root, "train", "ben_all"))
    build(request(root, "train", "ben_rgb"))  # B8A not needed


def test_bad_resampling_is_a_data_error() -> None:
    with pytest.raises(DataError, match="lanczos"):
        build(request(V1, options={"resampling": "lanczos"}))


@pytest.mark.parametrize("band", ["B10", "HH", "R"])
def test_unknown_band_is_a_band_error(band: str) -> None:
    with pytest.raises(BandError, match=band):
        build(request(V1, bands=("B04", band)))
