#!/usr/bin/env python3
"""Write a tiny DIOR copy in the release layout, next to this script.

Layout (as in the authors' archives)::

    JPEGImages-trainval/00001.jpg .. 00004.jpg
    JPEGImages-test/00005.jpg, 00006.jpg
    Annotations/Horizontal Bounding Boxes/00001.xml .. 00006.xml   PASCAL VOC
    ImageSets/Main/train.txt (00001-00003), val.txt (00004), test.txt (00005, 00006)

Images are RGB JPEGs of 64 or 96 px (DIOR's are 800 px; mixed sizes exercise the detection
collate) with a dark noisy background and one bright, flat rectangle per object, so boxes are
visible in the pixels. Every image has two or three objects. ``00003.xml`` spells the
expressway classes as torchgeo does (``expresswaytollstation``), the others as the release does
(``Expressway-Service-area``). Run: ``python tests/data/dior/generate.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent

#: image id → (size, split, [(class name, xmin, ymin, xmax, ymax)])
IMAGES: dict[str, tuple[int, str, list[tuple[str, int, int, int, int]]]] = {
    "00001": (96, "train", [("airplane", 8, 10, 40, 36), ("ship", 55, 60, 80, 90)]),
    "00002": (
        64,
        "train",
        [("vehicle", 4, 4, 20, 16), ("storagetank", 30, 30, 50, 52), ("airplane", 40, 2, 62, 20)],
    ),
    "00003": (96, "train", [("expresswaytollstation", 20, 20, 70, 60), ("ship", 2, 70, 30, 94)]),
    "00004": (64, "val", [("airplane", 10, 10, 40, 34), ("vehicle", 44, 44, 60, 60)]),
    "00005": (64, "test", [("ship", 6, 30, 30, 58), ("storagetank", 36, 4, 58, 26)]),
    "00006": (
        96,
        "test",
        [("Expressway-Service-area", 10, 10, 60, 50), ("airplane", 64, 60, 90, 88)],
    ),
}
COLOURS = {
    "airplane": (230, 230, 240),
    "ship": (250, 200, 60),
    "vehicle": (240, 60, 60),
    "storagetank": (200, 250, 250),
    "expresswaytollstation": (120, 240, 120),
    "Expressway-Service-area": (120, 240, 120),
}


def image(size: int, objects: list[tuple[str, int, int, int, int]], seed: int) -> np.ndarray:
    """Return one ``uint8 (size, size, 3)`` image with a flat rectangle per object."""
    rng = np.random.default_rng(seed)
    out = rng.integers(20, 60, size=(size, size, 3), dtype=np.uint8)
    for name, x0, y0, x1, y1 in objects:
        out[y0:y1, x0:x1] = COLOURS[name]
    return out


def xml(stem: str, size: int, objects: list[tuple[str, int, int, int, int]]) -> str:
    """Return the PASCAL VOC annotation of one image."""
    parts = [
        "<annotation>",
        f"  <filename>{stem}.jpg</filename>",
        "  <source><database>DIOR</database></source>",
        f"  <size><width>{size}</width><height>{size}</height><depth>3</depth></size>",
        "  <segmented>0</segmented>",
    ]
    for name, x0, y0, x1, y1 in objects:
        parts += [
            "  <object>",
            f"    <name>{name}</name>",
            "    <pose>Unspecified</pose>",
            "    <truncated>0</truncated>",
            "    <difficult>0</difficult>",
            f"    <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>",
            "  </object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def main() -> None:
    """Write the fixture."""
    for name in ("JPEGImages-trainval", "JPEGImages-test", "Annotations", "ImageSets"):
        shutil.rmtree(HERE / name, ignore_errors=True)
    ann = HERE / "Annotations" / "Horizontal Bounding Boxes"
    sets = HERE / "ImageSets" / "Main"
    for folder in (ann, sets, HERE / "JPEGImages-trainval", HERE / "JPEGImages-test"):
        folder.mkdir(parents=True)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for seed, (stem, (size, split, objects)) in enumerate(IMAGES.items()):
        folder = "JPEGImages-test" if split == "test" else "JPEGImages-trainval"
        Image.fromarray(image(size, objects, seed)).save(HERE / folder / f"{stem}.jpg", quality=95)
        (ann / f"{stem}.xml").write_text(xml(stem, size, objects))
        splits[split].append(stem)
    for split, stems in splits.items():
        (sets / f"{split}.txt").write_text("\n".join(stems) + "\n")


if __name__ == "__main__":
    main()
