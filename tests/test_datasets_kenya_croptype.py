"""CV4A Kenya Crop Type loader on the tiny fixture in tests/data/kenya_croptype."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.kenya_croptype import FILE_BANDS, build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.data.registry import KENYA_CROPTYPE_CLASSES as CLASSES
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "kenya_croptype"
SPLITS = ["train", "val", "test"]
HEIGHT, WIDTH = 48, 40
#: (tile, field id) of the fields with a crop label in the fixture (ids 4, 7, 11 are test fields).
LABELLED = {("0", i) for i in (1, 2, 3, 5, 6, 8)} | {("1", i) for i in (9, 10, 12, 13)}


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    spec = EXPERIMENTS["kenya_croptype"]
    fields: dict[str, object] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        "patch_size": 16,
        **kw,
    }
    return DatasetRequest("kenya_croptype", root, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def split_fields(split: str, **kw: object) -> set[tuple[str, int]]:
    ds = build(request(split, **kw))
    return {(t, int(i)) for t, ids in ds.fields.items() for i in ids}  # type: ignore[attr-defined]


def test_registry_entry() -> None:
    spec = EXPERIMENTS["kenya_croptype"]
    assert spec.loader == "eosfm_cli.data.kenya_croptype:build"
    assert spec.classes == CLASSES and len(CLASSES) == 7 and spec.ignore_index == -1


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("patch", [16, 32])
def test_builds_every_split_with_labelled_pixels_in_every_chip(split: str, patch: int) -> None:
    ds = build(request(split, patch_size=patch))
    assert len(ds) >= 1
    for i in range(len(ds)):
        sample = ds[i]
        assert sample["image"].shape == (3, patch, patch) and sample["image"].dtype == torch.float32
        assert sample["mask"].shape == (patch, patch) and sample["mask"].dtype == torch.int64
        values = set(sample["mask"].unique().tolist())
        assert values <= set(range(-1, 7)) and values - {-1}  # never an unlabelled chip


def test_fields_split_disjointly_and_unlabelled_fields_are_never_used() -> None:
    parts = {s: split_fields(s) for s in SPLITS}
    assert parts["train"] | parts["val"] | parts["test"] == LABELLED
    assert not (parts["train"] & parts["val"] or parts["train"] & parts["test"])
    assert not parts["val"] & parts["test"]
    assert len(parts["test"]) == 2 and len(parts["val"]) == 1
    assert (
        split_fields("test", seed=1) != parts["test"]
        or split_fields("test", seed=2) != parts["test"]
    )


def test_mask_keeps_only_the_split_fields_and_encodes_crop_ids() -> None:
    ds = build(request("test", patch_size=None))
    label0, field0 = (
        read(ROOT / "data" / "0" / "0_label.tif"),
        read(ROOT / "data" / "0" / "0_field_id.tif"),
    )
    assert label0.dtype == np.uint8 and field0.dtype == np.int32
    for i, (tile, box) in enumerate(ds.samples):  # type: ignore[attr-defined]
        label = read(tile.label)[box.slices].astype(np.int64)
        fields = read(tile.field_id)[box.slices]
        keep = np.isin(fields, ds.fields[tile.tile])  # type: ignore[attr-defined]
        expected = np.where(keep & (label > 0), label - 1, -1)
        mask = ds[i]["mask"].numpy()
        np.testing.assert_array_equal(mask, expected)
        assert (mask[label == 0] == -1).all()  # competition test fields and non-field pixels


def test_chips_without_labelled_pixels_are_dropped() -> None:
    # Tile 1's bottom 16 rows hold no field: its grid chips there never appear in any split.
    for split in SPLITS:
        ds = build(request(split, patch_size=16))
        for tile, box in ds.samples:  # type: ignore[attr-defined]
            if tile.tile == "1":
                assert box.row < 32
    everything = build(
        request("val", patch_size=16, options={"val_fraction": 0.5, "test_fraction": 0.4})
    )
    assert len(everything) < 2 * 3 * 3  # fewer than the 9 grid chips of each tile


def test_band_order_and_date_match_the_files() -> None:
    ds = build(request("val", patch_size=16))
    tile, box = ds.samples[0]  # type: ignore[attr-defined]
    sample = ds[0]
    for c, band in enumerate(("B04", "B03", "B02")):
        expected = read(tile.folder / "20190606" / f"{tile.tile}_{band}_20190606.tif")[box.slices]
        np.testing.assert_array_equal(sample["image"][c].numpy(), expected)
        k = FILE_BANDS.index(band)
        assert (sample["image"][c] >= 1000 * (k + 1)).all() and (
            sample["image"][c] < 1000 * (k + 1) + 16
        ).all()
    later = build(request("val", patch_size=16, options={"date": "20190701"}))
    shift = later[0]["image"] - sample["image"]
    assert (shift > 84).all() and (shift < 116).all()  # date index 1 adds 100


def test_train_crops_are_seeded_and_counted() -> None:
    a = build(request("train", patch_size=16, options={"crops_per_image": 4}))
    b = build(request("train", patch_size=16, options={"crops_per_image": 4}))
    assert len(a) == 2 * 4
    assert [s[1] for s in a.samples] == [s[1] for s in b.samples]  # type: ignore[attr-defined]


def test_tiles_cover_the_labelled_pixels() -> None:
    ds = build(request("test", patch_size=16))
    for tile_name in ("0", "1"):
        label = read(ROOT / "data" / tile_name / f"{tile_name}_label.tif")
        fields = read(ROOT / "data" / tile_name / f"{tile_name}_field_id.tif")
        wanted = np.isin(fields, ds.fields[tile_name]) & (label > 0)  # type: ignore[attr-defined]
        covered = np.zeros((HEIGHT, WIDTH), dtype=bool)
        for tile, box in ds.samples:  # type: ignore[attr-defined]
            if tile.tile == tile_name:
                covered[box.slices] = True
        assert covered[wanted].all()


def test_bad_band_date_and_classes() -> None:
    with pytest.raises(BandError):
        build(request(bands=("B10",)))
    with pytest.raises(DataError, match="date"):
        build(request(options={"date": "20200101"}))
    with pytest.raises(DataError, match="7 crop classes"):
        build(request(classes=("a",)))


def test_missing_root_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=re.escape(str(missing))):
        build(request(root=missing))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "data"))):
        build(request(root=tmp_path))


def test_incomplete_root_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(str(ROOT / "data" / "0" / "20190711"))):
        build(request(options={"date": "20190711"}))  # a date the copy does not hold
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py"))
    victim = root / "data" / "1" / "1_field_id.tif"
    victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        build(request(root=root))


def test_one_epoch(tmp_path: Path) -> None:
    _, res = run_training(
        tmp_path,
        "kenya_croptype",
        ROOT,
        sets=["dataset.patch_size=32", "dataset.options.crops_per_image=2"],
    )
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "kenya_croptype", "segmentation")
    assert spec["bands"] == ["B04", "B03", "B02"] and len(spec["classes"]) == 7
