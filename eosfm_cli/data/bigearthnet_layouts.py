"""Where BigEarthNet's patches are: the v1 and v2 release layouts, read into patch records.

Both layouts are described in :mod:`eosfm_cli.data.bigearthnet`. :func:`detect_version` tells
them apart; :func:`records_v1` reads a v1 split file (and, when it names no S1 patch, the S1
metadata files), :func:`records_v2` the v2 ``metadata.parquet``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from eosfm_cli.data.base import require_dir
from eosfm_cli.data.bigearthnet_labels import ben19_to_indices
from eosfm_cli.data.registry import BEN_LAYOUT, BEN_LAYOUT_V1, BEN_LAYOUT_V2
from eosfm_cli.errors import DataError

V1_S2_DIR = "BigEarthNet-v1.0"
V1_S1_DIR = "BigEarthNet-S1-v1.0"
V2_S2_DIR = "BigEarthNet-S2"
V2_S1_DIR = "BigEarthNet-S1"
V2_METADATA = "metadata.parquet"

_V1_SPLIT_FILES = ("bigearthnet-{split}.csv", "{split}.csv")
_V2_SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class PatchRecord:
    """Where one BigEarthNet patch lives.

    Attributes:
        s2_dir: folder of the S2 patch (``None`` when only S1 is read and the S2 name is
            unknown).
        s1_dir: folder of the S1 patch (``None`` when no S1 band is requested).
        labels: 19-class indices when the layout lists them (v2); ``None`` to read them from the
            patch's ``labels_metadata.json`` (v1).
        label_dir: folder whose ``*_labels_metadata.json`` holds the labels (v1).
    """

    s2_dir: Path | None
    s1_dir: Path | None
    labels: tuple[int, ...] | None = None
    label_dir: Path | None = None


def detect_version(root: Path, forced: str | None = None) -> str:
    """Tell which BigEarthNet layout ``root`` holds.

    Args:
        root: the dataset root.
        forced: ``"v1"`` or ``"v2"`` from ``options["version"]``, or ``None`` to detect.

    Returns:
        ``"v2"`` when ``metadata.parquet`` is there, else ``"v1"`` when a v1 folder is there.

    Raises:
        DataError: when no layout is recognised, or ``forced`` is not ``v1``/``v2``.
    """
    if forced is not None:
        if forced not in ("v1", "v2"):
            raise DataError(
                f"unknown BigEarthNet version {forced!r}",
                where="options.version",
                hint="use v1 or v2, or leave it out to detect the layout",
            )
        return forced
    if (root / V2_METADATA).is_file():
        return "v2"
    if (root / V1_S2_DIR).is_dir() or (root / V1_S1_DIR).is_dir():
        return "v1"
    raise DataError(
        "no BigEarthNet layout found",
        where=str(root),
        hint=f"expected {BEN_LAYOUT}; set the folder with --root",
    )


def _read_v1_split(root: Path, split: str) -> tuple[Path, list[list[str]]]:
    for pattern in _V1_SPLIT_FILES:
        path = root / pattern.format(split=split)
        if path.is_file():
            with path.open(newline="") as f:
                rows = [[c.strip() for c in row] for row in csv.reader(f) if row and row[0]]
            return path, rows
    raise DataError(
        f"BigEarthNet split file for {split!r} not found",
        where=str(root / _V1_SPLIT_FILES[0].format(split=split)),
        hint=f"expected {BEN_LAYOUT_V1}; set the folder with --root",
    )


def s1_index_v1(s1_root: Path) -> dict[str, str]:
    """Map S2 patch names to S1 patch names through the S1 metadata files (v1).

    This reads one JSON file per S1 patch, so it is used only when the split file does not
    name the S1 patches itself.
    """
    out: dict[str, str] = {}
    for folder in sorted(p for p in s1_root.iterdir() if p.is_dir()):
        meta = folder / f"{folder.name}_labels_metadata.json"
        try:
            s2_name = json.loads(meta.read_text())["corresponding_s2_patch"]
        except (OSError, ValueError, KeyError):
            continue
        out[str(s2_name)] = folder.name
    return out


def records_v1(root: Path, split: str, need_s1: bool, need_s2: bool) -> list[PatchRecord]:
    """List the patches of a v1 split from its split file.

    Args:
        root: the dataset root.
        split: ``train``, ``val`` or ``test``.
        need_s1: an S1 band is requested (find each patch's S1 folder).
        need_s2: an S2 band is requested.

    Raises:
        DataError: when the split file or a sensor folder is missing, a patch has no S1
            counterpart, or the split is empty.
    """
    split_file, rows = _read_v1_split(root, split)
    s2_root = require_dir(root / V1_S2_DIR, BEN_LAYOUT_V1) if need_s2 else root / V1_S2_DIR
    s1_root = require_dir(root / V1_S1_DIR, BEN_LAYOUT_V1) if need_s1 else root / V1_S1_DIR
    s1_names: dict[str, str] = {}
    if need_s1 and any(len(row) < 2 for row in rows):
        s1_names = s1_index_v1(s1_root)
    records = []
    for row in rows:
        s2_name = row[0]
        s1_dir = None
        if need_s1:
            s1_name = row[1] if len(row) > 1 else s1_names.get(s2_name)
            if s1_name is None:
                raise DataError(
                    f"no Sentinel-1 patch corresponds to {s2_name}",
                    where=str(s1_root),
                    hint="name it in the split file's second column or in an S1 "
                    "labels_metadata.json 'corresponding_s2_patch'",
                )
            s1_dir = s1_root / s1_name
        s2_dir = s2_root / s2_name
        label_dir = s2_dir if need_s2 else s1_dir
        records.append(PatchRecord(s2_dir if need_s2 else None, s1_dir, None, label_dir))
    if not records:
        raise DataError("empty BigEarthNet split file", where=str(split_file))
    return records


def records_v2(root: Path, split: str, need_s1: bool, need_s2: bool) -> list[PatchRecord]:
    """List the patches of a v2 split, with their labels, from ``metadata.parquet``.

    Args:
        root: the dataset root.
        split: ``train``, ``val`` or ``test``.
        need_s1: an S1 band is requested.
        need_s2: an S2 band is requested.

    Raises:
        DataError: when the metadata cannot be read (or pyarrow is missing), a sensor folder
            is missing, or the split is empty.
    """
    import pandas as pd

    meta_path = root / V2_METADATA
    try:
        frame = pd.read_parquet(meta_path, columns=["patch_id", "labels", "split", "s1_name"])
    except ImportError as err:
        raise DataError(
            "reading BigEarthNet v2 metadata needs pyarrow",
            where=str(meta_path),
            hint="pip install pyarrow",
        ) from err
    except (OSError, ValueError, KeyError) as err:
        raise DataError(
            f"unreadable BigEarthNet v2 metadata: {err}",
            where=str(meta_path),
            hint=f"expected {BEN_LAYOUT_V2}",
        ) from err
    frame = frame[frame["split"] == _V2_SPLIT_NAMES[split]]
    s2_root = require_dir(root / V2_S2_DIR, BEN_LAYOUT_V2) if need_s2 else root / V2_S2_DIR
    s1_root = require_dir(root / V2_S1_DIR, BEN_LAYOUT_V2) if need_s1 else root / V2_S1_DIR
    records = []
    for patch_id, names, s1_name in zip(
        frame["patch_id"], frame["labels"], frame["s1_name"], strict=True
    ):
        s2_dir = s2_root / "_".join(str(patch_id).split("_")[:-2]) / str(patch_id)
        s1_dir = s1_root / "_".join(str(s1_name).split("_")[:-3]) / str(s1_name)
        labels = ben19_to_indices([str(n) for n in names], f"{meta_path} ({patch_id})")
        records.append(
            PatchRecord(s2_dir if need_s2 else None, s1_dir if need_s1 else None, labels)
        )
    if not records:
        raise DataError(
            f"no patch of split {_V2_SPLIT_NAMES[split]!r} in the metadata", where=str(meta_path)
        )
    return records
