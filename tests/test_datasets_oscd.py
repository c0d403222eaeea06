"""OSCD loader on the tiny fixture in tests/data/oscd (torchgeo OSCD layout)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from PIL import Image
from rasterio.enums import Resampling
from training_helpers import check_specialist, run_training

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.oscd import FILE_BANDS, IMAGES, build
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import BandError, DataError

ROOT = Path(__file__).resolve().parent / "data" / "oscd"
SPEC = EXPERIMENTS["oscd"]
SPLITS = ["train", "val", "test"]
HEIGHT, WIDTH = 40, 48


def request(split: str = "train", root: Path = ROOT, **kw: object) -> DatasetRequest:
    fields: dict[str, object] = {
        "bands": SPEC.bands,
        "classes": SPEC.classes,
        "patch_size": 32,
        "options": {"crops_per_image": 3},
        **kw,
    }
    return DatasetRequest("oscd", root, split, **fields)  # type: ignore[arg-type]


def test_specialist_bands_are_the_13_real_s2_bands() -> None:
    assert SPEC.loader == "eosfm_cli.data.oscd:build"
    assert SPEC.bands == FILE_BANDS == BAND_SETS["S2_WAVELENGTH"]
    assert len(set(SPEC.bands)) == 13


@pytest.mark.parametrize("split", SPLITS)
def test_builds_every_split(split: str) -> None:
    ds = build(request(split))
    assert len(ds) > 0
    for i in range(len(ds)):
        sample = ds[i]
        for key in ("image", "image2"):
            assert sample[key].shape == (13, 32, 32) and sample[key].dtype == torch.float32
        assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= {0, 1}


def test_val_is_carved_from_train_cities() -> None:
    names = {s: {sc.name for sc in build(request(s)).scenes} for s in SPLITS}
    assert names["test"] == {"brasilia"}
    assert len(names["val"]) == 1 and len(names["train"]) == 2
    assert names["val"] | names["train"] == {"abudhabi", "beihai", "bercy"}


def test_band_order_dates_and_mask_match_the_files() -> None:
    ds = build(request("test"))
    sample = ds[0]
    _, w = ds.windows[0]
    city = ROOT / IMAGES / "brasilia"
    for k, band in enumerate(FILE_BANDS):
        for date, key in ((1, "image"), (2, "image2")):
            with rasterio.open(city / f"imgs_{date}_rect" / f"{band}.tif") as src:
                data = src.read(1)[w.row : w.row + 32, w.col : w.col + 32]
            np.testing.assert_array_equal(sample[key][k].numpy(), data.astype(np.float32))
    # fixture: band at wavelength position k holds [1000 k, 1000 k + 43) on date 1
    assert sample["image"][8].min() >= 8000 and sample["image"][8].max() < 8043  # B8A
    assert sample["image"][12].min() >= 12000  # B12 last
    label = ROOT / "Onera Satellite Change Detection dataset - Test Labels/brasilia/cm/cm.png"
    cm = np.array(Image.open(label))[w.row : w.row + 32, w.col : w.col + 32]
    np.testing.assert_array_equal(sample["mask"].numpy(), (cm > 0).astype(np.int64))
    subset = build(request("test", bands=("B04", "B03", "B02", "B04")))[0]["image"]
    np.testing.assert_array_equal(subset.numpy(), sample["image"][[3, 2, 1, 3]].numpy())


def test_tiles_cover_the_city() -> None:
    ds = build(request("test"))
    assert len(ds) == 4  # 40x48 with 32 px tiles: 2 x 2, the last ones flush with the edge
    seen = np.zeros((HEIGHT, WIDTH), bool)
    for _, w in ds.windows:
        assert (w.height, w.width) == (32, 32)
        seen[w.row : w.row + 32, w.col : w.col + 32] = True
    assert seen.all()


def test_crops_per_image_option() -> None:
    assert len(build(request("train", options={"crops_per_image": 7}))) == 2 * 7


def test_missing_or_incomplete_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        build(request(root=tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in err.value.one_line()
    (tmp_path / "Onera Satellite Change Detection dataset - Images.zip").write_bytes(b"")
    with pytest.raises(DataError, match="not found") as err:  # never extracts the archive
        build(request(root=tmp_path))
    assert IMAGES in err.value.one_line()
    root = tmp_path / "oscd"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py"))
    (root / IMAGES / "beihai" / "imgs_2_rect" / "B8A.tif").unlink()
    with pytest.raises(DataError, match="B8A") as err:
        build(request(root=root))
    assert str(root / IMAGES / "beihai" / "imgs_2_rect") in err.value.one_line()


def test_unknown_band() -> None:
    with pytest.raises(BandError):
        build(request(bands=("VV",)))


def test_one_epoch(tmp_path: Path) -> None:
    sets = ["dataset.patch_size=32", "dataset.options.crops_per_image=2"]
    _, res = run_training(tmp_path, "oscd", ROOT, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "oscd", "change_detection")
    assert tuple(spec["bands"]) == FILE_BANDS and spec["in_chans"] == 13


# --- the native-resolution copy (no `_rect` folders, no test labels) ---------------------------

NATIVE = ROOT / "native"
NATIVE_CITIES = {"nantes", "paris", "rennes"}
GRID = (60, 48)  # B02's size: 20 m bands are 30x24 and 60 m bands 10x8 in the files
TRAIN_LABELS = "Onera Satellite Change Detection dataset - Train Labels"


def native_band(city: str, date: int, band: str) -> Path:
    (path,) = (NATIVE / IMAGES / city / f"imgs_{date}").glob(f"*_{band}.tif")
    return path


def whole_mask(ds: Any) -> np.ndarray:
    """The change map of the first scene of a tiled split, put together from its tiles."""
    out = np.full(GRID, -1, np.int64)
    for i, (scene, w) in enumerate(ds.windows):
        if scene == 0:
            out[w.row : w.row + w.height, w.col : w.col + w.width] = ds[i]["mask"].numpy()
    assert (out >= 0).all()
    return out


@pytest.mark.parametrize("split", SPLITS)
def test_native_layout_is_read_on_the_10m_grid(split: str) -> None:
    ds = build(request(split, NATIVE))
    assert all((sc.height, sc.width) == GRID for sc in ds.scenes)
    assert len(ds) > 0
    for i in range(len(ds)):
        sample = ds[i]
        for key in ("image", "image2"):
            assert sample[key].shape == (13, 32, 32) and sample[key].dtype == torch.float32
        assert sample["mask"].shape == (32, 32) and sample["mask"].dtype == torch.int64
        assert set(sample["mask"].unique().tolist()) <= {0, 1}
    whole = build(request(split, NATIVE, patch_size=64))[0]
    assert whole["image"].shape == whole["image2"].shape == (13, *GRID)


def test_native_bands_are_resampled_bilinear_onto_b02_grid() -> None:
    sizes = {}
    for band in FILE_BANDS:
        with rasterio.open(native_band("paris", 1, band)) as src:
            sizes[band] = (src.height, src.width)
    assert sizes["B02"] == sizes["B08"] == GRID
    assert sizes["B05"] == sizes["B8A"] == sizes["B12"] == (30, 24)
    assert sizes["B01"] == sizes["B09"] == sizes["B10"] == (10, 8)
    assert not list(NATIVE.glob(f"{IMAGES}/*/imgs_*_rect"))
    assert not (NATIVE / "Onera Satellite Change Detection dataset - Test Labels").exists()
    ds = build(request("test", NATIVE))
    city = ds.scenes[0].name
    for i, (_, w) in enumerate(ds.windows):
        sample = ds[i]
        for date, key in ((1, "image"), (2, "image2")):
            for k, band in enumerate(FILE_BANDS):
                with rasterio.open(native_band(city, date, band)) as src:
                    full = src.read(1, out_shape=GRID, resampling=Resampling.bilinear)
                    raw = src.read(1)
                got = sample[key][k].numpy()
                want = full[w.row : w.row + 32, w.col : w.col + 32].astype(np.float32)
                np.testing.assert_allclose(got, want, atol=0.5)
                # bilinear stays within the file's values: band order and date are kept
                assert raw.min() <= got.min() and got.max() <= raw.max()
                assert 1000 * k + 100 * (date - 1) <= got.min() and got.max() < 1000 * k + 243
                if band == "B02":  # already on the grid: the file's own values
                    np.testing.assert_array_equal(got, raw[w.row : w.row + 32, w.col : w.col + 32])


def test_native_labels_map_tif_1_2_and_png_0_255_to_0_1(tmp_path: Path) -> None:
    ds = build(request("test", NATIVE))
    city = ds.scenes[0].name
    cm = TRAIN_LABELS + f"/{city}/cm"
    with rasterio.open(NATIVE / cm / f"{city}-cm.tif") as src:
        coded = src.read(1)
    assert set(np.unique(coded).tolist()) == {1, 2}
    mask = whole_mask(ds)
    np.testing.assert_array_equal(mask, coded.astype(np.int64) - 1)
    assert set(np.unique(mask).tolist()) == {0, 1}
    # the same copy with only cm.png (0 / 255), then a lossy RGB cm.png: the same 0/1 map
    root = tmp_path / "oscd"
    shutil.copytree(NATIVE, root)
    for tif in root.glob(f"{TRAIN_LABELS}/*/cm/*-cm.tif"):
        tif.unlink()
    np.testing.assert_array_equal(whole_mask(build(request("test", root))), mask)
    noisy = np.where(mask[..., None] > 0, 240, 12).astype(np.uint8).repeat(3, axis=2)
    noisy[::5, ::7] += 9  # JPEG-like noise around 0 and 255
    Image.fromarray(noisy, mode="RGB").save(root / cm / "cm.png")
    np.testing.assert_array_equal(whole_mask(build(request("test", root))), mask)


def test_without_test_labels_train_cities_are_held_out_for_test(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import eosfm_cli.data.oscd as oscd

    monkeypatch.setattr(oscd, "_WARNED", set())
    names = {s: {sc.name for sc in build(request(s, NATIVE)).scenes} for s in SPLITS}
    assert all(len(names[s]) == 1 for s in SPLITS)  # 3 cities: 20 % test, 15 % val, >= 1 each
    assert names["test"] | names["val"] | names["train"] == NATIVE_CITIES
    # the same draw on every build: test cities never train nor validate
    assert {sc.name for sc in build(request("test", NATIVE)).scenes} == names["test"]
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "warning:" in line]
    assert len(lines) == 1, err
    text = " ".join(err.split())
    assert "no test labels" in text and next(iter(names["test"])) in text
    two = build(request("test", NATIVE, options={"test_fraction": 0.5})).scenes
    assert len(two) == 2 and {sc.name for sc in two} <= NATIVE_CITIES


def test_empty_test_labels_folder_holds_out_train_cities(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(request("test"))
    assert "warning" not in capsys.readouterr().err  # the release's own test labels: no warning
    root = tmp_path / "oscd"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("generate.py", "native"))
    shutil.rmtree(root / "Onera Satellite Change Detection dataset - Test Labels" / "brasilia")
    names = {s: {sc.name for sc in build(request(s, root)).scenes} for s in SPLITS}
    assert names["test"] | names["val"] | names["train"] == {"abudhabi", "beihai", "bercy"}
    assert len(names["test"]) == 1 and not names["test"] & (names["val"] | names["train"])
    assert "no test labels" in " ".join(capsys.readouterr().err.split())


def build_all(root: Path) -> None:
    for split in SPLITS:
        build(request(split, root))


def test_native_layout_errors(tmp_path: Path) -> None:
    def copy(name: str) -> Path:
        root = tmp_path / name
        shutil.copytree(NATIVE, root)
        return root

    city = copy("band") / IMAGES / "paris"
    next((city / "imgs_2").glob("*_B09.tif")).unlink()
    with pytest.raises(DataError, match="B09") as err:
        build_all(city.parents[1])
    assert str(city / "imgs_2") in err.value.one_line()
    city = copy("folder") / IMAGES / "paris"
    shutil.rmtree(city / "imgs_2")
    with pytest.raises(DataError, match="neither imgs_2_rect nor imgs_2") as err:
        build_all(city.parents[1])
    root = copy("label")
    label = root / TRAIN_LABELS / "nantes" / "cm"
    for path in label.iterdir():
        path.unlink()
    with pytest.raises(DataError, match="no change map") as err:
        build_all(root)
    assert str(label) in err.value.one_line()
    root = copy("grid")
    small = root / TRAIN_LABELS / "nantes" / "cm" / "nantes-cm.tif"
    with rasterio.open(
        small, "w", driver="GTiff", width=24, height=30, count=1, dtype="uint8"
    ) as dst:
        dst.write(np.ones((1, 30, 24), np.uint8))  # at the 20 m size: off the 10 m grid
    with pytest.raises(DataError, match="10 m grid") as err:
        build_all(root)
    assert str(small) in err.value.one_line()
    root = copy("codes")
    bad = root / TRAIN_LABELS / "nantes" / "cm" / "nantes-cm.tif"
    with rasterio.open(bad, "r+") as dst:
        dst.write(np.full((1, *GRID), 3, np.uint8))
    with pytest.raises(DataError, match="values") as err:
        build_all(root)
    assert str(bad) in err.value.one_line()


# --- the real copy in ../shared/data/oscd_train -----------------------------------------------

OSCD_TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "oscd_train"
#: The three smallest labelled cities (340-410 px a side), for the training test.
SMALL_CITIES = ("bercy", "paris", "rennes")


@pytest.fixture
def oscd_train() -> Path:
    if not OSCD_TRAIN.is_dir():
        pytest.skip(f"real OSCD train data not found at {OSCD_TRAIN} (../shared is absent)")
    return OSCD_TRAIN


@pytest.mark.shared
def test_real_oscd_train_loads_through_the_oscd_experiment(
    oscd_train: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import eosfm_cli.data.oscd as oscd
    from eosfm_cli.context import resolve
    from eosfm_cli.data.splits import build_splits

    monkeypatch.setattr(oscd, "_WARNED", set())
    repo = Path(__file__).resolve().parents[1]
    ctx = resolve(repo / "profiles" / "default.yaml", dataset="oscd", root=oscd_train)
    spec, splits, _ = build_splits(ctx.profile, ctx.source)
    assert spec.name == "oscd"
    names = {s: [sc.name for sc in ds.scenes] for s, ds in splits.items()}
    assert sorted(n for s in SPLITS for n in names[s]) == sorted(
        (oscd_train / IMAGES / "train.txt").read_text().strip().split(",")
    )
    assert len(names["test"]) == 3 and len(names["val"]) == 2  # 20 % and 15 % of 14
    assert sum("warning:" in line for line in capsys.readouterr().err.splitlines()) == 1
    for ds in splits.values():  # every city on its older date's B02 grid
        for sc in ds.scenes:
            (b02,) = (oscd_train / IMAGES / sc.name / "imgs_1").glob("*_B02.tif")
            with rasterio.open(b02) as src:
                assert (sc.height, sc.width) == (src.height, src.width), sc.name
    # saclay_e: its date-2 bands are a few pixels smaller than date 1's, B02 included
    ds = next(d for d in splits.values() if "saclay_e" in {sc.name for sc in d.scenes})
    index = next(i for i, (k, _) in enumerate(ds.windows) if ds.scenes[k].name == "saclay_e")
    scene, w = ds.scenes[ds.windows[index][0]], ds.windows[index][1]
    sample, grid = ds[index], (scene.height, scene.width)
    for key in ("image", "image2"):
        assert sample[key].shape == (13, w.height, w.width) and sample[key].dtype == torch.float32
    city = oscd_train / IMAGES / "saclay_e"
    for k in (0, 1, 4, 12):  # B01 (60 m), B02 (10 m), B05 and B12 (20 m)
        (path,) = (city / "imgs_2").glob(f"*_{FILE_BANDS[k]}.tif")
        with rasterio.open(path) as src:
            assert (src.height, src.width) != grid
            full = src.read(1, out_shape=grid, resampling=Resampling.bilinear)
        np.testing.assert_allclose(sample["image2"][k].numpy(), full[w.slices], atol=0.5)
    labels = oscd_train / TRAIN_LABELS / "saclay_e" / "cm"
    with rasterio.open(labels / "saclay_e-cm.tif") as src:
        coded = src.read(1)
    np.testing.assert_array_equal(sample["mask"].numpy(), coded[w.slices].astype(np.int64) - 1)
    png = np.asarray(Image.open(labels / "cm.png").convert("L"))  # 0 / 255: the same map
    np.testing.assert_array_equal(sample["mask"].numpy(), png[w.slices] > 127)
    seen = {int(v) for i in range(len(ds)) for v in ds[i]["mask"].unique()}
    assert seen == {0, 1}


@pytest.mark.shared
def test_real_oscd_train_trains_one_short_epoch(oscd_train: Path, tmp_path: Path) -> None:
    # Three small cities (links, nothing copied): held-out test, val and train one each, so
    # tiling the val and test cities stays short.
    root = tmp_path / "oscd_small"
    for folder in (IMAGES, TRAIN_LABELS):
        (root / folder).mkdir(parents=True)
        for city in SMALL_CITIES:
            (root / folder / city).symlink_to(oscd_train / folder / city)
    sets = ["dataset.patch_size=64", "dataset.options.crops_per_image=4"]
    _, res = run_training(tmp_path, "oscd", root, sets=sets)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "oscd", "change_detection")
    assert tuple(spec["bands"]) == FILE_BANDS and spec["in_chans"] == 13
