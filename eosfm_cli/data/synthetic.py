"""Built-in synthetic multi-sensor data: a seeded generator and its loader.

The generator draws land cover from spatially coherent random fields and renders each scene
as Sentinel-2, Sentinel-1 and aerial RGB images that share one grid, plus a second
Sentinel-2 date with blob-shaped changes. It needs only numpy and rasterio, so that it runs
without torch; the loader imports torch when a dataset is built.

On-disk layout (``format`` ``eosfm-synthetic``, ``version`` 1)::

    root/synthetic.json      {"format": "eosfm-synthetic", "version": 1, "seed", "n", "size",
                              "large", "pixel_size_m", "classes": [...], "crs": "EPSG:32631",
                              "sensors": {"s2":  {"file": "s2.tif", "bands": [13 names],
                                                  "dtype": "uint16",
                                                  "unit": "reflectance x 1e4"},
                                          "s1":  {"file": "s1.tif", "bands": ["VV", "VH"],
                                                  "dtype": "float32", "unit": "dB"},
                                          "rgb": {"file": "rgb.tif", "bands": ["R", "G", "B"],
                                                  "dtype": "uint8", "unit": "DN"}}}
    root/scenes.csv          id,split,label,labels
    root/scenes/<id>/s2.tif         13 bands, uint16 reflectance x 1e4, S2_ALL order (B8A last)
    root/scenes/<id>/s1.tif         VV, VH, float32 backscatter in dB (speckled)
    root/scenes/<id>/rgb.tif        R, G, B, uint8
    root/scenes/<id>/landcover.tif  uint8 class index map (segmentation labels)
    root/scenes/<id>/s2_t2.tif      second date, 13 bands, uint16 (change detection)
    root/scenes/<id>/landcover_t2.tif  uint8 class index map of the second date
    root/scenes/<id>/change.tif     uint8, 1 where the class differs between the dates
    root/large/{s2,s1,rgb,landcover}.tif   one large x large scene (only when large > 0)

In ``scenes.csv``, ``label`` is the index of the scene's majority class, ``labels`` the
``;``-joined indices of every class covering at least 5 % of the scene, and ``split`` one of
``train``, ``val`` and ``test`` (about 60/20/20, stratified by ``label``; every class that
labels a scene has a training scene). Every GeoTIFF is in EPSG:32631 with a 10 m grid; each
scene has its own origin. Band descriptions hold the band names.

The same seed gives byte-identical files on the same platform.
"""

from __future__ import annotations

import csv
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.errors
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir, require_file
from eosfm_cli.data.registry import EXPERIMENTS, SYNTHETIC_CLASSES
from eosfm_cli.errors import BandError, DataError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]
Sample = dict[str, npt.NDArray[Any]]

FORMAT = "eosfm-synthetic"
VERSION = 1
CRS_CODE = "EPSG:32631"
PIXEL_SIZE_M = 10.0
LARGE_SCENE = "large"
LABEL_MIN_FRACTION = 0.05
LAYOUT = (
    "eosfm synthetic: synthetic.json, scenes.csv, "
    "scenes/<id>/{s2,s1,rgb,landcover,s2_t2,landcover_t2,change}.tif "
    "(create it with `eosfm_cli.data.synthetic.generate`)"
)

S2_BANDS: tuple[str, ...] = BAND_SETS["S2_ALL"]
S1_BANDS: tuple[str, ...] = BAND_SETS["S1"]
RGB_BANDS: tuple[str, ...] = BAND_SETS["RGB"]
SENSORS: dict[str, dict[str, Any]] = {
    "s2": {
        "file": "s2.tif",
        "bands": list(S2_BANDS),
        "dtype": "uint16",
        "unit": "reflectance x 1e4",
    },
    "s1": {"file": "s1.tif", "bands": list(S1_BANDS), "dtype": "float32", "unit": "dB"},
    "rgb": {"file": "rgb.tif", "bands": list(RGB_BANDS), "dtype": "uint8", "unit": "DN"},
}
LARGE_FILES = ("s2", "s1", "rgb", "landcover")
TASKS = ("classification", "segmentation", "multilabel", "change_detection")

# Reflectance x 1e4 per class, in wavelength order B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10
# B11 B12. Vegetation has a red edge and a bright NIR plateau; water absorbs NIR and SWIR;
# urban is bright and flat; bare soil brightens toward the SWIR. B10 (cirrus) sees little of
# the ground anywhere.
_WAVELENGTH_ORDER = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
_SPECTRA = {
    "water":     (600, 550, 500, 350, 300, 250, 220, 200, 180, 150, 20, 100, 80),
    "forest":    (250, 300, 500, 250, 800, 2300, 2900, 3100, 3200, 3000, 30, 1500, 700),
    "cropland":  (350, 450, 800, 500, 1200, 2800, 3500, 3800, 3900, 3600, 40, 2200, 1200),
    "grassland": (400, 500, 800, 700, 1300, 2300, 2700, 2900, 3000, 2800, 40, 2500, 1500),
    "urban":     (1400, 1500, 1600, 1700, 1800, 1900, 2000, 2100, 2150, 2000, 60, 2300, 2100),
    "bare_soil": (900, 1000, 1400, 1800, 2100, 2300, 2400, 2500, 2600, 2600, 70, 3200, 3000),
}  # fmt: skip
# Sentinel-1 backscatter (VV, VH) in dB per class.
_BACKSCATTER = {
    "water": (-22.0, -28.0),
    "forest": (-7.0, -13.0),
    "cropland": (-10.0, -17.0),
    "grassland": (-12.0, -19.0),
    "urban": (0.0, -6.0),
    "bare_soil": (-14.0, -22.0),
}
# Classes that blobs of change turn into on the second date, with their odds.
_CHANGE_TARGETS = (("urban", 0.4), ("bare_soil", 0.3), ("cropland", 0.2), ("water", 0.1))
_SPECKLE_LOOKS = 4.0
_RGB_FULL_SCALE = 2500.0  # reflectance x 1e4 that maps to DN 255
_LARGE_BLOCK_ROWS = 256
_LARGE_SIGMA = 6.0

ProgressFn = Callable[[int, int], None]


def _signatures() -> tuple[FloatArray, FloatArray]:
    """Return the class spectra ``(13, 6)`` in S2_ALL order and backscatter ``(2, 6)``."""
    order = [_WAVELENGTH_ORDER.index(b) for b in S2_BANDS]
    s2 = np.array([[_SPECTRA[c][i] for c in SYNTHETIC_CLASSES] for i in order], np.float32)
    s1 = np.array([[_BACKSCATTER[c][p] for c in SYNTHETIC_CLASSES] for p in (0, 1)], np.float32)
    return s2, s1


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> FloatArray:
    """Gaussian-smoothed white noise with zero mean and unit variance (periodic edges)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    ky = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    kernel = np.exp(np.float32(-2.0 * math.pi**2 * sigma**2) * (ky**2 + kx**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape).astype(np.float32)
    field -= field.mean()
    field /= np.float32(field.std() + 1e-6)
    return field


def _class_bias(rng: np.random.Generator, dominant: int | None) -> FloatArray:
    """Per-class offsets of the land-cover fields.

    A scene has one dominant class, which makes scene classification learnable, and misses
    some others, which makes multi-label targets vary. Without ``dominant`` (the large scene)
    every class keeps a fair share.
    """
    k = len(SYNTHETIC_CLASSES)
    bias = rng.normal(0.0, 0.5, k).astype(np.float32)
    if dominant is not None:
        bias[rng.random(k) < 0.35] -= 2.5
        bias[dominant] = 1.3
    return bias


def _landcover(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float, dominant: int | None
) -> ByteArray:
    """Argmax of one smoothed random field per class, plus each class's bias."""
    bias = _class_bias(rng, dominant)
    best = np.full(shape, -np.inf, np.float32)
    out = np.zeros(shape, np.uint8)
    # One field at a time keeps memory at two arrays for the large scene.
    for k in range(len(SYNTHETIC_CLASSES)):
        field = _smooth_noise(rng, shape, sigma) + bias[k]
        better = field > best
        best[better] = field[better]
        out[better] = k
    return out


def _blob_changes(rng: np.random.Generator, landcover: ByteArray) -> ByteArray:
    """Second-date land cover: zero to three irregular blobs turned into another class."""
    h, w = landcover.shape
    after = landcover.copy()
    n_blobs = int(rng.choice(4, p=[0.15, 0.35, 0.3, 0.2]))
    names = [name for name, _ in _CHANGE_TARGETS]
    odds = [p for _, p in _CHANGE_TARGETS]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(n_blobs):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        radius = rng.uniform(min(h, w) / 10, min(h, w) / 4)
        wobble = _smooth_noise(rng, (h, w), max(1.0, min(h, w) / 16))
        blob = np.hypot(yy - cy, xx - cx) / radius + 0.3 * wobble < 1.0
        target = SYNTHETIC_CLASSES.index(names[int(rng.choice(len(names), p=odds))])
        after[blob] = target
    return after


def _render_s2(
    rng: np.random.Generator,
    landcover: ByteArray,
    texture: FloatArray,
    spectra: FloatArray,
    illumination: float,
) -> tuple[npt.NDArray[np.uint16], FloatArray]:
    """Render 13-band reflectance; also return the noise-free image the RGB derives from."""
    clean = spectra[:, landcover] * (illumination * (1.0 + 0.06 * texture))[None]
    noise = rng.standard_normal(clean.shape, dtype=np.float32) * (0.03 * clean + 15.0)
    s2 = np.clip(np.rint(clean + noise), 0, 65535).astype(np.uint16)
    return s2, clean


def _render_s1(
    rng: np.random.Generator, landcover: ByteArray, texture: FloatArray, backscatter: FloatArray
) -> FloatArray:
    """Render VV, VH in dB, with gamma speckle applied in linear power."""
    db = backscatter[:, landcover] + 1.0 * texture[None] + np.float32(rng.normal(0.0, 0.5))
    speckle = rng.gamma(_SPECKLE_LOOKS, 1.0 / _SPECKLE_LOOKS, db.shape).astype(np.float32)
    power = np.power(np.float32(10.0), db / np.float32(10.0)) * np.maximum(speckle, 1e-6)
    return (np.float32(10.0) * np.log10(power)).astype(np.float32)


def _render_rgb(rng: np.random.Generator, clean_s2: FloatArray) -> ByteArray:
    """Aerial RGB from the noise-free S2 red, green and blue, plus camera noise."""
    idx = [S2_BANDS.index(b) for b in ("B04", "B03", "B02")]
    dn = clean_s2[idx] * np.float32(255.0 / _RGB_FULL_SCALE)
    dn += rng.standard_normal(dn.shape, dtype=np.float32) * np.float32(3.0)
    return np.clip(np.rint(dn), 0, 255).astype(np.uint8)


def _gtiff_profile(
    count: int, dtype: str, height: int, width: int, transform: Affine
) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": count,
        "dtype": dtype,
        "height": height,
        "width": width,
        "crs": CRS.from_string(CRS_CODE),
        "transform": transform,
        "compress": "deflate",
        "predictor": 3 if dtype == "float32" else 2,
    }
    if max(height, width) > 512:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def _write(path: Path, data: npt.NDArray[Any], transform: Affine, names: Sequence[str]) -> None:
    """Write a ``(C, H, W)`` array as a compressed GeoTIFF with band descriptions."""
    count, height, width = data.shape
    with rasterio.open(
        path, "w", **_gtiff_profile(count, str(data.dtype), height, width, transform)
    ) as dst:
        dst.write(data)
        dst.descriptions = tuple(names)


def _grid(west: float, north: float) -> Affine:
    """A north-up 10 m grid whose upper-left corner is ``(west, north)``."""
    return Affine(PIXEL_SIZE_M, 0.0, west, 0.0, -PIXEL_SIZE_M, north)


def _scene_origin(index: int, size: int) -> tuple[float, float]:
    """Upper-left corner of scene ``index``: a grid of 32 columns with gaps between scenes."""
    step = (size * PIXEL_SIZE_M // 1000 + 2) * 1000
    return 300_000.0 + (index % 32) * step, 5_000_000.0 - (index // 32) * step


def _assign_splits(labels: Sequence[int], rng: np.random.Generator) -> list[str]:
    """Stratified ~60/20/20 split in which every label has at least one training scene."""
    n = len(labels)
    order = rng.permutation(n)
    rank: dict[int, int] = {}
    seen: dict[int, int] = {}
    for i in order:
        rank[int(i)] = seen.get(labels[i], 0)
        seen[labels[i]] = rank[int(i)] + 1
    splits = ["train"] * n
    # Round-robin over classes, so that val and test take one scene per class in turn.
    rest = sorted((int(i) for i in order if rank[int(i)] > 0), key=lambda i: rank[i])
    n_val = min(round(0.2 * n), len(rest))
    n_test = min(round(0.2 * n), len(rest) - n_val)
    for i in rest[:n_val]:
        splits[i] = "val"
    for i in rest[n_val : n_val + n_test]:
        splits[i] = "test"
    return splits


def _scene_labels(landcover: ByteArray) -> tuple[int, list[int]]:
    counts = np.bincount(landcover.ravel(), minlength=len(SYNTHETIC_CLASSES))
    present = np.flatnonzero(counts >= LABEL_MIN_FRACTION * landcover.size)
    return int(np.argmax(counts)), [int(c) for c in present]


def _write_scene(
    folder: Path, index: int, seed: int, size: int, dominant: int, sigs: tuple[FloatArray, ...]
) -> tuple[int, list[int]]:
    """Generate and write one scene; return its majority class and present classes."""
    spectra, backscatter = sigs
    rng = np.random.default_rng([seed, 0, index])
    folder.mkdir(parents=True, exist_ok=True)
    x0, y0 = _scene_origin(index, size)
    transform = _grid(x0, y0)
    shape = (size, size)

    landcover = _landcover(rng, shape, max(2.0, size / 10), dominant)
    texture = _smooth_noise(rng, shape, 1.0)
    # The place's own spectral variation, shared by both dates.
    local = spectra * (1.0 + 0.05 * rng.standard_normal(spectra.shape, dtype=np.float32))
    s2, clean = _render_s2(rng, landcover, texture, local, float(rng.uniform(0.92, 1.08)))
    s1 = _render_s1(rng, landcover, texture, backscatter)
    rgb = _render_rgb(rng, clean)
    after = _blob_changes(rng, landcover)
    s2_t2, _ = _render_s2(rng, after, texture, local, float(rng.uniform(0.92, 1.08)))
    change = (landcover != after).astype(np.uint8)

    _write(folder / "s2.tif", s2, transform, S2_BANDS)
    _write(folder / "s1.tif", s1, transform, S1_BANDS)
    _write(folder / "rgb.tif", rgb, transform, RGB_BANDS)
    _write(folder / "landcover.tif", landcover[None], transform, ("landcover",))
    _write(folder / "s2_t2.tif", s2_t2, transform, S2_BANDS)
    _write(folder / "landcover_t2.tif", after[None], transform, ("landcover",))
    _write(folder / "change.tif", change[None], transform, ("change",))
    return _scene_labels(landcover)


def _write_large(
    folder: Path,
    seed: int,
    size: int,
    sigs: tuple[FloatArray, ...],
    step: Callable[[], None],
) -> None:
    """Write the large scene block by block, so memory holds two full-size maps only."""
    spectra, backscatter = sigs
    rng = np.random.default_rng([seed, 1])
    folder.mkdir(parents=True, exist_ok=True)
    # North of the scene grid, so that it overlaps no scene.
    transform = _grid(300_000.0, 5_010_000.0 + size * PIXEL_SIZE_M)
    shape = (size, size)
    landcover = _landcover(rng, shape, _LARGE_SIGMA, None)
    texture = _smooth_noise(rng, shape, 1.0)
    files = {
        "s2": (len(S2_BANDS), "uint16", S2_BANDS),
        "s1": (len(S1_BANDS), "float32", S1_BANDS),
        "rgb": (len(RGB_BANDS), "uint8", RGB_BANDS),
        "landcover": (1, "uint8", ("landcover",)),
    }
    outs = {
        key: rasterio.open(
            folder / f"{key}.tif", "w", **_gtiff_profile(count, dtype, size, size, transform)
        )
        for key, (count, dtype, _) in files.items()
    }
    try:
        for key, (_, _, names) in files.items():
            outs[key].descriptions = tuple(names)
        for block, top in enumerate(range(0, size, _LARGE_BLOCK_ROWS)):
            rows = slice(top, min(size, top + _LARGE_BLOCK_ROWS))
            window = Window(0, top, size, rows.stop - top)
            block_rng = np.random.default_rng([seed, 2, block])
            lc, tex = landcover[rows], texture[rows]
            s2, clean = _render_s2(block_rng, lc, tex, spectra, 1.0)
            outs["s2"].write(s2, window=window)
            outs["s1"].write(_render_s1(block_rng, lc, tex, backscatter), window=window)
            outs["rgb"].write(_render_rgb(block_rng, clean), window=window)
            outs["landcover"].write(lc[None], window=window)
            step()
    finally:
        for dst in outs.values():
            dst.close()


def generate(
    root: Path,
    n: int = 120,
    size: int = 64,
    seed: int = 0,
    large: int = 0,
    progress: ProgressFn | None = None,
) -> Path:
    """Write a synthetic multi-sensor dataset in the layout described in this module.

    Args:
        root: the dataset folder; created if needed, files in it are overwritten.
        n: number of scenes.
        size: scene width and height in pixels (10 m).
        seed: random seed; the same seed writes byte-identical files.
        large: side in pixels of one extra large scene under ``root/large`` (0: none).
        progress: called as ``progress(done, total)`` after each unit of work: one per scene,
            plus one per block of 256 rows of the large scene.

    Returns:
        ``root``.

    Raises:
        DataError: if ``n``, ``size`` or ``large`` is out of range.
    """
    if n < 1 or size < 8 or large < 0:
        raise DataError(
            f"cannot generate n={n} scenes of size={size} with large={large}",
            where=str(root),
            hint="use n >= 1, size >= 8 and large >= 0",
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sigs = _signatures()
    large_blocks = math.ceil(large / _LARGE_BLOCK_ROWS) if large else 0
    total = n + large_blocks
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    split_rng = np.random.default_rng([seed, 3])
    # Balanced dominant classes, in random order.
    dominants = split_rng.permutation(np.arange(n) % len(SYNTHETIC_CLASSES))
    width = max(4, len(str(n - 1)))
    ids = [f"s{i:0{width}d}" for i in range(n)]
    labels: list[tuple[int, list[int]]] = []
    for i, scene_id in enumerate(ids):
        labels.append(
            _write_scene(root / "scenes" / scene_id, i, seed, size, int(dominants[i]), sigs)
        )
        step()
    splits = _assign_splits([label for label, _ in labels], split_rng)

    with open(root / "scenes.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "split", "label", "labels"])
        for scene_id, split, (label, present) in zip(ids, splits, labels, strict=True):
            writer.writerow([scene_id, split, label, ";".join(str(c) for c in present)])

    if large:
        _write_large(root / LARGE_SCENE, seed, large, sigs, step)

    meta = {
        "format": FORMAT,
        "version": VERSION,
        "seed": seed,
        "n": n,
        "size": size,
        "large": large,
        "pixel_size_m": PIXEL_SIZE_M,
        "classes": list(SYNTHETIC_CLASSES),
        "crs": CRS_CODE,
        "sensors": SENSORS,
    }
    (root / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return root


def large_scene_path(root: Path, sensor: str = "s2") -> Path:
    """Return the path of one file of the large scene.

    Args:
        root: the dataset folder.
        sensor: ``s2``, ``s1``, ``rgb`` or ``landcover``.

    Raises:
        DataError: for an unknown sensor, or when the large scene was not generated.
    """
    if sensor not in LARGE_FILES:
        raise DataError(
            f"unknown large-scene file {sensor!r}",
            where=str(root),
            hint=f"choose among {', '.join(LARGE_FILES)}",
        )
    return require_file(
        Path(root) / LARGE_SCENE / f"{sensor}.tif",
        f"{LARGE_SCENE}/{{{','.join(LARGE_FILES)}}}.tif, written by generate(large > 0)",
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


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
        self.root = require_dir(Path(root), LAYOUT)
        meta_path = require_file(self.root / "synthetic.json", LAYOUT)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"unreadable metadata ({err})", where=str(meta_path)) from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataError(
                f"not an {FORMAT} metadata file", where=str(meta_path), hint=f"expected {LAYOUT}"
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
                f"metadata lacks {err}", where=str(meta_path), hint=f"expected {LAYOUT}"
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
        path = require_file(self.root / "scenes.csv", LAYOUT)
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
        require_file(path, LAYOUT)
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


__all__ = [
    "LARGE_SCENE",
    "LAYOUT",
    "SyntheticDataset",
    "SyntheticScenes",
    "build",
    "generate",
    "large_scene_path",
]
