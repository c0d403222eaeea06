"""Frozen-feature cache: run the frozen ensemble once per sample, train heads on the cache.

A cache entry is a folder ``cache/features/<key>/`` holding one memory-mapped fp16 ``.npy`` per
(date, specialist, pyramid level), the targets, and ``meta.json`` with the key parts and the
sha256 of every file. The key is a hash of the ensemble file's sha256, the dataset, its root,
the split, the input bands and the preprocessing (ensemble options). An entry is built in a
temporary folder and renamed into place when complete; on load, a missing file, a size or hash
mismatch, or a different key makes it **stale or corrupt: it is deleted and rebuilt**, never
trusted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from eosfm_cli.console import info
from eosfm_cli.io import json_digest, sha256_file

CACHE_VERSION = 1


def cache_key(parts: Mapping[str, Any]) -> str:
    """Stable hash of the key parts."""
    return json_digest({**parts, "version": CACHE_VERSION}, 24)


@dataclass
class CacheStatus:
    """Why a cache was used, built or bypassed (one log line)."""

    used: bool
    reason: str


class CachedFeatures(Dataset[dict[str, Any]]):
    """A dataset over a cache entry: per-specialist pyramids (fp32) and targets."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.meta = meta
        self.n = int(meta["n"])
        self.dates = int(meta["dates"])
        self.layout = meta["layout"]  # [specialist][level] -> shape (C, h, w)
        self.arrays = [
            [
                [
                    np.load(folder / f"f{d}_{s}_{lv}.npy", mmap_mode="r")
                    for lv in range(len(self.layout[s]))
                ]
                for s in range(len(self.layout))
            ]
            for d in range(self.dates)
        ]
        self.target = np.load(folder / "target.npy", mmap_mode="r")
        self.size = tuple(meta["size"])

    def __len__(self) -> int:
        return self.n

    def get_batch(self, indices: list[int]) -> dict[str, Any]:
        """A whole batch at once: one fancy-indexed read per array, no per-sample collate."""
        idx = np.sort(np.asarray(indices))

        def pyr(d: int) -> list[list[torch.Tensor]]:
            return [
                [torch.from_numpy(np.asarray(a[idx], dtype=np.float32)) for a in spec]
                for spec in self.arrays[d]
            ]

        batch: dict[str, Any] = {
            "features": pyr(0),
            "target": torch.from_numpy(np.array(self.target[idx])),
        }
        if self.dates == 2:
            batch["features2"] = pyr(1)
        return batch

    def __getitem__(self, i: int) -> dict[str, Any]:
        def pyr(d: int) -> list[list[torch.Tensor]]:
            return [
                [torch.from_numpy(np.asarray(a[i], dtype=np.float32)) for a in spec]
                for spec in self.arrays[d]
            ]

        item: dict[str, Any] = {
            "features": pyr(0),
            "target": torch.from_numpy(np.array(self.target[i])),
        }
        if self.dates == 2:
            item["features2"] = pyr(1)
        return item


def _target_of(sample: Mapping[str, Any]) -> torch.Tensor:
    return sample["mask"] if "mask" in sample else sample["label"]


class FeatureCache:
    """One cache entry.

    Args:
        root: the cache folder (``workspace/cache/features``).
        key_parts: what identifies the features (see the module docstring).
    """

    def __init__(self, root: Path, key_parts: Mapping[str, Any]) -> None:
        self.key_parts = dict(key_parts)
        self.key = cache_key(self.key_parts)
        self.folder = root / self.key

    def load(self) -> CachedFeatures | None:
        """Return the cached features, or ``None`` (after deleting it) if absent or invalid."""
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            return None
        problem = None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("key") != self.key or meta.get("key_parts") != json.loads(
                json.dumps(self.key_parts, default=str)
            ):
                problem = "stale (key mismatch)"
            else:
                for name, digest in meta["files"].items():
                    path = self.folder / name
                    if not path.is_file() or sha256_file(path) != digest:
                        problem = f"corrupt ({name} changed)"
                        break
        except (ValueError, KeyError, OSError) as err:
            problem = f"corrupt ({err})"
        if problem is None:
            return CachedFeatures(self.folder, meta)
        info(f"feature cache {self.key}: {problem}; rebuilding")
        shutil.rmtree(self.folder, ignore_errors=True)
        return None

    def estimate_bytes(self, model: Any, sample: Mapping[str, Any], n: int) -> int:
        """Bytes the cache would take for ``n`` samples like ``sample``."""
        with torch.inference_mode():
            feats = model.specialist_features(sample["image"].unsqueeze(0))
        per = sum(int(f[0].numel()) for pyr in feats for f in pyr) * 2  # fp16
        dates = 2 if "image2" in sample else 1
        return per * n * dates

    def build(
        self,
        model: Any,
        dataset: Dataset[Any],
        batch_size: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> CachedFeatures:
        """Run the frozen ensemble over ``dataset`` once and write the cache entry."""
        from numpy.lib.format import open_memmap

        n = len(dataset)  # type: ignore[arg-type]
        tmp = self.folder.parent / f".{self.key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
        arrays: list[list[list[Any]]] | None = None
        target = None
        layout: list[list[list[int]]] = []
        dates = 1
        done = 0
        size: tuple[int, int] = (0, 0)
        try:
            for batch in loader:
                x = batch["image"]
                size = (int(x.shape[-2]), int(x.shape[-1]))
                inputs = [x] + ([batch["image2"]] if "image2" in batch else [])
                with torch.inference_mode():
                    feats = [model.specialist_features(xi) for xi in inputs]
                t = _target_of(batch)
                if arrays is None:
                    dates = len(inputs)
                    layout = [[list(f.shape[1:]) for f in pyr] for pyr in feats[0]]
                    arrays = [
                        [
                            [
                                open_memmap(
                                    tmp / f"f{d}_{s}_{lv}.npy",
                                    mode="w+",
                                    dtype=np.float16,
                                    shape=(n, *shape),
                                )
                                for lv, shape in enumerate(spec)
                            ]
                            for s, spec in enumerate(layout)
                        ]
                        for d in range(dates)
                    ]
                    target = open_memmap(
                        tmp / "target.npy",
                        mode="w+",
                        dtype=t.numpy().dtype,
                        shape=(n, *t.shape[1:]),
                    )
                b = x.shape[0]
                for d in range(dates):
                    for s, pyr in enumerate(feats[d]):
                        for lv, f in enumerate(pyr):
                            arrays[d][s][lv][done : done + b] = f.to(torch.float16).numpy()
                assert target is not None
                target[done : done + b] = t.numpy()
                done += b
                if progress is not None:
                    progress(done, n)
            assert arrays is not None and target is not None
            for per_date in arrays:
                for per_spec in per_date:
                    for arr in per_spec:
                        arr.flush()
            target.flush()
            del arrays, target
            files = {p.name: sha256_file(p) for p in sorted(tmp.glob("*.npy"))}
            meta = {
                "key": self.key,
                "key_parts": json.loads(json.dumps(self.key_parts, default=str)),
                "n": n,
                "dates": dates,
                "layout": layout,
                "size": list(size),
                "files": files,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            shutil.rmtree(self.folder, ignore_errors=True)
            os.replace(tmp, self.folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return CachedFeatures(self.folder, meta)
