"""SEN12MS (Schmitt et al., 2019): land-cover segmentation, simplified IGBP (DFC2020) classes.

Release layout (one folder per season, one sub-folder per scene and source)::

    <root>/ROIs<id>_<season>/s1_<scene>/ROIs<id>_<season>_s1_<scene>_p<patch>.tif
    <root>/ROIs<id>_<season>/s2_<scene>/ROIs<id>_<season>_s2_<scene>_p<patch>.tif
    <root>/ROIs<id>_<season>/lc_<scene>/ROIs<id>_<season>_lc_<scene>_p<patch>.tif

The season folders are ``ROIs1158_spring``, ``ROIs1868_summer``, ``ROIs1970_fall`` and
``ROIs2017_winter`` (torchgeo's :class:`~torchgeo.datasets.SEN12MS` reads the same paths). S1
files hold VV, VH (float32, dB); S2 files 13 bands (uint16, reflectance x 1e4) stored as
B01..B08, B8A, B09..B12; land-cover files 4 layers (uint16: IGBP, LCCS_LC, LCCS_LU, LCCS_SH).
Patches are 256x256 px; the loader does not assume that size.

The mask is the first land-cover layer (IGBP, 17 classes, 1-based) mapped to the 10 classes of
the simplified IGBP scheme used by DFC2020 (:data:`IGBP_TO_SIMPLIFIED`), returned 0-based; a pixel
with no IGBP class (0 or any value above 17) gets ``request.ignore_index`` (default -1).

Splits. SEN12MS ships no train/val/test lists that the EoS-FM reference uses: it draws an
80/20 train/test split of **scenes**. This loader does the same, seeded by ``request.seed``:
the scenes (a season and a scene number, since numbers repeat across seasons) are sorted and
shuffled, 20 % go to test, and the validation scenes are then carved out of the remaining 80 %
(10 % of all scenes), so train/val/test hold 70/10/20 % of the scenes and never share one.
``options["test_fraction"]`` and ``options["val_fraction"]`` change the fractions. Each split
gets at least one scene when there are three or more.

torchgeo's class is not used: it reads only the official ``train_list.txt`` / ``test_list.txt``
(no validation list, not the reference's seeded 80/20 of scenes), needs all four season folders
and both list files, and always reads S1, S2 and the mask.

One patch known to hold NaN in its S1 file (``ROIs1868_summer`` scene 146, patch 202, as
documented with the official SEN12MS code) is left out.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.registry import SEN12MS_CLASSES, SEN12MS_LAYOUT
from eosfm_cli.errors import DataError

S1_BANDS: tuple[str, ...] = ("VV", "VH")
#: Band order of the SEN12MS S2 files.
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
ALL_BANDS: tuple[str, ...] = (*S1_BANDS, *S2_BANDS)

#: The official IGBP (1..17) -> simplified IGBP (1..10) mapping of SEN12MS / DFC2020.
IGBP_TO_SIMPLIFIED: dict[int, int] = {
    1: 1,  # evergreen needleleaf forest -> forest
    2: 1,  # evergreen broadleaf forest
    3: 1,  # deciduous needleleaf forest
    4: 1,  # deciduous broadleaf forest
    5: 1,  # mixed forest
    6: 2,  # closed shrublands -> shrubland
    7: 2,  # open shrublands
    8: 3,  # woody savannas -> savanna
    9: 3,  # savannas
    10: 4,  # grasslands
    11: 5,  # permanent wetlands
    12: 6,  # croplands
    13: 7,  # urban and built-up
    14: 6,  # cropland / natural vegetation mosaic -> croplands
    15: 8,  # snow and ice
    16: 9,  # barren
    17: 10,  # water bodies
}

_SEASON_RE = re.compile(r"^ROIs\d+_[a-z]+$")
_PATCH_RE = re.compile(r"^(ROIs\d+_[a-z]+)_(s1|s2|lc)_(\d+)_p(\d+)\.tif$")
_BROKEN = {("ROIs1868_summer", 146, 202)}


@dataclass(frozen=True)
class PatchKey:
    """One SEN12MS patch: its season folder, scene number and patch number."""

    season: str
    scene: int
    patch: int

    @property
    def scene_id(self) -> str:
        """The scene, unique across seasons (``ROIs1158_spring/s1_63`` style)."""
        return f"{self.season}/{self.scene}"

    def path(self, root: Path, source: str) -> Path:
        """Return the file of ``source`` (``s1``, ``s2`` or ``lc``) for this patch."""
        folder = root / self.season / f"{source}_{self.scene}"
        return folder / f"{self.season}_{source}_{self.scene}_p{self.patch}.tif"


def igbp_lookup(ignore_index: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return a 65536-entry table from IGBP values to 0-based simplified classes.

    Values with no class (0 and anything above 17) map to ``ignore_index``.
    """
    table = np.full(65536, ignore_index, dtype=np.int64)
    for igbp, simplified in IGBP_TO_SIMPLIFIED.items():
        table[igbp] = simplified - 1
    return table


def _patch_numbers(folder: Path, source: str) -> set[int]:
    out = set()
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _PATCH_RE.match(entry.name)
            if match and match.group(2) == source:
                out.add(int(match.group(4)))
    return out


def index_patches(root: Path, sources: Sequence[str]) -> list[PatchKey]:
    """List the patches that have a file for every source in ``sources`` and a land-cover mask.

    Args:
        root: the dataset root.
        sources: ``s1`` and/or ``s2``.

    Returns:
        Patch keys sorted by season, scene and patch number.
    """
    keys: list[PatchKey] = []
    for season_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if not _SEASON_RE.match(season_dir.name):
            continue
        season = season_dir.name
        for lc_dir in season_dir.iterdir():
            if not (lc_dir.is_dir() and lc_dir.name.startswith("lc_")):
                continue
            scene_text = lc_dir.name[3:]
            if not scene_text.isdigit():
                continue
            scene = int(scene_text)
            numbers = _patch_numbers(lc_dir, "lc")
            for source in sources:
                numbers &= _patch_numbers(season_dir / f"{source}_{scene}", source)
            keys.extend(
                PatchKey(season, scene, n) for n in numbers if (season, scene, n) not in _BROKEN
            )
    return sorted(keys, key=lambda k: (k.season, k.scene, k.patch))


def split_scenes(
    scenes: Sequence[str], seed: int, test_fraction: float = 0.2, val_fraction: float = 0.1
) -> dict[str, list[str]]:
    """Split scene ids into train/val/test, seeded, disjoint.

    Test scenes are drawn first (``test_fraction`` of all scenes, the reference's 80/20), then
    validation scenes are carved from the rest (``val_fraction`` of all scenes).

    Args:
        scenes: scene ids.
        seed: the random seed.
        test_fraction: share of the scenes for test.
        val_fraction: share of the scenes for validation, taken from the training part.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.
    """
    if not (0 <= test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise DataError(
            f"bad SEN12MS split fractions test={test_fraction}, val={val_fraction}",
            where="options.test_fraction / options.val_fraction",
            hint="use fractions in [0, 1) whose sum is below 1",
        )
    order = sorted(set(scenes))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 3:  # every split gets a scene when there are enough
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    test = order[:n_test]
    val = order[n_test : n_test + n_val]
    train = order[n_test + n_val :]
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


class SEN12MSSplit(Dataset[dict[str, Tensor]]):
    """One SEN12MS split, bands selected by name.

    Args:
        root: the dataset root.
        patches: the patches of the split.
        bands: canonical band names to return, in order (repeats allowed).
        ignore_index: mask value of pixels without a class.
    """

    def __init__(
        self, root: Path, patches: Sequence[PatchKey], bands: Sequence[str], ignore_index: int
    ) -> None:
        self.root = root
        self.patches = list(patches)
        self.bands = tuple(bands)
        self.ignore_index = ignore_index
        self._lookup = igbp_lookup(ignore_index)
        # (source, 1-based file band) of each requested band
        self._plan = [
            ("s1", S1_BANDS.index(b) + 1) if b in S1_BANDS else ("s2", S2_BANDS.index(b) + 1)
            for b in self.bands
        ]

    def __len__(self) -> int:
        """Return the number of patches."""
        return len(self.patches)

    @property
    def scenes(self) -> list[str]:
        """The scene ids of this split, sorted."""
        return sorted({p.scene_id for p in self.patches})

    def _read(self, path: Path, indexes: list[int]) -> np.ndarray[Any, Any]:
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            with rasterio.open(path) as src:
                return src.read(indexes)
        except RasterioIOError as err:
            raise DataError(
                "SEN12MS file missing or unreadable",
                where=str(path),
                hint=f"expected {SEN12MS_LAYOUT}",
            ) from err

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image": float32 (C, H, W) raw values, "mask": int64 (H, W)}``."""
        key = self.patches[index]
        layers: dict[str, dict[int, np.ndarray[Any, Any]]] = {}
        for source in ("s1", "s2"):
            wanted = sorted({i for s, i in self._plan if s == source})
            if wanted:
                data = self._read(key.path(self.root, source), wanted)
                layers[source] = dict(zip(wanted, data, strict=True))
        image = np.stack([layers[s][i] for s, i in self._plan]).astype(np.float32)
        igbp = self._read(key.path(self.root, "lc"), [1])[0]
        mask = self._lookup[np.clip(igbp.astype(np.int64), 0, 65535)]
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask)}


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one SEN12MS split, grouped by scene and seeded.

    Args:
        request: the dataset request. ``request.bands`` are canonical names among VV, VH and the
            13 S2 bands. ``options``: ``test_fraction`` (0.2) and ``val_fraction`` (0.1).

    Returns:
        A dataset of ``{"image": float32 (C, H, W), "mask": int64 (H, W)}``.

    Raises:
        DataError: when the root holds no SEN12MS season folder or no complete patch.
        BandError: when a requested band is not a SEN12MS band.
    """
    where = f"dataset {request.name or 'sen12ms'}"
    band_indices(request.bands, ALL_BANDS, where)
    if request.classes and tuple(request.classes) != SEN12MS_CLASSES:
        raise DataError(
            "SEN12MS loads the 10 simplified IGBP classes; the requested class list differs",
            where=where,
            hint="use the registry's SEN12MS_CLASSES",
        )
    root = require_dir(Path(request.root), SEN12MS_LAYOUT)
    if not any(p.is_dir() and _SEASON_RE.match(p.name) for p in root.iterdir()):
        raise DataError(
            "no SEN12MS season folder (ROIs<id>_<season>) found",
            where=str(root),
            hint=f"expected {SEN12MS_LAYOUT}; set the folder with --root",
        )
    sources = [
        source
        for source, names in (("s1", S1_BANDS), ("s2", S2_BANDS))
        if any(b in names for b in request.bands)
    ]
    # The scenes are split from the land-cover folders alone, so every band set of the dataset
    # (sen12ms_rgb, sen12ms_s1, ...) sees the same split.
    scenes = [p.scene_id for p in index_patches(root, [])]
    patches = index_patches(root, sources)
    if not patches:
        raise DataError(
            f"no SEN12MS patch has both a land-cover file and {' and '.join(sources)} files",
            where=str(root),
            hint=f"expected {SEN12MS_LAYOUT}",
        )
    options = request.options
    splits = split_scenes(
        scenes,
        request.seed,
        float(options.get("test_fraction", 0.2)),
        float(options.get("val_fraction", 0.1)),
    )
    chosen = set(splits[request.split])
    selected = [p for p in patches if p.scene_id in chosen]
    if not selected:
        raise DataError(
            f"the SEN12MS {request.split} split is empty ({len(set(scenes))} scenes in all)",
            where=str(root),
            hint="add scenes, or change options.test_fraction / options.val_fraction",
        )
    ignore = -1 if request.ignore_index is None else int(request.ignore_index)
    return SEN12MSSplit(root, selected, request.bands, ignore)
