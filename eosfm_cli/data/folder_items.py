"""Which images a split of a folder dataset holds, and their targets.

The layouts and split rules are described in :mod:`eosfm_cli.data.folder`: split sub-folders,
else a ``split`` column or ``split.csv``, else a split seeded by ``data.split_seed``.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eosfm_cli.data.base import require_dir
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.errors import DataError

#: The registry's entry: its layout names the folders and files expected.
SPEC = get_experiment("folder")

#: Image folders per dense task; the mask folder comes last.
FOLDERS: dict[str, tuple[str, ...]] = {
    "segmentation": ("images", "masks"),
    "change_detection": ("images1", "images2", "masks"),
}
_ROLE = {"images2": "second-date image", "masks": "mask"}
LABELS_CSV = "labels.csv"
SPLIT_CSV = "split.csv"
SPLITS: tuple[str, ...] = ("train", "val", "test")
RASTER_SUFFIXES: tuple[str, ...] = (".tif", ".tiff")


@dataclass(frozen=True)
class FolderItem:
    """One image (or image pair) and its target.

    Attributes:
        files: image, second image (change detection), mask (dense tasks), in that order.
        target: class index (classification), multi-hot list (multi-label), else ``None``.
        height: image height in pixels.
        width: image width in pixels.
    """

    files: tuple[Path, ...]
    target: int | list[float] | None
    height: int
    width: int


def _rasters(folder: Path) -> dict[str, Path]:
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES
    }


def _dense_names(base: Path, task: str) -> tuple[list[str], dict[str, dict[str, Path]]]:
    """The image names of a dense layout and every folder's files by name."""
    folders = FOLDERS[task]
    files = {f: _rasters(require_dir(base / f, SPEC.layout)) for f in folders}
    images = files[folders[0]]
    if not images:
        raise DataError(
            "no .tif image", where=str(base / folders[0]), hint=f"expected {SPEC.layout}"
        )
    for folder in folders[1:]:
        missing = [n for n in images if n not in files[folder]]
        if missing:
            raise DataError(
                f"no {_ROLE[folder]} for this image",
                where=str(images[missing[0]]),
                hint=f"expected {base / folder / (missing[0] + '.tif')}",
            )
    return list(images), files


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as fh:
            rows = [
                {k.strip(): (v or "").strip() for k, v in r.items() if k}
                for r in csv.DictReader(fh)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read the CSV ({err})", where=str(path)) from None
    return rows


def _class_index(value: str, classes: Sequence[str], where: str) -> int:
    if value in classes:
        return list(classes).index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    raise DataError(
        f"label {value!r} is not one of the {len(classes)} classes",
        where=where,
        hint="use a class name from dataset.classes or a 0-based index",
    )


def _row_target(
    row: dict[str, str], task: str, classes: Sequence[str], where: str
) -> int | list[float]:
    if task == "classification":
        if "label" not in row:
            raise DataError(
                "the CSV has no label column", where=where, hint=f"expected {SPEC.layout}"
            )
        return _class_index(row["label"], classes, where)
    if all(c in row for c in classes):  # one 0/1 column per class
        try:
            return [float(row[c] or 0) for c in classes]
        except ValueError:
            raise DataError(
                "class columns must hold 0 or 1", where=where, hint="one 0/1 column per class"
            ) from None
    if "label" not in row:
        raise DataError(
            "the CSV has neither a label column nor one column per class",
            where=where,
            hint=f"expected {SPEC.layout}",
        )
    hot = [0.0] * len(classes)
    for name in filter(None, (p.strip() for p in row["label"].split(";"))):
        hot[_class_index(name, classes, where)] = 1.0
    return hot


def _check_split_value(value: str, where: str) -> str:
    if value not in SPLITS:
        raise DataError(
            f"split {value!r} is not train, val or test", where=where, hint="fix the split column"
        )
    return value


def _seeded(names: list[str], split: str, seed: int, opts: dict[str, Any]) -> set[str]:
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_test = round(opts["test_fraction"] * n)
    n_val = round(opts["val_fraction"] * n)
    if n >= 3:
        n_test = max(n_test, 1) if opts["test_fraction"] else 0
        n_val = max(n_val, 1) if opts["val_fraction"] else 0
    bounds = {"test": (0, n_test), "val": (n_test, n_test + n_val), "train": (n_test + n_val, n)}
    lo, hi = bounds[split]
    return set(order[lo:hi])


def _split_base(root: Path, split: str) -> tuple[Path, bool]:
    """The folder holding a split's layout, and whether it is a split sub-folder."""
    if any((root / s).is_dir() for s in SPLITS):
        return require_dir(
            root / split, f"train/, val/ and test/ sub-folders, each with {SPEC.layout}"
        ), True
    return root, False


def dense_items(
    root: Path, split: str, task: str, seed: int, opts: dict[str, Any]
) -> list[FolderItem]:
    """List the image (and mask) files of a dense split: segmentation or change detection.

    Args:
        root: the dataset folder.
        split: ``train``, ``val`` or ``test``.
        task: ``segmentation`` or ``change_detection``.
        seed: seed of the drawn split (used without split folders or ``split.csv``).
        opts: the checked options (``val_fraction``, ``test_fraction``).

    Raises:
        DataError: naming the folder or image that is missing, or a bad ``split.csv`` row.
    """
    base, own = _split_base(root, split)
    names, files = _dense_names(base, task)
    if not own:
        split_csv = base / SPLIT_CSV
        if split_csv.is_file():
            chosen = set()
            by_stem = {Path(n).stem: n for n in names}
            for line, row in enumerate(_read_csv(split_csv), start=2):
                where = f"{split_csv}:{line}"
                name = Path(row.get("name", "")).stem
                if name not in by_stem:
                    raise DataError(
                        f"image {row.get('name', '')!r} is not in {FOLDERS[task][0]}/",
                        where=where,
                        hint="split.csv needs the columns name,split",
                    )
                if _check_split_value(row.get("split", ""), where) == split:
                    chosen.add(name)
        else:
            chosen = _seeded(names, split, seed, opts)
        names = [n for n in names if n in chosen]
    items = []
    for name in sorted(names):
        paths = tuple(files[f][name] for f in FOLDERS[task])
        items.append(FolderItem(paths, None, 0, 0))
    return items


def table_items(
    root: Path, split: str, task: str, classes: Sequence[str], seed: int, opts: dict[str, Any]
) -> list[FolderItem]:
    """List the images and labels of a split from ``labels.csv`` (classification, multi-label).

    Args:
        root: the dataset folder.
        split: ``train``, ``val`` or ``test``.
        task: ``classification`` or ``multilabel``.
        classes: the class names, in label order.
        seed: seed of the drawn split (used without split folders or a ``split`` column).
        opts: the checked options (``val_fraction``, ``test_fraction``).

    Raises:
        DataError: naming the CSV (and line) that is missing, empty or malformed.
    """
    base, own = _split_base(root, split)
    table = base / LABELS_CSV
    if not table.is_file():
        raise DataError("labels CSV not found", where=str(table), hint=f"expected {SPEC.layout}")
    rows = _read_csv(table)
    if not rows:
        raise DataError("the labels CSV lists no image", where=str(table))
    if "path" not in rows[0]:
        raise DataError(
            "the labels CSV has no path column", where=str(table), hint=f"expected {SPEC.layout}"
        )
    entries: list[tuple[str, Path, int | list[float]]] = []
    for line, row in enumerate(rows, start=2):
        where = f"{table}:{line}"
        if not own and "split" in row and _check_split_value(row["split"], where) != split:
            continue
        path = Path(row["path"])
        entries.append(
            (
                row["path"],
                path if path.is_absolute() else base / path,
                _row_target(row, task, classes, where),
            )
        )
    if not own and "split" not in rows[0]:
        chosen = _seeded([e[0] for e in entries], split, seed, opts)
        entries = [e for e in entries if e[0] in chosen]
    return [
        FolderItem((path,), target, 0, 0) for _, path, target in sorted(entries, key=lambda e: e[0])
    ]
