"""DFC2022 loader on the tiny fixture in tests/data/dfc2022 (the contest's release layout)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.dfc2022 import build
from eosfm_cli.data.registry import EXPERIMENTS, URBANATLAS16_CLASSES
from eosfm_cli.data.registry import URBANATLAS16_CLASSES as CLASSES
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "dfc2022"
SPLITS = ["train", "val", "test"]
SIZE = 48
N_LABELLED = 5


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    spec = EXPERIMENTS["dfc2022"]
    fields: dict[str, object] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        "patch_size": 32,
        **kw,
    }
    return DatasetRequest("dfc2022", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def keys(ds: object) -> set[str]:
    return {tile.key for tile, _ in ds.samples}  # type: ignore[attr-defined]


def test_registry_entry() -> None:
    spec = EXPERIMENTS["dfc2022"]
    assert spec.loader == "eosfm_cli.data.dfc2022:build"
    assert CLASSES == URBANATLAS16_CLASSES and len(CLASSES) == 16
    assert spec.bands == ("R", "G", "B", "DEM") and spec.ignore_index == 0


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("patch", [None, 32])
def test_builds_every_split(split: str, patch: int | None) -> None:
    ds = build(request(split, patch_size=patch))
    assert len(ds) >= 1
    size = SIZE if patch is None else patch
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (4, size, size) and sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (size, size) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= set(range(16))


def test_splits_are_disjoint_labelled_tiles_only() -> None:
    train, val, test = (keys(build(request(s))) for s in SPLITS)
    assert len(train | val | test) == N_LABELLED
    assert not (train & val or train & test or val & test)
    assert len(test) == 1 and len(val) == 1
    assert all(k.split("/")[0] in {"Nantes_Saint-Nazaire", "Nice"} for k in train | val | test)


def test_band_order_dem_and_mask_match_the_files() -> None:
    ds = build(request("test", patch_size=32))
    tile, box = ds.samples[-1]  # type: ignore[attr-defined]
    rgb = read(tile.image)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, SIZE, SIZE)
    dem = read(tile.dem)
    assert dem.dtype == np.float32 and dem.shape == (1, SIZE // 2, SIZE // 2)
    ua = read(tile.target)[0]
    sample = ds[len(ds) - 1]
    rows, cols = box.slices
    np.testing.assert_array_equal(sample["image"][:3].numpy(), rgb[:, rows, cols])
    assert (sample["image"][0] >= 150).all() and (sample["image"][2] < 60).all()  # R then B
    np.testing.assert_array_equal(sample["mask"].numpy(), ua[rows, cols].astype(np.int64))
    # The DEM is the plane 100 + 0.5 x + 0.25 y in DEM pixels; on the 2x finer image grid,
    # pixel centre (r, c) sits at DEM coordinate ((c + 0.5) / 2 - 0.5, (r + 0.5) / 2 - 0.5).
    rr, cc = np.mgrid[rows, cols]
    plane = 100 + 0.5 * ((cc + 0.5) / 2 - 0.5) + 0.25 * ((rr + 0.5) / 2 - 0.5)
    inside = (rr > 0) & (cc > 0) & (rr < SIZE - 1) & (cc < SIZE - 1)
    np.testing.assert_allclose(sample["image"][3].numpy()[inside], plane[inside], atol=1e-3)


def test_dem_windows_agree_with_torchgeo_whole_read() -> None:
    from torchgeo.datasets import DFC2022

    theirs = DFC2022(root=str(ROOT), split="train", checksum=False)
    by_image = {Path(f["image"]).name: i for i, f in enumerate(theirs.files)}
    ours = build(request("val", patch_size=32))
    for i, (tile, box) in enumerate(ours.samples):  # type: ignore[attr-defined]
        whole = theirs[by_image[tile.image.name]]
        rows, cols = box.slices
        torch.testing.assert_close(
            ours[i]["image"], whole["image"][:, rows, cols], atol=1e-3, rtol=0
        )
        torch.testing.assert_close(ours[i]["mask"], whole["mask"][rows, cols])


def test_windows_cover_each_tile_and_train_crops_are_seeded() -> None:
    ds = build(request("test", patch_size=20))
    for key in keys(ds):
        covered = np.zeros((SIZE, SIZE), dtype=int)
        for tile, box in ds.samples:  # type: ignore[attr-defined]
            if tile.key == key:
                covered[box.slices] += 1
        assert covered.min() >= 1
    assert len(ds) == 9  # starts 0, 20, 28 in both directions
    a = build(request("train", options={"crops_per_image": 2}))
    b = build(request("train", options={"crops_per_image": 2}))
    assert len(a) == 2 * 3
    assert [x[1] for x in a.samples] == [x[1] for x in b.samples]  # type: ignore[attr-defined]


def test_values_above_the_classes_become_ignore_index(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py"))
    ds = build(request("test", root, patch_size=None, ignore_index=255))
    tile, _ = ds.samples[0]  # type: ignore[attr-defined]
    with rasterio.open(tile.target, "r+") as dst:
        data = dst.read(1)
        data[:4, :4] = 40
        dst.write(data, 1)
    mask = ds[0]["mask"]
    assert (mask[:4, :4] == 255).all() and (mask[4:] < 16).all()


def test_bad_band_and_classes() -> None:
    with pytest.raises(BandError):
        build(request(bands=("NIR",)))
    with pytest.raises(DataError, match="16 classes"):
        build(request(classes=("a", "b")))


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "labeled_train"))):
        build(request(root=tmp_path))


def test_incomplete_root_is_a_data_error(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py"))
    victim = (
        root / "labeled_train" / "Nice" / "RGEALTI" / "06-2014-1007-6318-LA93-0M50-E080_RGEALTI.tif"
    )
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request("train", root))


def test_one_epoch(tmp_path: Path) -> None:
    _, res = run_training(
        tmp_path,
        "dfc2022",
        ROOT,
        sets=["dataset.patch_size=32", "dataset.options.crops_per_image=1"],
    )
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "dfc2022", "segmentation")
    assert spec["bands"] == ["R", "G", "B", "DEM"] and len(spec["classes"]) == 16
