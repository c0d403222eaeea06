"""Per-band mean and std of a training split: one streaming pass, cached as JSON."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from eosfm_cli.errors import DataError
from eosfm_cli.io import atomic_write_json, json_digest


def _stats_key(parts: Mapping[str, Any]) -> str:
    return json_digest(dict(parts), 16)


def band_statistics(
    ds: Dataset[Any],
    bands: Sequence[str],
    cache_dir: Path | None,
    key_parts: Mapping[str, Any],
    max_samples: int = 5000,
    seed: int = 0,
    write: bool = True,
) -> tuple[list[float], list[float]]:
    """Per-band mean and std of raw values over a dataset, in one streaming pass, cached.

    Sums and sums of squares are accumulated in float64 per band, over all pixels of at most
    ``max_samples`` samples (a seeded subset of larger datasets); non-finite pixels are left
    out. Change-detection samples contribute both dates.

    Args:
        ds: the training split.
        bands: band names (for the cache record).
        cache_dir: folder of the JSON cache (``None``: no caching).
        key_parts: what identifies the data (dataset, root, bands, split seed...).
        max_samples: cap on the number of samples read.
        seed: seed of the subset.
        write: store a computed result in the cache (off on DDP ranks other than 0).

    Returns:
        ``(mean, std)`` per band.
    """
    key = _stats_key({**key_parts, "bands": list(bands), "max_samples": max_samples})
    path = cache_dir / f"{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        with contextlib.suppress(ValueError, KeyError, OSError):
            data = json.loads(path.read_text())
            if data.get("bands") == list(bands):
                return [float(v) for v in data["mean"]], [float(v) for v in data["std"]]
    n = len(ds)  # type: ignore[arg-type]
    if n == 0:
        raise DataError(
            "the training split is empty",
            where=str(key_parts.get("root")),
            hint="check the dataset folder and its split files",
        )
    idx = list(range(n))
    if n > max_samples:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=g)[:max_samples].tolist()
    c = len(bands)
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = torch.zeros(c, dtype=torch.float64)
    for i in idx:
        sample = ds[i]
        for key_img in ("image", "image2"):
            img = sample.get(key_img)
            if img is None:
                continue
            x = img.reshape(c, -1).to(torch.float64)
            finite = torch.isfinite(x)
            x = torch.where(finite, x, torch.zeros_like(x))
            total += x.sum(1)
            total_sq += (x * x).sum(1)
            count += finite.sum(1)
    if bool((count == 0).any()):
        raise DataError(
            "some bands have no finite pixel in the training split",
            where=str(key_parts.get("root")),
            hint="check for nodata-only images",
        )
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0)
    std = var.sqrt().clamp_min(1e-6)
    out_mean, out_std = mean.tolist(), std.tolist()
    if path is not None and write:
        atomic_write_json(
            path,
            {
                "bands": list(bands),
                "mean": out_mean,
                "std": out_std,
                "samples": len(idx),
                "key": dict(key_parts),
            },
        )
    return out_mean, out_std


def normalisation_statistics(
    literature_mean: Mapping[str, float],
    literature_std: Mapping[str, float],
    ds: Dataset[Any],
    bands: Sequence[str],
    cache_dir: Path | None,
    key_parts: Mapping[str, Any],
    write: bool = True,
) -> tuple[list[float], list[float], str]:
    """The statistics a specialist normalises with, and where they come from.

    Published values win when they cover every band; otherwise :func:`band_statistics` of the
    training split.

    Args:
        literature_mean: per-band mean from the literature, by band name (may be empty).
        literature_std: per-band std from the literature, by band name.
        ds: the training split.
        bands: band names, in input order.
        cache_dir: folder of the JSON cache (``None``: no caching).
        key_parts: what identifies the data (see :func:`band_statistics`).
        write: store a computed result in the cache.

    Returns:
        ``(mean, std, source)``; ``source`` is ``"literature"`` or
        ``"train split (streaming pass)"``.
    """
    bands = list(bands)
    if literature_mean and all(b in literature_mean and b in literature_std for b in bands):
        return (
            [literature_mean[b] for b in bands],
            [literature_std[b] for b in bands],
            "literature",
        )
    mean, std = band_statistics(ds, bands, cache_dir, key_parts, write=write)
    return mean, std, "train split (streaming pass)"
