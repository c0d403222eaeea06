"""DIOR loader and the detection task on the tiny fixture in tests/data/dior (release layout)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest
import torch
from PIL import Image
from training_helpers import check_specialist, run_training

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.detection import collate_detection
from eosfm_cli.data.dior import ANNOTATION_DIR, build, class_key
from eosfm_cli.data.loaders import make_loader
from eosfm_cli.data.registry import DIOR_CLASSES as CLASSES
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import BandError, DataError
from eosfm_cli.models.checkpoints import load_checkpoint_file, specialist_from_checkpoint
from eosfm_cli.tasks.augment import flip_detection

ROOT = Path(__file__).resolve().parent / "data" / "dior"
SPLITS = {"train": ["00001", "00002", "00003"], "val": ["00004"], "test": ["00005", "00006"]}


def request(split: str = "train", root: Path = ROOT, **kw: Any) -> DatasetRequest:
    spec = EXPERIMENTS["dior"]
    fields: dict[str, Any] = {"bands": spec.bands, "classes": spec.classes, **kw}
    return DatasetRequest("dior", root, split, **fields)  # type: ignore[arg-type]


def voc(path: Path) -> tuple[list[list[float]], list[str]]:
    root = ElementTree.parse(path).getroot()
    boxes, names = [], []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        assert box is not None
        boxes.append([float(box.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax")])
        names.append(obj.findtext("name") or "")
    return boxes, names


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_samples_match_the_jpeg_and_the_xml(split: str) -> None:
    ds = build(request(split))
    assert len(ds) == len(SPLITS[split])
    keys = [class_key(c) for c in CLASSES]
    for i, stem in enumerate(SPLITS[split]):
        sample = ds[i]
        assert Path(ds.source(i)).stem == stem  # type: ignore[attr-defined]
        assert set(sample) == {"image", "boxes", "labels"}
        image, boxes, labels = sample["image"], sample["boxes"], sample["labels"]
        assert image.dtype == torch.float32 and image.shape[0] == 3
        folder = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
        pixels = np.array(Image.open(ROOT / folder / f"{stem}.jpg").convert("RGB"))
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), pixels.astype(np.float32))
        assert 150 < float(image.max()) <= 255  # raw 8-bit DNs, not normalised
        want_boxes, names = voc(ROOT / ANNOTATION_DIR / f"{stem}.xml")
        assert boxes.dtype == torch.float32 and boxes.shape == (len(names), 4)
        assert labels.dtype == torch.int64 and labels.shape == (len(names),)
        assert boxes.tolist() == want_boxes
        assert labels.tolist() == [keys.index(class_key(n)) for n in names]


def test_release_and_torchgeo_spellings_map_to_the_same_class() -> None:
    toll = CLASSES.index("Expressway-toll-station")
    service = CLASSES.index("Expressway-Service-area")
    # 00003.xml says "expresswaytollstation" (torchgeo), 00006.xml "Expressway-Service-area"
    assert toll in build(request("train"))[2]["labels"].tolist()
    assert service in build(request("test"))[1]["labels"].tolist()


def test_bands_are_selected_by_name() -> None:
    rgb = build(request("val"))[0]["image"]
    bgr = build(request("val", bands=("B", "G", "R")))[0]["image"]
    assert torch.equal(bgr, rgb.flip(0))
    with pytest.raises(BandError, match="B08"):
        build(request("val", bands=("B08", "R", "G")))


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        build(request(root=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="Horizontal Bounding Boxes"):
        build(request(root=tmp_path / "empty"))


def copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "dior"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns("*.py"))
    return root


def test_missing_split_file_image_and_annotation_are_named(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    (root / ANNOTATION_DIR / "00004.xml").unlink()
    with pytest.raises(DataError, match=r"00004\.xml"):
        build(request("val", root=root))
    (root / "JPEGImages-test" / "00005.jpg").unlink()
    with pytest.raises(DataError, match=r"00005\.jpg"):
        build(request("test", root=root))
    (root / "ImageSets" / "Main" / "train.txt").unlink()
    with pytest.raises(DataError, match=r"train\.txt"):
        build(request("train", root=root))


def test_bad_annotation_and_bad_image_name_the_file(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    xml = root / ANNOTATION_DIR / "00004.xml"
    xml.write_text(xml.read_text().replace("<name>vehicle</name>", "<name>spaceship</name>"))
    with pytest.raises(DataError, match=r"00004\.xml.*spaceship"):
        build(request("val", root=root))[0]
    (root / ANNOTATION_DIR / "00005.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"00005\.xml"):
        build(request("test", root=root))[0]
    (root / "JPEGImages-test" / "00006.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"00006\.jpg"):
        build(request("test", root=root))[1]


def test_doubled_image_folder_and_root_level_main(tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    inner = root / "JPEGImages-trainval" / "JPEGImages-trainval"
    inner.mkdir()
    for jpg in (root / "JPEGImages-trainval").glob("*.jpg"):
        jpg.rename(inner / jpg.name)
    (root / "ImageSets").rename(root / "Sets")
    (root / "Sets" / "Main").rename(root / "Main")
    assert len(build(request("train", root=root))) == 3


def test_torchgeo_layout(tmp_path: Path) -> None:
    """torchgeo's mirror: its val becomes our test; our train/val split its train."""
    root = tmp_path / "tg"
    for sub in ("Images/trainval", "Images/test", "Annotations/trainval"):
        (root / sub).mkdir(parents=True)
    rows = []
    for split, stems in SPLITS.items():
        tg_split = {"train": "train", "val": "train", "test": "val"}[split]
        for stem in stems:
            folder = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
            shutil.copy(ROOT / folder / f"{stem}.jpg", root / "Images" / "trainval")
            shutil.copy(ROOT / ANNOTATION_DIR / f"{stem}.xml", root / "Annotations" / "trainval")
            rows.append(
                [f"Images/trainval/{stem}.jpg", f"Annotations/trainval/{stem}.xml", tg_split]
            )
    shutil.copy(ROOT / "JPEGImages-test" / "00005.jpg", root / "Images" / "test" / "09999.jpg")
    rows.append(["Images/test/09999.jpg", "", "test"])  # unlabelled, as in torchgeo
    with (root / "sample_df.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["image_path", "label_path", "split"], *rows])
    parts = {s: build(request(s, root=root)) for s in SPLITS}
    stems = {s: sorted(Path(ds.source(i)).stem for i in range(len(ds))) for s, ds in parts.items()}  # type: ignore[attr-defined]
    assert stems["test"] == SPLITS["test"]
    assert len(stems["val"]) == 1 and len(stems["train"]) == 3
    assert sorted(stems["train"] + stems["val"]) == SPLITS["train"] + SPLITS["val"]
    assert parts["test"][0]["boxes"].shape[0] == 2


def test_collate_pads_mixed_sizes_and_keeps_box_lists() -> None:
    ds = build(request("train"))
    batch = next(iter(make_loader(ds, 3, 0, False, 0)))
    assert batch["image"].shape == (3, 3, 96, 96)
    assert batch["size"].tolist() == [[96, 96], [64, 64], [96, 96]]
    assert [len(b) for b in batch["boxes"]] == [2, 3, 2]
    assert [len(b) for b in batch["labels"]] == [2, 3, 2]
    assert float(batch["image"][1, :, 64:, :].abs().sum()) == 0.0
    again = collate_detection([ds[1]])
    assert again["image"].shape == (1, 3, 64, 64)


@pytest.mark.parametrize("flags", [(h, v, t) for h in (0, 1) for v in (0, 1) for t in (0, 1)])
def test_flips_move_boxes_with_the_pixels(flags: tuple[int, int, int]) -> None:
    image = torch.zeros(2, 40, 60)
    image[:, 5:15, 30:50] = 1.0  # rows 5..14, columns 30..49
    boxes = torch.tensor([[30.0, 5.0, 50.0, 15.0]])
    out, moved = flip_detection(image, boxes, *map(bool, flags))
    x0, y0, x1, y1 = (int(v) for v in moved[0])
    assert float(out[:, y0:y1, x0:x1].min()) == 1.0
    assert float(out.sum()) == float(image.sum())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    tmp = tmp_path_factory.mktemp("dior_train")
    _, res = run_training(tmp, "dior", ROOT)
    return tmp / "ws" / "specialists" / "dior", res


def test_one_epoch_of_training(trained: tuple[Path, Any]) -> None:
    folder, res = trained
    assert res is not None and res.epochs == 1
    spec = check_specialist(folder, "detection")
    assert spec["task"] == "detection" and spec["bands"] == ["R", "G", "B"]
    assert spec["classes"] == list(CLASSES)
    assert json.loads((folder / "specialist.json").read_text())["monitor"] == "val/map"


def test_checkpoint_encoder_loads_into_plain_timm_strict(trained: tuple[Path, Any]) -> None:
    import timm

    folder, _ = trained
    ckpt = load_checkpoint_file(folder / "best.ckpt")
    state = ckpt["state_dict"]
    prefix = "encoder."
    enc = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    spec = json.loads((folder / "specialist.json").read_text())
    model = timm.create_model(
        spec["backbone"], features_only=True, in_chans=spec["in_chans"], pretrained=False
    )
    model.load_state_dict(enc, strict=True)
    # the encoder is stored once: the detector reaches it without owning a copy
    assert not any(".encoder." in k or k.startswith("detector.backbone.pyramid") for k in state)
    assert any(k.startswith("detector.backbone.fpn.") for k in state)
    assert "normalizer.mean" in state
    exported, weights = specialist_from_checkpoint(folder / "best.ckpt")
    assert exported.task == "detection" and exported.bands == ["R", "G", "B"]
    assert set(weights) == set(enc)
