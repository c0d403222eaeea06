"""The ``folder`` experiment: users' own GeoTIFFs, on the fixtures in tests/data/folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from training_helpers import DEFAULT, check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.folder import build
from eosfm_cli.errors import BandError, DataError, ProfileError

DATA = Path(__file__).resolve().parent / "data" / "folder"
REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
S2_FILE = ["B02", "B03", "B04", "B08"]
CLASSES3 = ["water", "forest", "urban"]

#: One profile ``dataset:`` section per mode, as a user would write it.
SECTIONS: dict[str, dict[str, Any]] = {
    "segmentation": {
        "task": "segmentation",
        "bands": S2_FILE,
        "classes": ["low", "mid", "high"],
        "patch_size": 32,
    },
    "classification": {"task": "classification", "bands": ["RGB"], "classes": CLASSES3},
    "multilabel": {"task": "multilabel", "bands": ["RGB"], "classes": CLASSES3, "loss": "bce"},
    "change_detection": {
        "task": "change_detection",
        "bands": ["B04", "B03", "B02"],
        "classes": ["no change", "change"],
        "options": {"file_bands": S2_FILE},
    },
}


def request(mode: str, split: str = "train", root: Path | None = None, **kw: Any) -> DatasetRequest:
    from eosfm_cli.bands import expand_bands

    sec = SECTIONS[mode]
    options = {"task": sec["task"], **sec.get("options", {}), **kw.pop("options", {})}
    fields: dict[str, Any] = {
        "bands": tuple(expand_bands(sec["bands"])),
        "classes": tuple(sec["classes"]),
        "patch_size": sec.get("patch_size"),
        "options": options,
        **kw,
    }
    return DatasetRequest("folder", root or DATA / mode, split, **fields)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def copy_mode(tmp_path: Path, mode: str) -> Path:
    root = tmp_path / mode
    shutil.copytree(DATA / mode, root)
    return root


def write_tif(path: Path, data: np.ndarray) -> None:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
    ) as dst:
        dst.write(data)


# Building -----------------------------------------------------------------------------------
def test_segmentation_windows_cover_each_image_and_split_is_seeded() -> None:
    parts = {s: build(request("segmentation", s)) for s in ("train", "val", "test")}
    files = {
        s: {ds.items[i].files[0].name for i in range(len(ds.items))} for s, ds in parts.items()
    }  # type: ignore[attr-defined]
    assert [len(files[s]) for s in ("train", "val", "test")] == [4, 1, 1]
    assert not (files["train"] & files["val"]) and not (files["train"] & files["test"])
    assert files == {
        s: {ds.items[i].files[0].name for i in range(len(ds.items))}  # type: ignore[attr-defined]
        for s, ds in ((s, build(request("segmentation", s))) for s in files)
    }
    ds = parts["val"]
    assert len(ds) == 4  # 40 px in 32 px windows: offsets 0 and 8 in each direction
    item = ds.items[0]  # type: ignore[attr-defined]
    raw, mask = read(item.files[0]), read(item.files[1])[0]
    sample = ds[3]  # rows 8..39, columns 8..39
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (4, 32, 32)
    np.testing.assert_array_equal(sample["image"].numpy(), raw[:, 8:, 8:].astype(np.float32))
    assert sample["mask"].dtype == torch.int64
    np.testing.assert_array_equal(sample["mask"].numpy(), mask[8:, 8:])
    whole = build(request("segmentation", "val", patch_size=None))
    assert len(whole) == 1 and whole[0]["image"].shape == (4, 40, 40)


def test_classification_split_column_and_class_names() -> None:
    sizes = {s: len(build(request("classification", s))) for s in ("train", "val", "test")}
    assert sizes == {"train": 4, "val": 2, "test": 2}
    ds = build(request("classification", "val"))
    sample = ds[0]
    assert sample["label"].dtype == torch.int64 and int(sample["label"]) == 1  # forest
    raw = read(DATA / "classification" / "scenes" / "scene_4.tif")
    np.testing.assert_array_equal(sample["image"].numpy(), raw.astype(np.float32))


def test_multilabel_split_folders_and_semicolon_labels() -> None:
    ds = build(request("multilabel", "train"))
    hots = [ds[i]["label"].tolist() for i in range(len(ds))]
    assert hots == [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    assert ds[0]["label"].dtype == torch.float32
    assert len(build(request("multilabel", "test"))) == 2


def test_multilabel_multi_hot_columns(tmp_path: Path) -> None:
    root = copy_mode(tmp_path, "multilabel")
    (root / "val" / "labels.csv").write_text("path,water,forest,urban\nimg_0.tif,1,0,1\n")
    assert build(request("multilabel", "val", root=root))[0]["label"].tolist() == [1.0, 0.0, 1.0]


def test_change_detection_selects_file_bands_by_name() -> None:
    sizes = {s: len(build(request("change_detection", s))) for s in ("train", "val", "test")}
    assert sizes == {"train": 2, "val": 1, "test": 1}
    sample = build(request("change_detection", "val"))[0]
    root = DATA / "change_detection"
    for key, folder in (("image", "images1"), ("image2", "images2")):
        raw = read(root / folder / "pair_2.tif")
        np.testing.assert_array_equal(sample[key].numpy(), raw[[2, 1, 0]].astype(np.float32))
    np.testing.assert_array_equal(sample["mask"].numpy(), read(root / "masks" / "pair_2.tif")[0])
    with pytest.raises(BandError, match="B05"):
        build(request("change_detection", bands=("B05",)))


def test_profile_mistakes_are_profile_errors() -> None:
    with pytest.raises(ProfileError, match="file_bandz"):
        build(request("segmentation", options={"file_bandz": S2_FILE}))
    with pytest.raises(ProfileError, match="regression"):
        build(request("segmentation", options={"task": "regression"}))
    with pytest.raises(ProfileError, match=r"dataset\.classes"):
        build(request("segmentation", classes=()))


# One error line naming the file ---------------------------------------------------------------
def test_band_count_mismatch_names_the_file(tmp_path: Path) -> None:
    root = copy_mode(tmp_path, "segmentation")
    bad = root / "images" / "tile_2.tif"
    write_tif(bad, np.ones((3, 40, 40), dtype=np.uint16))
    with pytest.raises(DataError) as err:
        for split in ("train", "val", "test"):
            build(request("segmentation", split, root=root))
    msg = err.value.one_line()
    assert str(bad) in msg and "3 band(s)" in msg and "4" in msg and "\n" not in msg


def test_mask_size_mismatch_names_the_mask(tmp_path: Path) -> None:
    root = copy_mode(tmp_path, "change_detection")
    bad = root / "masks" / "pair_2.tif"
    write_tif(bad, np.zeros((1, 30, 32), dtype=np.uint8))
    with pytest.raises(DataError) as err:
        build(request("change_detection", "val", root=root))
    msg = err.value.one_line()
    assert str(bad) in msg and "30x32" in msg and "32x32" in msg


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    root = copy_mode(tmp_path, "classification")
    bad = root / "scenes" / "scene_5.tif"
    bad.write_bytes(b"this is not a GeoTIFF")
    with pytest.raises(DataError) as err:
        build(request("classification", "val", root=root))
    assert str(bad) in err.value.one_line() and "cannot read" in err.value.one_line()


def test_missing_files_and_bad_rows_are_named(tmp_path: Path) -> None:
    root = copy_mode(tmp_path, "segmentation")
    (root / "masks" / "tile_1.tif").unlink()
    with pytest.raises(DataError, match=r"tile_1\.tif"):
        build(request("segmentation", root=root))
    with pytest.raises(DataError, match="nowhere"):
        build(request("segmentation", root=tmp_path / "nowhere"))
    root = copy_mode(tmp_path, "classification")
    table = root / "labels.csv"
    table.write_text(table.read_text().replace("urban,val", "desert,val"))
    with pytest.raises(DataError, match=r"labels\.csv:7.*desert"):
        build(request("classification", "val", root=root))


def test_images_of_several_sizes_need_a_patch_size(tmp_path: Path) -> None:
    root = copy_mode(tmp_path, "classification")
    bad = root / "scenes" / "scene_5.tif"
    write_tif(bad, np.ones((3, 48, 48), dtype=np.uint8))
    with pytest.raises(DataError, match="patch_size"):
        build(request("classification", "val", root=root))
    ds = build(request("classification", "val", root=root, patch_size=32))
    assert ds[1]["image"].shape == (3, 32, 32)  # the central window


# Training ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(SECTIONS))
def test_one_epoch_of_training(tmp_path: Path, mode: str) -> None:
    section = {"name": "folder", **SECTIONS[mode]}
    _, res = run_training(tmp_path, "folder", DATA / mode, [f"dataset={json.dumps(section)}"])
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / "folder", section["task"])
    assert spec["task"] == section["task"] and spec["classes"] == section["classes"]
    assert spec["in_chans"] == (4 if mode == "segmentation" else 3)


def _tiny_chips(root: Path, size: int, n: int = 8) -> None:
    """A segmentation folder of ``n`` GeoTIFF chips of ``size`` x ``size`` px."""
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    for i in range(n):
        labels = rng.integers(0, 3, size=(size, size)).astype(np.uint8)
        image = (
            1000 + 300 * labels[None].astype(np.int64) + rng.integers(0, 50, (4, size, size))
        ).astype(np.uint16)
        for folder, data in (("images", image), ("masks", labels[None])):
            (root / folder).mkdir(parents=True, exist_ok=True)
            with rasterio.open(
                root / folder / f"chip_{i}.tif",
                "w",
                driver="GTiff",
                width=size,
                height=size,
                count=data.shape[0],
                dtype=data.dtype.name,
                crs="EPSG:32631",
                transform=from_origin(400000 + 200 * i, 4800000, 10, 10),
            ) as dst:
                dst.write(data)


@pytest.mark.parametrize("patch_size", [None, 16])
def test_chips_smaller_than_the_networks_reach_train_padded(
    tmp_path: Path, patch_size: int | None
) -> None:
    """16 x 16 px chips (the encoder reduces by 32) are padded, not a crash in a conv."""
    root = tmp_path / "chips"
    _tiny_chips(root, 16)
    section = {"name": "folder", **SECTIONS["segmentation"], "patch_size": patch_size}
    sets = [f"dataset={json.dumps(section)}", "trainer.batch_size=4"]
    _, res = run_training(tmp_path, "folder", root, sets)
    assert res is not None and res.epochs == 1
    metrics = json.loads((tmp_path / "ws" / "specialists" / "folder" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["miou"] <= 1.0


def write_profile(tmp_path: Path, root: Path) -> Path:
    section = {"name": "folder", **SECTIONS["segmentation"]}
    profile = tmp_path / "mine.yaml"
    profile.write_text(
        f"include: {DEFAULT}\n"
        f"workspace: {tmp_path / 'ws'}\n"
        f"data:\n  root: {root}\n"
        f"dataset: {json.dumps(section)}\n"
        "trainer: {max_epochs: 1, batch_size: 4}\n"
        "emissions: {enabled: false}\n"
    )
    return profile


def test_cli_reports_a_bad_file_on_one_line_with_exit_2(tmp_path: Path) -> None:
    root = copy_mode(tmp_path, "segmentation")
    bad = root / "masks" / "tile_4.tif"
    write_tif(bad, np.zeros((1, 40, 36), dtype=np.uint8))
    profile = write_profile(tmp_path, root)
    out = subprocess.run(
        [PYTHON, "-m", "eosfm_cli", "train-specialist", "--profile", str(profile)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"COLUMNS": "400", "PATH": "/usr/bin"},
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:") and str(bad) in lines[0] and "40x36" in lines[0]
    assert not (tmp_path / "ws" / "specialists" / "folder" / "specialist.json").exists()


def test_datasets_list_shows_folder_and_synthetic() -> None:
    from typer.testing import CliRunner

    from eosfm_cli.cli import app

    res = CliRunner().invoke(app, ["datasets", "list"], env={"COLUMNS": "250"})
    assert res.exit_code == 0
    row = next(line for line in res.output.splitlines() if " folder " in line)
    assert "any" in row and "from profile" in row
    assert "synthetic_s2" in res.output
