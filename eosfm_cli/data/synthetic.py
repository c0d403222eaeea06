"""Built-in synthetic multi-sensor data: its on-disk format and its seeded generator.

The generator draws land cover from spatially coherent random fields and renders each scene
as Sentinel-2, Sentinel-1 and aerial RGB images that share one grid, plus a second
Sentinel-2 date with blob-shaped changes. It needs only numpy and rasterio, so that it runs
without torch. :mod:`eosfm_cli.data.synthetic_loader` reads it back.

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
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.windows import Window

from eosfm_cli.data.base import require_file
from eosfm_cli.data.registry import SYNTHETIC_CLASSES
from eosfm_cli.data.synthetic_render import (
    RGB_BANDS,
    S1_BANDS,
    S2_BANDS,
    ByteArray,
    FloatArray,
    blob_changes,
    draw_landcover,
    render_rgb,
    render_s1,
    render_s2,
    signatures,
    smooth_noise,
)
from eosfm_cli.errors import DataError

FORMAT = "eosfm-synthetic"
VERSION = 1
CRS_CODE = "EPSG:32631"
PIXEL_SIZE_M = 10.0
LARGE_SCENE = "large"
LABEL_MIN_FRACTION = 0.05

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

_LARGE_BLOCK_ROWS = 256
_LARGE_SIGMA = 6.0

ProgressFn = Callable[[int, int], None]


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

    landcover = draw_landcover(rng, shape, max(2.0, size / 10), dominant)
    texture = smooth_noise(rng, shape, 1.0)
    # The place's own spectral variation, shared by both dates.
    local = spectra * (1.0 + 0.05 * rng.standard_normal(spectra.shape, dtype=np.float32))
    s2, clean = render_s2(rng, landcover, texture, local, float(rng.uniform(0.92, 1.08)))
    s1 = render_s1(rng, landcover, texture, backscatter)
    rgb = render_rgb(rng, clean)
    after = blob_changes(rng, landcover)
    s2_t2, _ = render_s2(rng, after, texture, local, float(rng.uniform(0.92, 1.08)))
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
    landcover = draw_landcover(rng, shape, _LARGE_SIGMA, None)
    texture = smooth_noise(rng, shape, 1.0)
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
            s2, clean = render_s2(block_rng, lc, tex, spectra, 1.0)
            outs["s2"].write(s2, window=window)
            outs["s1"].write(render_s1(block_rng, lc, tex, backscatter), window=window)
            outs["rgb"].write(render_rgb(block_rng, clean), window=window)
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
    sigs = signatures()
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
