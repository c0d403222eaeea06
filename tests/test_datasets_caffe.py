"""CaFFe loader on the tiny fixture in tests/data/caffe (torchgeo's release layout)."""

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
from eosfm_cli.data.caffe import ZONE_VALUES, build
from eosfm_cli.data.registry import CAFFE_CLASSES as CLASSES
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "caffe"
SPLITS = ["train", "val", "test"]
HEIGHT, WIDTH = 48, 40


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    spec = EXPERIMENTS["caffe"]
    fields: dict[str, object] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        "patch_size": None,
        **kw,
    }
    return DatasetRequest("caffe", root, split, **fields)  # type: ignore[arg-type]


def test_registry_entry() -> None:
    spec = EXPERIMENTS["caffe"]
    assert spec.loader == "eosfm_cli.data.caffe:build"
    assert len(spec.classes) == len(CLASSES) == 4
    assert spec.bands == ("HH", "HH", "HH")


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("patch", [None, 32])
def test_builds_every_split(split: str, patch: int | None) -> None:
    ds = build(request(split, patch_size=patch))
    assert len(ds) == (2 if patch is None else 2 * 4)
    h, w = (HEIGHT, WIDTH) if patch is None else (patch, patch)
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, h, w) and sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (h, w) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= {0, 1, 2, 3}


def test_image_is_the_sar_band_three_times_and_zones_are_encoded() -> None:
    ds = build(request("val"))
    image_path, zone_path, _ = ds.samples[0]
    assert image_path.parent == ROOT / "caffe" / "sar_images" / "val"
    assert zone_path.name.replace("_zones_", "_") == image_path.name
    grey = np.asarray(Image.open(image_path))
    zones = np.asarray(Image.open(zone_path))
    assert grey.dtype == np.uint8 and zones.dtype == np.uint8
    assert set(np.unique(zones).tolist()) == set(ZONE_VALUES)
    sample = ds[0]
    for c in range(3):
        np.testing.assert_array_equal(sample["image"][c].numpy(), grey)
    expected = np.select([zones == v for v in ZONE_VALUES], [0, 1, 2, 3], default=-9)
    np.testing.assert_array_equal(sample["mask"].numpy(), expected)


def test_same_labels_as_torchgeo() -> None:
    from torchgeo.datasets import CaFFe

    theirs = CaFFe(root=str(ROOT), split="test", download=False, checksum=False)
    ours = build(request("test"))
    by_name = {Path(p).name: i for i, p in enumerate(theirs.fpaths)}
    for i, (_, zone, _) in enumerate(ours.samples):
        sample = theirs[by_name[zone.name]]
        torch.testing.assert_close(ours[i]["mask"], sample["mask_zones"])
        torch.testing.assert_close(ours[i]["image"][0], sample["image"][0])


def test_other_grey_values_become_ignore_index(tmp_path: Path) -> None:
    root = tmp_path / "caffe_copy"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py"))
    zone = sorted((root / "caffe" / "zones" / "train").glob("*.png"))[0]
    data = np.asarray(Image.open(zone)).copy()
    data[:2, :2] = 200
    Image.fromarray(data).save(zone)
    ds = build(request("train", root, ignore_index=255))
    mask = ds[0]["mask"] if ds.samples[0][1] == zone else ds[1]["mask"]
    assert (mask[:2, :2] == 255).all() and (mask[2:] != 255).all()


def test_tiles_cover_each_image_and_train_crops_are_seeded() -> None:
    for split in ("val", "test"):
        ds = build(request(split, patch_size=32))
        for image in {s[0] for s in ds.samples}:
            covered = np.zeros((HEIGHT, WIDTH), dtype=int)
            for path, _, box in ds.samples:
                if path == image:
                    covered[box.slices] += 1
            assert covered.min() >= 1
    a = build(request("train", patch_size=32, seed=3, options={"crops_per_image": 5}))
    b = build(request("train", patch_size=32, seed=3, options={"crops_per_image": 5}))
    c = build(request("train", patch_size=32, seed=4, options={"crops_per_image": 5}))
    assert len(a) == 2 * 5
    assert [s[2] for s in a.samples] == [s[2] for s in b.samples]
    assert [s[2] for s in a.samples] != [s[2] for s in c.samples]
    for _, _, box in a.samples:
        assert box.row + box.height <= HEIGHT and box.col + box.width <= WIDTH


def test_window_reads_the_right_pixels() -> None:
    ds = build(request("train", patch_size=32, options={"crops_per_image": 3}))
    image_path, _, box = ds.samples[1]
    grey = np.asarray(Image.open(image_path)).astype(np.float32)
    np.testing.assert_array_equal(ds[1]["image"][0].numpy(), grey[box.slices])


def test_bad_band_and_option() -> None:
    with pytest.raises(BandError):
        build(request(bands=("VV",)))
    with pytest.raises(DataError, match="crops_per_image"):
        build(request(options={"crops_per_imge": 2}))


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "caffe"))) as err:
        build(request(root=tmp_path))
    assert "sar_images" in str(err.value)
    (tmp_path / "caffe.zip").write_bytes(b"PK")  # never extracted, only named
    with pytest.raises(DataError, match=r"unzip caffe\.zip"):
        build(request(root=tmp_path))
    assert not (tmp_path / "caffe").exists()


def test_incomplete_root_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py"))
    shutil.rmtree(root / "caffe" / "zones" / "val")
    with pytest.raises(DataError, match=re.escape(str(root / "caffe" / "zones" / "val"))):
        build(request("val", root))
    victim = sorted((root / "caffe" / "sar_images" / "test").glob("*.png"))[0]
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request("test", root))
    assert not list(root.glob("*.zip"))


def test_one_epoch(tmp_path: Path) -> None:
    _, res = run_training(
        tmp_path, "caffe", ROOT, sets=["dataset.patch_size=32", "dataset.options.crops_per_image=1"]
    )
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "caffe", "segmentation")
    assert spec["bands"] == ["HH", "HH", "HH"] and len(spec["classes"]) == 4
