"""Reading the built-in synthetic data back: one split as numpy arrays or as a torch dataset.

The on-disk format and the generator are in :mod:`eosfm_cli.data.synthetic`. Importing this
module needs no torch; :class:`SyntheticDataset` is defined (and torch imported) on first use.
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.errors

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir, require_file
from eosfm_cli.data.registry import EXPERIMENTS, SYNTHETIC_LAYOUT
from eosfm_cli.data.synthetic import FORMAT
from eosfm_cli.errors import BandError, DataError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

FloatArray = npt.NDArray[np.float32]
Sample = dict[str, npt.NDArray[Any]]

TASKS = ("classification", "segmentation", "multilabel", "change_detection")


@dataclass(frozen=True)
class _Scene:
    id: str
    label: int
    labels: tuple[int, ...]


class SyntheticScenes:
    """One split of a synthetic dataset, read lazily with rasterio into numpy arrays.

    :class:`SyntheticDataset` is the same reader as a ``torch.utils.data.Dataset`` whose items
    are tensors; this class needs no torch.

    Args:
        root: the dataset folder.
        split: ``train``, ``val`` or ``test``.
        bands: canonical band names in output order, from any of the sensors (repeats allowed).
        task: ``classification``, ``segmentation``, ``multilabel`` or ``change_detection``.

    Raises:
        DataError: when the folder, ``synthetic.json`` or ``scenes.csv`` is missing or invalid.
        BandError: for a band the data lacks, or a non-S2 band with change detection.
    """

    def __init__(self, root: Path, split: str, bands: Sequence[str], task: str) -> None:
        self.root = require_dir(Path(root), SYNTHETIC_LAYOUT)
        meta_path = require_file(self.root / "synthetic.json", SYNTHETIC_LAYOUT)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"unreadable metadata ({err})", where=str(meta_path)) from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataError(
                f"not an {FORMAT} metadata file",
                where=str(meta_path),
                hint=f"expected {SYNTHETIC_LAYOUT}",
            )
        if task not in TASKS:
            raise DataError(
                f"synthetic data has no task {task!r}",
                where=str(self.root),
                hint=f"choose among {', '.join(TASKS)}",
            )
        if split not in ("train", "val", "test"):
            raise DataError(
                f"unknown split {split!r}", where=str(self.root), hint="use train, val or test"
            )
        if not bands:
            raise BandError("no bands requested", where=str(self.root), hint="name at least one")
        self.task = task
        self.split = split
        self.bands = tuple(bands)
        try:
            self.classes: tuple[str, ...] = tuple(meta["classes"])
            sensors: dict[str, dict[str, Any]] = {
                name: {"file": str(s["file"]), "bands": list(s["bands"])}
                for name, s in meta["sensors"].items()
            }
        except (KeyError, TypeError, AttributeError) as err:
            raise DataError(
                f"metadata lacks {err}", where=str(meta_path), hint=f"expected {SYNTHETIC_LAYOUT}"
            ) from err
        where = f"synthetic data {self.root}"
        owners = [(name, band) for name, s in sensors.items() for band in s["bands"]]
        if task == "change_detection":
            owners = [(name, band) for name, band in owners if name == "s2"]
            where += " (change detection has S2 bands only)"
        available = [band for _, band in owners]
        positions = band_indices(self.bands, available, where)
        # For each sensor: the 1-based band indexes to read, and where each lands in the output.
        self._reads: dict[str, tuple[list[int], list[int]]] = {}
        for out_pos, pos in enumerate(positions):
            name, band = owners[pos]
            indexes, targets = self._reads.setdefault(name, ([], []))
            indexes.append(sensors[name]["bands"].index(band) + 1)
            targets.append(out_pos)
        self._files = {name: s["file"] for name, s in sensors.items()}
        self.scenes = self._read_index(split)

    def _read_index(self, split: str) -> list[_Scene]:
        path = require_file(self.root / "scenes.csv", SYNTHETIC_LAYOUT)
        scenes = []
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row.get("split") != split:
                    continue
                try:
                    present = tuple(int(c) for c in row["labels"].split(";") if c)
                    scenes.append(_Scene(row["id"], int(row["label"]), present))
                except (KeyError, TypeError, ValueError) as err:
                    raise DataError(
                        f"malformed row {row}",
                        where=str(path),
                        hint="columns: id,split,label,labels",
                    ) from err
        return scenes

    def __len__(self) -> int:
        """Number of scenes in the split."""
        return len(self.scenes)

    def _read(self, path: Path, indexes: list[int] | int) -> npt.NDArray[Any]:
        require_file(path, SYNTHETIC_LAYOUT)
        try:
            with rasterio.open(path) as src:
                return src.read(indexes)
        except (rasterio.errors.RasterioError, IndexError, ValueError) as err:
            raise DataError(
                f"unreadable GeoTIFF ({str(err).splitlines()[0][:160]})",
                where=str(path),
                hint="the file is corrupt or truncated, or lacks bands; regenerate it",
            ) from None

    def source(self, index: int) -> str:
        """The folder of one sample (for messages)."""
        return str(self.root / "scenes" / self.scenes[index].id)

    def _image(self, folder: Path, second_date: bool = False) -> FloatArray:
        out: FloatArray | None = None
        for name, (indexes, targets) in self._reads.items():
            file = "s2_t2.tif" if second_date else self._files[name]
            # Read each band once, even when the request repeats it.
            unique = sorted(set(indexes))
            data = self._read(folder / file, unique).astype(np.float32)
            if out is None:
                out = np.empty((len(self.bands), *data.shape[1:]), np.float32)
            for target, index in zip(targets, indexes, strict=True):
                out[target] = data[unique.index(index)]
        assert out is not None
        return out

    def sample(self, index: int) -> Sample:
        """Read one sample as numpy arrays (the loader contract's keys and dtypes).

        Args:
            index: position in the split.
        """
        scene = self.scenes[index]
        folder = self.root / "scenes" / scene.id
        out: Sample = {"image": self._image(folder)}
        if self.task == "classification":
            out["label"] = np.array(scene.label, np.int64)
        elif self.task == "multilabel":
            hot = np.zeros(len(self.classes), np.float32)
            hot[list(scene.labels)] = 1.0
            out["label"] = hot
        elif self.task == "segmentation":
            out["mask"] = self._read(folder / "landcover.tif", 1).astype(np.int64)
        else:
            out["image2"] = self._image(folder, second_date=True)
            out["mask"] = self._read(folder / "change.tif", 1).astype(np.int64)
        return out


if TYPE_CHECKING:
    # Defined on first access by the module's ``__getattr__``; a torch Dataset too.
    SyntheticDataset: type[SyntheticScenes]


@functools.cache
def _dataset_class() -> type[SyntheticScenes]:
    """Define :class:`SyntheticDataset` on first use, so that importing this module is cheap."""
    import torch
    from torch.utils.data import Dataset

    class SyntheticDataset(SyntheticScenes, Dataset):  # type: ignore[type-arg]
        """A split of the synthetic data as a map-style torch dataset of tensor dicts."""

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            return {k: torch.from_numpy(v) for k, v in self.sample(index).items()}

    SyntheticDataset.__module__ = __name__
    SyntheticDataset.__qualname__ = "SyntheticDataset"
    return SyntheticDataset


def __getattr__(name: str) -> Any:
    if name == "SyntheticDataset":
        return _dataset_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build(request: DatasetRequest) -> Dataset[dict[str, torch.Tensor]]:
    """Build one split of the synthetic data for an experiment (the loader contract).

    The task comes from the experiment (``synthetic_s2``, ``synthetic_rgb`` and
    ``synthetic_s1``: classification; ``synthetic_seg``: segmentation; ``synthetic_ml``:
    multi-label; ``synthetic_cd``: change detection), or from ``options["task"]``.

    Scenes are returned whole: ``request.patch_size`` does not apply.

    Args:
        request: the split to build; ``request.bands`` may mix S2, S1 and RGB bands, except
            for change detection (S2 only).

    Returns:
        A ``SyntheticDataset``.

    Raises:
        DataError: when the data is missing or the task is unknown.
        BandError: for a band the data lacks.
    """
    task = request.options.get("task")
    spec = EXPERIMENTS.get(request.name)
    if task is None and spec is not None and spec.dataset == "synthetic":
        task = spec.task
    if task is None:
        raise DataError(
            f"{request.name!r} is not a synthetic experiment",
            where=f"dataset {request.name}",
            hint="use a synthetic_* experiment or set options.task",
        )
    dataset = _dataset_class()(request.root, request.split, request.bands, str(task))
    return cast("Dataset[dict[str, torch.Tensor]]", dataset)


__all__ = ["SyntheticDataset", "SyntheticScenes", "build"]
