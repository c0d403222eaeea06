"""Tests of the synthetic data generator and its loader."""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.registry import EXPERIMENTS, SYNTHETIC_CLASSES
from eosfm_cli.data.synthetic import generate, large_scene_path
from eosfm_cli.data.synthetic_loader import SyntheticDataset, SyntheticScenes, build
from eosfm_cli.errors import BandError, DataError

COMMITTED = Path(__file__).parent / "data" / "synthetic"
S2 = BAND_SETS["S2_ALL"]
FILES = {
    "s2.tif": (13, "uint16", S2),
    "s1.tif": (2, "float32", ("VV", "VH")),
    "rgb.tif": (3, "uint8", ("R", "G", "B")),
    "landcover.tif": (1, "uint8", ("landcover",)),
    "s2_t2.tif": (13, "uint16", S2),
    "landcover_t2.tif": (1, "uint8", ("landcover",)),
    "change.tif": (1, "uint8", ("change",)),
}


@pytest.fixture(scope="module")
def sixty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("syn60"), n=60, size=32, seed=1)


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def rows(root: Path) -> list[dict[str, str]]:
    with open(root / "scenes.csv", newline="") as f:
        return list(csv.DictReader(f))


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def request(
    name: str, bands: tuple[str, ...] | None = None, split: str = "train"
) -> DatasetRequest:
    spec = EXPERIMENTS[name]
    return DatasetRequest(
        name=name,
        root=COMMITTED,
        split=split,  # type: ignore[arg-type]
        bands=spec.bands if bands is None else bands,
        classes=spec.classes,
    )


# --- files ----------------------------------------------------------------------------------


def test_committed_data_is_small_and_complete() -> None:
    meta = json.loads((COMMITTED / "synthetic.json").read_text())
    assert meta["format"] == "eosfm-synthetic" and meta["version"] == 1
    assert (meta["n"], meta["size"], meta["seed"]) == (12, 32, 0)
    assert meta["classes"] == list(SYNTHETIC_CLASSES)
    assert meta["sensors"]["s2"]["bands"] == list(S2)
    assert meta["sensors"]["s1"]["bands"] == ["VV", "VH"]
    assert meta["sensors"]["rgb"]["bands"] == ["R", "G", "B"]
    assert len(rows(COMMITTED)) == 12
    total = sum(p.stat().st_size for p in COMMITTED.rglob("*") if p.is_file())
    assert total < 1_000_000


def test_files_have_documented_bands_dtypes_and_georeference() -> None:
    origins = set()
    for row in rows(COMMITTED):
        folder = COMMITTED / "scenes" / row["id"]
        transforms = set()
        for name, (count, dtype, names) in FILES.items():
            with rasterio.open(folder / name) as src:
                assert src.count == count, name
                assert src.dtypes == (dtype,) * count, name
                assert src.descriptions == tuple(names), name
                assert src.crs.to_epsg() == 32631
                assert src.res == (10.0, 10.0)
                assert src.shape == (32, 32)
                transforms.add(src.transform)
        assert len(transforms) == 1  # all files of a scene share one grid
        origins.add(transforms.pop())
    assert len(origins) == 12  # scenes do not overlap


def test_labels_match_landcover(sixty: Path) -> None:
    for row in rows(sixty):
        lc = read(sixty / "scenes" / row["id"] / "landcover.tif")[0]
        counts = np.bincount(lc.ravel(), minlength=6)
        labels = [int(c) for c in row["labels"].split(";")]
        assert int(row["label"]) == int(np.argmax(counts))
        assert int(row["label"]) in labels
        assert labels == [k for k in range(6) if counts[k] >= 0.05 * lc.size]


def test_change_mask_is_landcover_difference(sixty: Path) -> None:
    changed_scenes = 0
    for row in rows(sixty):
        folder = sixty / "scenes" / row["id"]
        lc1, lc2 = read(folder / "landcover.tif")[0], read(folder / "landcover_t2.tif")[0]
        change = read(folder / "change.tif")[0]
        assert set(np.unique(change)) <= {0, 1}
        np.testing.assert_array_equal(change, (lc1 != lc2).astype(np.uint8))
        changed_scenes += bool(change.any())
        # Changed areas really look different on the second date.
        if change.sum() > 20:
            s2, s2b = (
                read(folder / "s2.tif").astype(float),
                read(folder / "s2_t2.tif").astype(float),
            )
            diff = np.abs(s2b - s2).mean(axis=0)
            assert diff[change == 1].mean() > diff[change == 0].mean()
    assert 0 < changed_scenes < 60


def test_every_class_appears_and_splits_are_stratified(sixty: Path) -> None:
    table = rows(sixty)
    splits = [r["split"] for r in table]
    assert {s: splits.count(s) for s in ("train", "val", "test")} == {
        "train": 36,
        "val": 12,
        "test": 12,
    }
    assert {int(r["label"]) for r in table if r["split"] == "train"} == set(range(6))
    pixels = set()
    for r in table:
        pixels |= set(np.unique(read(sixty / "scenes" / r["id"] / "landcover.tif")).tolist())
    assert pixels == set(range(6))


def test_same_seed_reproduces_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = digest(generate(tmp_path / "a", n=6, size=16, seed=7))
    b = digest(generate(tmp_path / "b", n=6, size=16, seed=7))
    c = digest(generate(tmp_path / "c", n=6, size=16, seed=8))
    assert len(a) == 2 + 6 * len(FILES)
    assert a == b
    assert a.keys() == c.keys()
    differing = [k for k in a if a[k] != c[k]]
    assert "scenes/s0000/s2.tif" in differing and "scenes.csv" in differing


def test_spectral_and_backscatter_sanity(sixty: Path) -> None:
    nir, vv, cls = [], [], []
    for r in rows(sixty):
        folder = sixty / "scenes" / r["id"]
        nir.append(read(folder / "s2.tif")[S2.index("B08")].ravel())
        vv.append(read(folder / "s1.tif")[0].ravel())
        cls.append(read(folder / "landcover.tif")[0].ravel())
    b08, vv_db, lc = np.concatenate(nir), np.concatenate(vv), np.concatenate(cls)
    water, forest, urban = (SYNTHETIC_CLASSES.index(c) for c in ("water", "forest", "urban"))
    assert b08[lc == water].mean() < 0.3 * b08[lc == forest].mean()
    assert vv_db[lc == urban].mean() > vv_db[lc == water].mean() + 10
    assert -26 < vv_db[lc == water].mean() < -19


def test_large_scene_and_progress(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    root = generate(
        tmp_path, n=2, size=16, seed=0, large=300, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(i, 4) for i in range(1, 5)]  # 2 scenes + 2 blocks of 256 rows
    with rasterio.open(large_scene_path(root)) as src:
        assert (src.count, src.shape, src.crs.to_epsg()) == (13, (300, 300), 32631)
    for sensor, count in (("s1", 2), ("rgb", 3), ("landcover", 1)):
        with rasterio.open(large_scene_path(root, sensor)) as src:
            assert src.count == count
    assert len(np.unique(read(large_scene_path(root, "landcover")))) == 6
    with pytest.raises(DataError, match="large"):
        large_scene_path(COMMITTED)
    with pytest.raises(DataError, match="unknown"):
        large_scene_path(root, "s3")


def test_module_import_does_not_load_torch() -> None:
    code = "import sys, eosfm_cli.data.synthetic; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_generate_rejects_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        generate(tmp_path, n=0)


# --- loader ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "channels", "target", "shape", "dtype"),
    [
        ("synthetic_s2", 13, "label", (), torch.int64),
        ("synthetic_rgb", 3, "label", (), torch.int64),
        ("synthetic_s1", 2, "label", (), torch.int64),
        ("synthetic_seg", 13, "mask", (32, 32), torch.int64),
        ("synthetic_ml", 13, "label", (6,), torch.float32),
        ("synthetic_cd", 13, "mask", (32, 32), torch.int64),
    ],
)
def test_build_each_experiment(
    name: str, channels: int, target: str, shape: tuple[int, ...], dtype: torch.dtype
) -> None:
    ds = build(request(name))
    assert isinstance(ds, torch.utils.data.Dataset) and isinstance(ds, SyntheticDataset)
    assert len(ds) == 8
    sample = ds[0]
    assert sample["image"].dtype == torch.float32
    assert sample["image"].shape == (channels, 32, 32)
    assert sample[target].dtype == dtype and tuple(sample[target].shape) == shape
    expected = {"image", target} | ({"image2"} if name == "synthetic_cd" else set())
    assert set(sample) == expected
    if name == "synthetic_cd":
        assert sample["image2"].shape == sample["image"].shape
        assert set(sample["mask"].unique().tolist()) <= {0, 1}
    if name == "synthetic_ml":
        assert set(sample["label"].unique().tolist()) <= {0.0, 1.0}


def test_splits_partition_the_scenes() -> None:
    sizes = {s: len(build(request("synthetic_s2", split=s))) for s in ("train", "val", "test")}
    assert sizes == {"train": 8, "val": 2, "test": 2}


def test_labels_and_masks_match_files() -> None:
    table = [r for r in rows(COMMITTED) if r["split"] == "val"]
    folder = COMMITTED / "scenes" / table[1]["id"]
    assert int(build(request("synthetic_s2", split="val"))[1]["label"]) == int(table[1]["label"])
    hot = build(request("synthetic_ml", split="val"))[1]["label"]
    assert torch.nonzero(hot).flatten().tolist() == [int(c) for c in table[1]["labels"].split(";")]
    mask = build(request("synthetic_seg", split="val"))[1]["mask"]
    np.testing.assert_array_equal(mask.numpy(), read(folder / "landcover.tif")[0])
    cd = build(request("synthetic_cd", split="val"))[1]
    np.testing.assert_array_equal(cd["mask"].numpy(), read(folder / "change.tif")[0])
    np.testing.assert_array_equal(cd["image2"].numpy(), read(folder / "s2_t2.tif"))


def test_mixed_sensor_bands_keep_order_and_values() -> None:
    bands = ("VV", "B04", "R", "B8A", "VH", "B04")
    sample = build(request("synthetic_s2", bands))[0]
    folder = (
        COMMITTED
        / "scenes"
        / rows(COMMITTED)[[r["split"] for r in rows(COMMITTED)].index("train")]["id"]
    )
    s2, s1, rgb = read(folder / "s2.tif"), read(folder / "s1.tif"), read(folder / "rgb.tif")
    expected = np.stack([s1[0], s2[S2.index("B04")], rgb[0], s2[12], s1[1], s2[3]])
    np.testing.assert_array_equal(sample["image"].numpy(), expected.astype(np.float32))
    four = build(request("synthetic_s2", ("B02", "B03", "B04", "B08")))[0]["image"]
    np.testing.assert_array_equal(four.numpy(), s2[[1, 2, 3, 7]].astype(np.float32))


def test_numpy_reader_needs_no_tensors() -> None:
    scenes = SyntheticScenes(COMMITTED, "test", ("B08", "VV"), "segmentation")
    sample = scenes.sample(0)
    assert sample["image"].dtype == np.float32 and sample["image"].shape == (2, 32, 32)
    assert sample["mask"].dtype == np.int64


def test_missing_root_raises_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere") as info:
        build(DatasetRequest("synthetic_s2", missing, "train", S2))
    assert "synthetic.json" in str(info.value)
    with pytest.raises(DataError, match=r"synthetic\.json"):
        build(DatasetRequest("synthetic_s2", tmp_path, "train", S2))


def test_bad_bands_raise_band_error() -> None:
    with pytest.raises(BandError, match="B99"):
        build(request("synthetic_s2", ("B04", "B99")))
    with pytest.raises(BandError, match="change detection"):
        build(request("synthetic_cd", ("B04", "VV")))


def test_unknown_experiment_needs_a_task() -> None:
    with pytest.raises(DataError, match="not a synthetic experiment"):
        build(DatasetRequest("eurosat_s2", COMMITTED, "train", S2))
    req = DatasetRequest("mine", COMMITTED, "train", ("B04",), options={"task": "segmentation"})
    assert set(build(req)[0]) == {"image", "mask"}


def test_dataloader_batches() -> None:
    loader = torch.utils.data.DataLoader(build(request("synthetic_cd")), batch_size=4)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 13, 32, 32) and batch["mask"].shape == (4, 32, 32)


def test_dataset_pickles_for_worker_processes() -> None:
    ds = build(request("synthetic_rgb"))
    clone = pickle.loads(pickle.dumps(ds))
    assert type(clone) is SyntheticDataset
    torch.testing.assert_close(clone[3]["image"], ds[3]["image"])


def test_empty_band_list_and_unknown_split_are_refused() -> None:
    with pytest.raises(BandError):
        SyntheticScenes(COMMITTED, "train", (), "classification")
    with pytest.raises(DataError, match="split"):
        SyntheticScenes(COMMITTED, "training", ("B04",), "classification")
