"""DIOR (Li et al., 2020): horizontal-box object detection in Google Earth RGB images.

DIOR holds 23,463 RGB JPEGs of 800x800 px with 192,472 boxes of 20 classes. Two layouts are
read, the release one first.

**Release layout** (the authors' archives; every split, test included, has boxes)::

    <root>/JPEGImages-trainval/<id>.jpg          train and val images
    <root>/JPEGImages-test/<id>.jpg              test images
    <root>/Annotations/Horizontal Bounding Boxes/<id>.xml   PASCAL VOC, one per image
    <root>/ImageSets/Main/{train,val,test}.txt   one image id (file stem) per line

Archives unpacked into a doubled folder (``JPEGImages-trainval/JPEGImages-trainval/``) and split
files at ``<root>/Main/`` are accepted too. An image id is looked up in every image folder, so
an id listed in the wrong split file still finds its image.

**torchgeo layout** (:class:`torchgeo.datasets.DIOR`, its Hugging Face mirror)::

    <root>/sample_df.csv                         image_path,label_path,split
    <root>/Images/{trainval,test}/*.jpg, <root>/Annotations/trainval/*.xml

That mirror's test images carry no annotations, so there the test split is torchgeo's ``val``
and train/val are a seeded 90/10 split (``request.seed``) of torchgeo's ``train``. The
torchgeo class itself is not used: it maps class names through lower-case spellings without
hyphens (``expresswayservicearea``) while the release XMLs say ``Expressway-Service-area``, and
its test split has no boxes. Class names are matched here ignoring case and punctuation, so
both spellings work.

Samples are ``{"image": float32 (3, H, W) raw 8-bit DNs, "boxes": float32 (N, 4) xyxy in
pixels, "labels": int64 (N,)}``; labels index ``request.classes`` (the registry's 20 classes,
release spelling). Boxes are clipped to the image and empty ones dropped. The dataset's
``collate_fn`` batches images of different sizes and box counts
(:func:`~eosfm_cli.data.detection.collate_detection`). Images are used whole: DIOR's are all
800x800, the registry's ``patch_size``.

Confirmed from public conversion scripts and torchgeo: the folder names above, the VOC fields
(``object/name``, ``object/bndbox/{xmin,ymin,xmax,ymax}``), the split files of bare ids and the
class spellings. Not confirmed: the id ranges of the trainval and test archives (reportedly
00001-11725 and 11726-23463; the loader does not rely on them), whether coordinates are always
integers (they are parsed as floats), and whether any XML marks objects ``difficult`` (the flag
is ignored; every box is kept).
"""

from __future__ import annotations

import csv
import random
import re
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.detection import collate_detection
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("dior")

#: Band order of the JPEGs.
FILE_BANDS: tuple[str, ...] = ("R", "G", "B")

ANNOTATION_DIR = Path("Annotations", "Horizontal Bounding Boxes")
IMAGE_DIRS: tuple[str, ...] = ("JPEGImages-trainval", "JPEGImages-test", "JPEGImages")
SPLIT_DIRS: tuple[Path, ...] = (Path("ImageSets", "Main"), Path("Main"))
TORCHGEO_INDEX = "sample_df.csv"
_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")

#: Fraction of torchgeo's ``train`` rows that become our validation split (torchgeo layout).
TORCHGEO_VAL_FRACTION = 0.1


def class_key(name: str) -> str:
    """Reduce a class name to lower-case letters and digits, so spellings agree.

    ``Expressway-Service-area`` (release) and ``expresswayservicearea`` (torchgeo) both give
    ``expresswayservicearea``.
    """
    return re.sub(r"[^0-9a-z]", "", name.lower())


@dataclass(frozen=True)
class DIORRecord:
    """One image and its annotation file."""

    image: Path
    annotation: Path


def parse_annotation(path: Path, class_index: dict[str, int]) -> tuple[Tensor, Tensor]:
    """Read the boxes and labels of one PASCAL VOC file.

    Args:
        path: the XML file.
        class_index: :func:`class_key` of each class name → label.

    Returns:
        ``(boxes float32 (N, 4) xyxy, labels int64 (N,))``, in file order.

    Raises:
        DataError: when the file is unreadable, is not VOC XML, or names an unknown class.
    """
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as err:
        raise DataError(
            f"cannot read the annotation ({err})", where=str(path), hint="re-extract DIOR"
        ) from None
    boxes: list[list[float]] = []
    labels: list[int] = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if class_key(name) not in class_index:
            raise DataError(
                f"unknown class {name!r} in the annotation",
                where=str(path),
                hint="the dataset's classes are " + ", ".join(SPEC.classes),
            )
        box = obj.find("bndbox")
        fields = [box.findtext(k) if box is not None else None for k in _BOX_FIELDS]
        try:
            coords = [float(text or "") for text in fields]
        except ValueError:  # no bndbox, or a missing / non-numeric field
            raise DataError(
                f"object {name!r} has no valid bndbox (xmin, ymin, xmax, ymax)",
                where=str(path),
                hint="re-extract DIOR",
            ) from None
        boxes.append(coords)
        labels.append(class_index[class_key(name)])
    return (
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.int64),
    )


def read_image(path: Path) -> np.ndarray:
    """Read a JPEG as ``uint8 (H, W, 3)``.

    Raises:
        DataError: naming the file when it is missing or not an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(
            f"cannot read the image ({err})", where=str(path), hint="re-extract DIOR"
        ) from None


class DIORSplit(Dataset[dict[str, Tensor]]):
    """One DIOR split.

    Args:
        records: image and annotation files.
        channels: positions of the requested bands among :data:`FILE_BANDS`.
        class_index: :func:`class_key` of each class name → label.
    """

    collate_fn = staticmethod(collate_detection)

    def __init__(
        self, records: list[DIORRecord], channels: list[int], class_index: dict[str, int]
    ) -> None:
        self.records = records
        self.channels = channels
        self.class_index = class_index

    def __len__(self) -> int:
        """Return the number of images."""
        return len(self.records)

    def source(self, index: int) -> str:
        """The image file of a sample (for error messages)."""
        return str(self.records[index].image)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, H, W), "boxes": float32 (N, 4), "labels": int64}``."""
        rec = self.records[index]
        pixels = read_image(rec.image)
        image = torch.from_numpy(pixels).permute(2, 0, 1)[self.channels].float()
        boxes, labels = parse_annotation(rec.annotation, self.class_index)
        height, width = pixels.shape[:2]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return {"image": image, "boxes": boxes[keep], "labels": labels[keep]}


def _image_index(root: Path) -> dict[str, Path]:
    """Map every image id to its JPEG, over all image folders (doubled folders included)."""
    index: dict[str, Path] = {}
    for name in IMAGE_DIRS:
        for folder in (root / name, root / name / name):
            if folder.is_dir():
                for path in folder.glob("*.jpg"):
                    index.setdefault(path.stem, path)
    return index


def _release_records(root: Path, split: str) -> list[DIORRecord]:
    split_file = next(
        (root / d / f"{split}.txt" for d in SPLIT_DIRS if (root / d / f"{split}.txt").is_file()),
        None,
    )
    if split_file is None:
        raise DataError(
            f"DIOR split file for {split!r} not found",
            where=str(root / SPLIT_DIRS[0] / f"{split}.txt"),
            hint=f"expected {SPEC.layout}",
        )
    images = _image_index(root)
    if not images:
        raise DataError(
            "no DIOR image folder", where=str(root / IMAGE_DIRS[0]), hint=f"expected {SPEC.layout}"
        )
    records = []
    for line in split_file.read_text().split():
        stem = Path(line.strip()).stem
        if stem not in images:
            raise DataError(
                f"image {stem}.jpg listed in the split file is missing",
                where=str(split_file),
                hint=f"re-extract JPEGImages-trainval / JPEGImages-test; expected {SPEC.layout}",
            )
        xml = root / ANNOTATION_DIR / f"{stem}.xml"
        if not xml.is_file():
            raise DataError(
                "annotation of an image in the split file is missing",
                where=str(xml),
                hint=f"re-extract Annotations; expected {SPEC.layout}",
            )
        records.append(DIORRecord(images[stem], xml))
    return records


def _torchgeo_records(root: Path, split: str, seed: int) -> list[DIORRecord]:
    index = root / TORCHGEO_INDEX
    try:
        with index.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error) as err:
        raise DataError(f"cannot read {TORCHGEO_INDEX} ({err})", where=str(index)) from None
    if rows and not {"image_path", "label_path", "split"} <= set(rows[0]):
        raise DataError(
            "expected the columns image_path, label_path, split",
            where=str(index),
            hint="this is torchgeo's DIOR index; re-download it",
        )
    if split == "test":
        chosen = [r for r in rows if r["split"] == "val"]
    else:
        train = sorted((r for r in rows if r["split"] == "train"), key=lambda r: r["image_path"])
        random.Random(seed).shuffle(train)
        n_val = max(1, round(TORCHGEO_VAL_FRACTION * len(train))) if len(train) > 1 else 0
        chosen = train[:n_val] if split == "val" else train[n_val:]
    records = []
    for row in chosen:
        image, xml = root / row["image_path"], root / (row["label_path"] or "")
        for path in (image, xml):
            if not path.is_file():
                raise DataError(
                    "file listed in the torchgeo index is missing",
                    where=str(path),
                    hint=f"extract the torchgeo DIOR archives in {root}",
                )
        records.append(DIORRecord(image, xml))
    return records


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one DIOR split.

    Args:
        request: the dataset request; ``request.bands`` name the JPEG bands (``R``, ``G``,
            ``B``; repeats allowed) and ``request.classes`` the 20 classes in label order.

    Returns:
        A dataset of ``{"image", "boxes", "labels"}`` samples with a ``collate_fn``.

    Raises:
        DataError: when the root, a split file, an image or an annotation is missing.
        BandError: when a requested band is not R, G or B.
    """
    where = f"dataset {request.name or 'dior'}"
    channels = band_indices(request.bands, FILE_BANDS, where)
    names = tuple(request.classes) or SPEC.classes
    class_index = {class_key(c): i for i, c in enumerate(names)}
    if len(class_index) != len(names):
        raise DataError("two class names differ only in case or punctuation", where=where)
    root = require_dir(Path(request.root), SPEC.layout)
    if (root / ANNOTATION_DIR).is_dir():
        records = _release_records(root, request.split)
    elif (root / TORCHGEO_INDEX).is_file():
        records = _torchgeo_records(root, request.split, request.seed)
    else:
        raise DataError(
            "DIOR annotations not found",
            where=str(root / ANNOTATION_DIR),
            hint=f"expected {SPEC.layout}; set the folder with --root",
        )
    return DIORSplit(records, channels, class_index)
