"""EuroSAT loader on the tiny fixture in tests/data/eurosat (torchgeo's release layout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.eurosat import FILE_BANDS, IMAGE_DIR, build, split_variant
from eosfm_cli.data.registry import EUROSAT_CLASSES, EXPERIMENTS
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "eurosat"
FULL_SIZES = {"train": 20, "val": 10, "test": 10}
SMALL_SIZES = {"train": 10, "val": 10, "test": 10}


def request(
    split: str = "train", experiment: str = "eurosat_s2", root: Path = ROOT, **kw: object
) -> DatasetRequest:
    spec = EXPERIMENTS[experiment]
    fields: dict[str, object] = {"bands": spec.bands, "classes": spec.classes, **kw}
    return DatasetRequest(experiment, root, split, **fields)


def file_of(ds: object, index: int) -> Path:
    return Path(ds.inner.samples[index][0])


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def small_root(tmp_path: Path) -> Path:
    """A root holding only the EuroSAT100 split files (images linked, not copied)."""
    root = tmp_path / "eurosat100"
    root.mkdir()
    (root / "ds").symlink_to(ROOT / "ds", target_is_directory=True)
    for split in ("train", "val", "test"):
        shutil.copy(ROOT / f"eurosat-100-{split}.txt", root)
    return root


@pytest.mark.parametrize("experiment", ["eurosat_rgb", "eurosat_s2"])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_builds_every_split(experiment: str, split: str) -> None:
    ds = build(request(split, experiment))
    assert len(ds) == FULL_SIZES[split]  # full split files win over the EuroSAT100 ones
    channels = len(EXPERIMENTS[experiment].bands)
    labels = []
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (channels, 64, 64)
        assert sample["image"].dtype == torch.float32
        assert sample["label"].dtype == torch.int64
        assert sample["label"].ndim == 0
        labels.append(int(sample["label"]))
    assert sorted(set(labels)) == list(range(10))


def test_all_bands_match_the_file_with_b8a_last() -> None:
    ds = build(request("val"))
    sample = ds[3]
    raw = read(file_of(ds, 3))
    assert raw.dtype == np.uint16 and raw.shape == (13, 64, 64)
    np.testing.assert_array_equal(sample["image"].numpy(), raw.astype(np.float32))
    # fixture band k lies in [1000 (k + 1), 1000 (k + 1) + 400): B8A is the 13th file band
    assert 13000 <= float(sample["image"][FILE_BANDS.index("B8A")].min()) < 13400


def test_rgb_and_repeated_bands_are_selected_by_name() -> None:
    ds = build(request("test", "eurosat_rgb"))
    raw = read(file_of(ds, 0)).astype(np.float32)
    image = ds[0]["image"].numpy()
    np.testing.assert_array_equal(image, raw[[3, 2, 1]])  # B04, B03, B02
    ds = build(request("test", bands=("B8A", "B08", "B8A")))
    image = ds[0]["image"].numpy()
    np.testing.assert_array_equal(image, raw[[12, 7, 12]])
    assert image[0, 5, 7] == raw[12, 5, 7]


def test_label_is_the_class_folder() -> None:
    ds = build(request("train"))
    for i in range(len(ds)):
        assert int(ds[i]["label"]) == EUROSAT_CLASSES.index(file_of(ds, i).parent.name)


def test_eurosat100_split_files_are_used_when_alone(tmp_path: Path) -> None:
    root = small_root(tmp_path)
    assert split_variant(root, "train") == "eurosat100"
    assert split_variant(ROOT, "train") == "full"
    for split, size in SMALL_SIZES.items():
        assert len(build(request(split, root=root))) == size


def test_order_is_deterministic() -> None:
    a = build(request("train"))
    b = build(request("train"))
    assert [file_of(a, i) for i in range(len(a))] == [file_of(b, i) for i in range(len(b))]


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))


def test_missing_split_file_names_the_path(tmp_path: Path) -> None:
    root = tmp_path / "eurosat"
    root.mkdir()
    (root / "ds").symlink_to(ROOT / "ds", target_is_directory=True)
    with pytest.raises(DataError, match=re.escape("eurosat-train.txt")) as err:
        build(request(root=root))
    assert str(root) in str(err.value)


def test_missing_image_folder_names_the_path(tmp_path: Path) -> None:
    shutil.copy(ROOT / "eurosat-train.txt", tmp_path)
    with pytest.raises(DataError, match="sentinel_2"):
        build(request(root=tmp_path))


def test_missing_patch_is_reported(tmp_path: Path) -> None:
    root = small_root(tmp_path)
    with (root / "eurosat-100-train.txt").open("a") as f:
        f.write("Forest_99999.jpg\n")
    with pytest.raises(DataError, match=re.escape("Forest_99999.tif")):
        build(request(root=root))


def test_a_subset_of_class_folders_keeps_the_class_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from eosfm_cli.data import class_folders

    class_folders._WARNED.clear()
    root = tmp_path / "eurosat"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    dropped = ("AnnualCrop", "Industrial", "SeaLake")
    for name in dropped:
        shutil.rmtree(root / IMAGE_DIR / name)
    for split in ("train", "val", "test"):
        ds = build(request(split, root=root))
        assert 0 < len(ds) < FULL_SIZES[split]
        for i in range(len(ds)):
            label = int(ds[i]["label"])
            assert EUROSAT_CLASSES[label] == file_of(ds, i).parent.name
            assert EUROSAT_CLASSES[label] not in dropped
    err = capsys.readouterr().err
    assert err.count("no folder for 3 of 10 classes (AnnualCrop, Industrial, SeaLake)") == 1
    # A patch of a class that is there is still missed when absent (by name, or as the
    # split that lost the class's only patch).
    victim = next((root / IMAGE_DIR / "Forest").glob("*.tif"))
    victim.unlink()
    with pytest.raises(DataError, match=f"{re.escape(victim.name)}|classes Forest"):
        for split in ("train", "val", "test"):
            build(request(split, root=root))


def test_extra_class_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "eurosat"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    shutil.copytree(root / IMAGE_DIR / "Forest", root / IMAGE_DIR / "Aardvark")
    with pytest.raises(DataError, match="Aardvark"):
        build(request(root=root))


@pytest.mark.parametrize("band", ["VV", "R", "B13"])
def test_unknown_band_is_a_band_error(band: str) -> None:
    with pytest.raises(BandError, match=band):
        build(request(bands=("B04", band)))
