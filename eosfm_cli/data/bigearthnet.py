"""BigEarthNet (Sumbul et al., 2019/2021): multi-label scene classification, 19 classes.

Two release layouts are read, both as torchgeo lays them out
(:mod:`~eosfm_cli.data.bigearthnet_layouts` finds their patches).

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
  metadata file, mapped to the 19-class nomenclature
  (:data:`~eosfm_cli.data.bigearthnet_labels.CLC43_TO_BEN19`).

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

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.bigearthnet_labels import clc43_to_indices, labels_to_multihot
from eosfm_cli.data.bigearthnet_layouts import (
    PatchRecord,
    detect_version,
    records_v1,
    records_v2,
)
from eosfm_cli.data.registry import BEN19_CLASSES, BEN_LAYOUT, BEN_LAYOUT_V1, BEN_LAYOUT_V2
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

_RESAMPLING = ("bilinear", "nearest", "cubic")


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
                hint=f"expected {BEN_LAYOUT_V1 if self.version == 'v1' else BEN_LAYOUT_V2}",
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
                hint=f"expected {BEN_LAYOUT_V1}",
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
    if request.classes and tuple(request.classes) != BEN19_CLASSES:
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
    root = require_dir(Path(request.root), BEN_LAYOUT)
    version = detect_version(root, request.options.get("version"))
    need_s1 = any(b in S1_BANDS for b in request.bands)
    need_s2 = any(b in S2_BANDS for b in request.bands)
    if version == "v1":
        records = records_v1(root, request.split, need_s1, need_s2)
    else:
        records = records_v2(root, request.split, need_s1, need_s2)
    dataset = BigEarthNetSplit(records, request.bands, resampling, version)
    # Check the first patch now, so that a wrong layout fails at build time.
    first = records[0]
    for band in dict.fromkeys(request.bands):
        path = dataset.band_path(first, band)
        if not path.is_file():
            raise DataError(
                "BigEarthNet band file not found",
                where=str(path),
                hint=f"expected {BEN_LAYOUT_V1 if version == 'v1' else BEN_LAYOUT_V2}",
            )
    return dataset
