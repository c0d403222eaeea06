"""BigEarthNet (Sumbul et al., 2019/2021): multi-label scene classification, 19 classes.

Two release layouts are read, both as torchgeo lays them out.

**v1** (BigEarthNet-S2 and -S1 v1.0, torchgeo :class:`~torchgeo.datasets.BigEarthNet`)::

    <root>/BigEarthNet-v1.0/<s2patch>/<s2patch>_B01.tif ... _B12.tif, _B8A.tif
    <root>/BigEarthNet-v1.0/<s2patch>/<s2patch>_labels_metadata.json  ("labels": CLC names)
    <root>/BigEarthNet-S1-v1.0/<s1patch>/<s1patch>_VV.tif, _VH.tif
    <root>/BigEarthNet-S1-v1.0/<s1patch>/<s1patch>_labels_metadata.json
                                              (+ "corresponding_s2_patch")
    <root>/bigearthnet-{train,val,test}.csv   (torchgeo's names) or {train,val,test}.csv

  Each split line is ``<s2patch>,<s1patch>`` (the BigEarthNet-MM splits torchgeo uses) or just
  ``<s2patch>`` (the BigEarthNet-S2 splits); in the second case the S1 patch is found through the
  ``corresponding_s2_patch`` of the S1 metadata files. Labels are the 43 CORINE class names of the
  metadata file, mapped to the 19-class nomenclature (:data:`CLC43_TO_BEN19`).

**v2** (reBEN, torchgeo :class:`~torchgeo.datasets.BigEarthNetV2`)::

    <root>/metadata.parquet   (patch_id, labels [19-class names], split, s1_name, ...)
    <root>/BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_B01.tif ...
    <root>/BigEarthNet-S1/<scene>/<s1_name>/<s1_name>_VV.tif, _VH.tif
    <root>/Reference_Maps/...  (pixel maps; not needed for scene labels)

  where ``<tile>`` is ``patch_id`` less its last two ``_`` fields (row, column) and ``<scene>``
  is ``s1_name`` less its last three (tile, row, column).

  The parquet ``split`` column says ``train``, ``validation`` or ``test``. Reading it needs
  ``pyarrow``.

torchgeo's classes are not used to read: they select bands only as whole sensors (``s1``,
``s2``, ``all``), read S1 backscatter through an ``int32`` buffer (which truncates dB values),
and the v2 class insists on the S1, S2 and reference-map folders all being there.

Bands: the 12 L2A bands (no B10) and VV, VH. Every band is brought to the 10 m grid of
120x120 px: the 20 m (60x60 px) and 60 m (20x20 px) bands are upsampled with **bilinear**
interpolation, as torchgeo does; ``options["resampling"]`` may say ``nearest`` or ``cubic``
instead. Values stay raw: S2 reflectance x 1e4 as ``float32``, S1 backscatter in dB.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.registry import BEN19_CLASSES
from eosfm_cli.errors import DataError

#: The 12 Sentinel-2 L2A bands of BigEarthNet (no B10), by file suffix.
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip
#: The Sentinel-1 bands, by file suffix.
S1_BANDS: tuple[str, ...] = ("VV", "VH")
#: Every band this loader can return.
ALL_BANDS: tuple[str, ...] = (*S1_BANDS, *S2_BANDS)

#: Side of the 10 m grid every band is brought to.
GRID = 120

#: The 19-class nomenclature (Sumbul et al., 2021), in its official order.
CLASSES: tuple[str, ...] = BEN19_CLASSES

#: The official 43 -> 19 mapping, from the CORINE names of the v1 metadata files to the
#: 19-class names. ``None``: the class has no counterpart in the 19-class nomenclature (the
#: labels are dropped, as in the official BigEarthNet-19 code).
CLC43_TO_BEN19: dict[str, str | None] = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Road and rail networks and associated land": None,
    "Port areas": None,
    "Airports": None,
    "Mineral extraction sites": None,
    "Dump sites": None,
    "Construction sites": None,
    "Green urban areas": None,
    "Sport and leisure facilities": None,
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Pastures": "Pastures",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation": (
        "Land principally occupied by agriculture, with significant areas of natural vegetation"
    ),
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Bare rock": None,
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Burnt areas": None,
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Intertidal flats": None,
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}

V1_S2_DIR = "BigEarthNet-v1.0"
V1_S1_DIR = "BigEarthNet-S1-v1.0"
V2_S2_DIR = "BigEarthNet-S2"
V2_S1_DIR = "BigEarthNet-S1"
V2_METADATA = "metadata.parquet"

LAYOUT_V1 = (
    "BigEarthNet v1: BigEarthNet-v1.0/<patch>/<patch>_B01.tif... + <patch>_labels_metadata.json, "
    "BigEarthNet-S1-v1.0/<patch>/<patch>_VV.tif, _VH.tif, and bigearthnet-{train,val,test}.csv "
    "(or {train,val,test}.csv)"
)
LAYOUT_V2 = (
    "BigEarthNet v2 (reBEN): metadata.parquet, "
    "BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_B01.tif..., "
    "BigEarthNet-S1/<scene>/<s1_name>/<s1_name>_VV.tif, _VH.tif"
)
LAYOUT = f"{LAYOUT_V1}; or {LAYOUT_V2}"

_V1_SPLIT_FILES = ("bigearthnet-{split}.csv", "{split}.csv")
_V2_SPLIT_NAMES = {"train": "train", "val": "validation", "test": "test"}
_RESAMPLING = ("bilinear", "nearest", "cubic")
_CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}


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
        hint=f"expected {LAYOUT}; set the folder with --root",
    )


def labels_to_multihot(indices: Sequence[int]) -> Tensor:
    """Return the ``float32`` multi-hot vector (19,) of 19-class indices."""
    target = torch.zeros(len(CLASSES), dtype=torch.float32)
    if indices:
        target[list(indices)] = 1.0
    return target


def clc43_to_indices(names: Sequence[str], where: str) -> tuple[int, ...]:
    """Map CORINE (43-class) label names to sorted, unique 19-class indices.

    Args:
        names: label names from a v1 ``labels_metadata.json``.
        where: the file, for the error message.

    Raises:
        DataError: on a name that is not one of the 43 classes.
    """
    out = set()
    for name in names:
        if name not in CLC43_TO_BEN19:
            raise DataError(f"unknown BigEarthNet label {name!r}", where=where)
        mapped = CLC43_TO_BEN19[name]
        if mapped is not None:
            out.add(_CLASS_INDEX[mapped])
    return tuple(sorted(out))


def ben19_to_indices(names: Sequence[str], where: str) -> tuple[int, ...]:
    """Map 19-class label names (v2 metadata) to sorted, unique indices.

    Raises:
        DataError: on a name that is not one of the 19 classes.
    """
    out = set()
    for name in names:
        if name not in _CLASS_INDEX:
            raise DataError(f"unknown BigEarthNet-19 label {name!r}", where=where)
        out.add(_CLASS_INDEX[name])
    return tuple(sorted(out))


class BigEarthNetSplit(Dataset[dict[str, Tensor]]):
    """One split of BigEarthNet (v1 or v2), bands selected by name.

    Args:
        patches: the patches of the split.
        bands: canonical band names to return, in order (repeats allowed).
        resampling: ``bilinear``, ``nearest`` or ``cubic``, for the 20 m and 60 m bands.
        version: ``v1`` or ``v2``, for messages.
    """

    def __init__(
        self,
        patches: Sequence[PatchRecord],
        bands: Sequence[str],
        resampling: str = "bilinear",
        version: str = "v1",
    ) -> None:
        from rasterio.enums import Resampling

        self.patches = list(patches)
        self.bands = tuple(bands)
        self.version = version
        self._resampling = Resampling[resampling]

    def __len__(self) -> int:
        """Return the number of patches."""
        return len(self.patches)

    def band_path(self, patch: PatchRecord, band: str) -> Path:
        """Return the GeoTIFF of ``band`` for ``patch``."""
        folder = patch.s1_dir if band in S1_BANDS else patch.s2_dir
        if folder is None:  # pragma: no cover - build() resolves every folder it needs
            raise DataError(f"no folder for band {band}", where=str(patch))
        return folder / f"{folder.name}_{band}.tif"

    def read_band(self, path: Path) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Read one band file on the 120x120 grid, as ``float32``."""
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            with rasterio.open(path) as src:
                array = src.read(
                    1,
                    out_shape=(GRID, GRID),
                    out_dtype="float32",
                    resampling=self._resampling,
                )
        except RasterioIOError as err:
            raise DataError(
                "BigEarthNet band file missing or unreadable",
                where=str(path),
                hint=f"expected {LAYOUT_V1 if self.version == 'v1' else LAYOUT_V2}",
            ) from err
        return array

    def labels(self, patch: PatchRecord) -> tuple[int, ...]:
        """Return the 19-class indices of ``patch``."""
        if patch.labels is not None:
            return patch.labels
        folder = patch.label_dir
        assert folder is not None
        path = folder / f"{folder.name}_labels_metadata.json"
        try:
            names = json.loads(path.read_text())["labels"]
        except (OSError, ValueError, KeyError) as err:
            raise DataError(
                "BigEarthNet label file missing or without a 'labels' list",
                where=str(path),
                hint=f"expected {LAYOUT_V1}",
            ) from err
        return clc43_to_indices(names, str(path))

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, 120, 120), "label": float32 multi-hot (19,)}``."""
        patch = self.patches[index]
        cache: dict[str, np.ndarray[Any, np.dtype[np.float32]]] = {}
        for band in self.bands:
            if band not in cache:
                cache[band] = self.read_band(self.band_path(patch, band))
        image = np.stack([cache[band] for band in self.bands])
        return {
            "image": torch.from_numpy(image),
            "label": labels_to_multihot(self.labels(patch)),
        }


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
        hint=f"expected {LAYOUT_V1}; set the folder with --root",
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


def _records_v1(root: Path, split: str, need_s1: bool, need_s2: bool) -> list[PatchRecord]:
    split_file, rows = _read_v1_split(root, split)
    s2_root = require_dir(root / V1_S2_DIR, LAYOUT_V1) if need_s2 else root / V1_S2_DIR
    s1_root = require_dir(root / V1_S1_DIR, LAYOUT_V1) if need_s1 else root / V1_S1_DIR
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


def _records_v2(root: Path, split: str, need_s1: bool, need_s2: bool) -> list[PatchRecord]:
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
            hint=f"expected {LAYOUT_V2}",
        ) from err
    frame = frame[frame["split"] == _V2_SPLIT_NAMES[split]]
    s2_root = require_dir(root / V2_S2_DIR, LAYOUT_V2) if need_s2 else root / V2_S2_DIR
    s1_root = require_dir(root / V2_S1_DIR, LAYOUT_V2) if need_s1 else root / V2_S1_DIR
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


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one BigEarthNet split (v1 or v2 layout, detected).

    Args:
        request: the dataset request. ``request.bands`` are canonical names among VV, VH and the
            12 S2 L2A bands. ``options``: ``version`` (``v1``/``v2``, detected when absent) and
            ``resampling`` (``bilinear``, default, ``nearest`` or ``cubic``).

    Returns:
        A dataset of ``{"image": float32 (C, 120, 120), "label": float32 multi-hot (19,)}``.

    Raises:
        DataError: when the root, a layout folder, a split or metadata file is missing.
        BandError: when a requested band is not a BigEarthNet band.
    """
    where = f"dataset {request.name or 'bigearthnet'}"
    band_indices(request.bands, ALL_BANDS, where)
    if request.classes and tuple(request.classes) != CLASSES:
        raise DataError(
            "BigEarthNet loads the 19-class nomenclature; the requested class list differs",
            where=where,
            hint="use the registry's BEN19_CLASSES",
        )
    resampling = str(request.options.get("resampling", "bilinear"))
    if resampling not in _RESAMPLING:
        raise DataError(
            f"unknown resampling {resampling!r}",
            where="options.resampling",
            hint=f"choose among {', '.join(_RESAMPLING)}",
        )
    root = require_dir(Path(request.root), LAYOUT)
    version = detect_version(root, request.options.get("version"))
    need_s1 = any(b in S1_BANDS for b in request.bands)
    need_s2 = any(b in S2_BANDS for b in request.bands)
    if version == "v1":
        records = _records_v1(root, request.split, need_s1, need_s2)
    else:
        records = _records_v2(root, request.split, need_s1, need_s2)
    dataset = BigEarthNetSplit(records, request.bands, resampling, version)
    # Check the first patch now, so that a wrong layout fails at build time.
    first = records[0]
    for band in dict.fromkeys(request.bands):
        path = dataset.band_path(first, band)
        if not path.is_file():
            raise DataError(
                "BigEarthNet band file not found",
                where=str(path),
                hint=f"expected {LAYOUT_V1 if version == 'v1' else LAYOUT_V2}",
            )
    return dataset
