"""The images `eosfm distill` learns from: one source or several mixed, labels never read.

A source is an experiment of the registry (its train and val splits, from ``data.roots[NAME]``
or ``data.root``) or a folder of GeoTIFFs (``*.tif``/``*.tiff`` below it, read by windows of
the patch size; the files' band descriptions name their bands, and a seeded tenth of the
windows is held out for validation). Every source gives the student's bands, picked by name;
samples larger than the first source's size are centre-cropped to it so the sources batch
together.

The teacher's features are cached with :class:`~eosfm_cli.features.FeatureCache`, keyed by
the sample index (:class:`IndexedImages`): training windows are drawn once when a split is
built, so a sample's pixels, and so its teacher features, never change between epochs. Band
dropout acts on the student's input only; the teacher always sees every band, so it does not
invalidate the cache either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from eosfm_cli.errors import BandError, DataError, ProfileError

#: Windows of a folder source when no experiment fixes the patch size.
DEFAULT_PATCH = 64
#: Share of a folder's windows held out for validation.
FOLDER_VAL_FRACTION = 0.1


@dataclass
class ImageSource:
    """One source of images.

    Attributes:
        name: the experiment's name, or the folder's path.
        root: its folder.
        bands: the bands its images hold, in channel order.
        splits: its ``train`` and ``val`` datasets (samples with an ``image``).
    """

    name: str
    root: Path
    bands: list[str]
    splits: dict[str, Any]


class GeoTiffWindows(Dataset[dict[str, Tensor]]):
    """Windows of GeoTIFFs, each read on access with the bands asked for by name.

    Args:
        windows: ``(file, window)`` pairs.
        file_bands: each file's band names, by file.
        bands: the bands to return, in order.
    """

    def __init__(
        self, windows: list[tuple[Path, Any]], file_bands: dict[Path, list[str]], bands: list[str]
    ) -> None:
        self.windows = windows
        self.file_bands = file_bands
        self.indices: dict[Path, list[int]] = {}
        self.select(bands)

    def select(self, bands: list[str]) -> None:
        """Read ``bands`` (by name) from every file from now on."""
        self.indices = {p: [n.index(b) + 1 for b in bands] for p, n in self.file_bands.items()}

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        from eosfm_cli.data.windows import read_window

        path, window = self.windows[index]
        array = read_window(path, window, self.indices[path], "folder of GeoTIFFs")
        return {"image": torch.from_numpy(array.astype("float32"))}


class BandSubset(Dataset[dict[str, Tensor]]):
    """A split's images only: the given channels, centre-cropped to ``size``.

    Args:
        dataset: samples with an ``image``.
        channels: 0-based channels to keep, in order (``None``: all).
        size: the side of the samples, or ``None`` to keep them as they are.
    """

    def __init__(self, dataset: Any, channels: list[int] | None, size: int | None) -> None:
        self.dataset, self.channels, self.size = dataset, channels, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        x = self.dataset[index]["image"]
        if self.channels is not None:
            x = x[self.channels]
        if self.size is not None:
            h, w = x.shape[-2:]
            top, left = (h - self.size) // 2, (w - self.size) // 2
            x = x[..., top : top + self.size, left : left + self.size]
        return {"image": x.float()}


class IndexedImages(Dataset[dict[str, Tensor]]):
    """Images with their index as the ``label``: what the teacher-feature cache stores."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"image": self.dataset[index]["image"], "label": torch.tensor(index)}


class WithTeacherFeatures(Dataset[dict[str, Any]]):
    """Images beside their cached teacher features (per specialist, per level).

    Args:
        images: the split's images.
        cached: the cache entry built over :class:`IndexedImages` of the same split.
    """

    def __init__(self, images: Any, cached: Any) -> None:
        self.images, self.cached = images, cached

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.cached[index]
        if int(item["target"]) != index:
            raise DataError(
                f"teacher feature cache row {index} holds sample {int(item['target'])}",
                where=str(self.cached.folder),
                hint="delete that folder under cache/features and run again",
            )
        return {"image": self.images[index]["image"], "features": item["features"]}


def open_sources(ctx: Any, data: list[str]) -> list[ImageSource]:
    """Build every ``--data`` source's train and val splits.

    Args:
        ctx: the resolved profile and workspace.
        data: experiment names or GeoTIFF folders.

    Returns:
        The sources, in the order given.

    Raises:
        ProfileError: for an unknown experiment or a missing folder.
        DataError: for unreadable files, or a source whose train or val split is empty.
    """
    sources = []
    for entry in data:
        path = Path(entry)
        if path.is_dir():
            patch = ctx.profile.dataset.patch_size if ctx.profile.dataset else None
            source = _folder_source(path, ctx.profile.data.split_seed, patch or DEFAULT_PATCH)
        elif "/" in entry or entry.startswith("."):
            raise ProfileError(
                "folder of GeoTIFFs not found",
                where=entry,
                hint="pass an existing folder, or an experiment name (`eosfm datasets list`)",
            )
        else:
            source = _experiment_source(ctx, entry)
        for split in ("train", "val"):
            if len(source.splits[split]) == 0:
                raise DataError(
                    f"the {split} split of {source.name} is empty",
                    where=str(source.root),
                    hint="distil on sources whose train and val splits hold images",
                )
        sources.append(source)
    return sources


def _experiment_source(ctx: Any, name: str) -> ImageSource:
    from eosfm_cli.bands import expand_bands
    from eosfm_cli.context import dataset_section
    from eosfm_cli.data.splits import build_splits
    from eosfm_cli.profile_schema import DatasetConfig

    cfg = ctx.profile.dataset
    if cfg is None or cfg.name != name:
        try:
            cfg = DatasetConfig(**dataset_section(name))
        except ValueError as err:
            raise ProfileError(
                f"{name} cannot be distilled on without its profile section ({err})",
                where=f"--data {name}",
                hint=f"pass --dataset {name} with a profile that describes it",
            ) from None
    profile = ctx.profile.model_copy(update={"dataset": cfg})
    _, datasets, root = build_splits(profile, ctx.source)
    return ImageSource(name, root, expand_bands(cfg.bands), datasets)


def _folder_source(folder: Path, seed: int, patch: int) -> ImageSource:
    from eosfm_cli.data.holdout import split_keys
    from eosfm_cli.data.windows import tile_windows
    from eosfm_cli.inference.raster import catalog_names

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".tif", ".tiff"))
    if not files:
        raise DataError(
            "no GeoTIFFs (*.tif, *.tiff) in the folder",
            where=str(folder),
            hint="pass a folder of GeoTIFFs or an experiment name",
        )
    names: dict[Path, list[str]] = {}
    windows: list[tuple[Path, Any]] = []
    for path in files:
        count, height, width, descriptions = _header(path)
        bands = catalog_names(descriptions)
        if bands is None or len(bands) != count:
            raise BandError(
                "its band descriptions do not all name catalogue bands",
                where=str(path),
                hint="set them (e.g. `rio edit-info --band-descriptions`), see "
                "`eosfm datasets bands`",
            )
        if min(height, width) < patch:
            raise DataError(
                f"image is {width}x{height} px, smaller than the {patch} px windows",
                where=str(path),
                hint="set dataset.patch_size lower, or leave the file out",
            )
        names[path] = bands
        windows += [(path, w) for w in tile_windows(height, width, patch)]
    common = [b for b in names[files[0]] if all(b in n for n in names.values())]
    parts = split_keys(range(len(windows)), seed, {"val": FOLDER_VAL_FRACTION})
    splits = {
        s: GeoTiffWindows([windows[i] for i in parts[s]], names, common) for s in ("train", "val")
    }
    return ImageSource(str(folder), folder, common, splits)


def _header(path: Path) -> tuple[int, int, int, list[str | None]]:
    import rasterio

    try:
        with rasterio.open(path) as src:
            return int(src.count), int(src.height), int(src.width), list(src.descriptions)
    except rasterio.errors.RasterioIOError as err:
        raise DataError(f"unreadable GeoTIFF ({err})", where=str(path)) from None


def student_bands(
    sources: list[ImageSource], teacher_bands: list[str], requested: list[str] | None
) -> list[str]:
    """The student's input bands: ``requested``, else the teacher's that every source holds.

    Raises:
        BandError: when a requested band is missing from a source, or no band is shared.
    """
    if requested:
        for source in sources:
            missing = [b for b in requested if b not in source.bands]
            if missing:
                raise BandError(
                    f"{source.name} holds no {', '.join(missing)}",
                    where="--input-bands",
                    hint=f"choose among {', '.join(source.bands)}",
                )
        return list(requested)
    bands = [
        b
        for b in dict.fromkeys(sources[0].bands)
        if b in teacher_bands and all(b in s.bands for s in sources)
    ]
    if not bands:
        raise BandError(
            "no overlap between the ensemble's bands and the data's bands",
            where=", ".join(s.name for s in sources),
            hint=f"distil on images holding some of {', '.join(dict.fromkeys(teacher_bands))}",
        )
    return bands


def mixed_splits(sources: list[ImageSource], bands: list[str]) -> dict[str, Any]:
    """Every source's ``train`` and ``val`` splits on ``bands``, concatenated.

    Raises:
        DataError: when a source's samples are smaller than the first source's.
    """
    size = int(sources[0].splits["train"][0]["image"].shape[-1])
    out: dict[str, list[Any]] = {"train": [], "val": []}
    for source in sources:
        for split, parts in out.items():
            ds = source.splits[split]
            if isinstance(ds, GeoTiffWindows):
                ds.select(bands)
                channels = None
            else:
                channels = [source.bands.index(b) for b in bands]
            side = min(ds[0]["image"].shape[-2:])
            if side < size:
                raise DataError(
                    f"samples of {source.name} are {side} px, smaller than the first source's "
                    f"{size} px",
                    where=f"--data {source.name}",
                    hint="list the source with the smallest samples first",
                )
            parts.append(BandSubset(ds, channels, size if side > size else None))
    return {s: ConcatDataset(parts) if len(parts) > 1 else parts[0] for s, parts in out.items()}
