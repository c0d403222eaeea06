"""Label fractions of a benchmark: seeded, class-stratified subsets of a train split.

Every model of a benchmark trains on the same subset for a given fraction and seed. A sample's
stratum is its class (classification), its most frequent labelled class (segmentation), whether
it changes (change detection), its first positive label (multi-label) or its quintile of the
mean target (regression). Each stratum keeps ``round(fraction * size)`` samples, half up. A
fraction that would leave a class of the split with no sample is refused; for dense tasks
(segmentation, change detection) a class counts as kept while some kept sample has a pixel of
it, so a small stratum may go when its classes live on in other samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from eosfm_cli.errors import ProfileError


def strata(task: str, targets: Sequence[Any], ignore_index: int | None) -> list[int]:
    """The stratum of every sample, from its target tensor."""
    out = []
    for t in targets:
        t = np.asarray(t)
        if task == "classification":
            out.append(int(t))
        elif task == "multilabel":
            hits = np.flatnonzero(t > 0.5)
            out.append(int(hits[0]) if hits.size else -1)
        elif task == "regression":
            out.append(0)  # replaced by quintiles below
        else:
            valid = t[t != ignore_index] if ignore_index is not None else t.reshape(-1)
            counts = np.bincount(valid.astype(np.int64).reshape(-1)) if valid.size else None
            if task == "change_detection":
                out.append(int(counts is not None and counts.size > 1 and counts[1:].sum() > 0))
            else:
                out.append(int(counts.argmax()) if counts is not None else -1)
    if task == "regression" and targets:
        means = np.array([float(np.asarray(t, dtype=np.float64).mean()) for t in targets])
        edges = np.quantile(means, [0.2, 0.4, 0.6, 0.8])
        out = np.searchsorted(edges, means, side="right").tolist()
    return out


def present_classes(targets: Sequence[Any], ignore_index: int | None) -> list[set[int]]:
    """The labelled classes each dense target holds (for :func:`label_subset`'s check)."""
    out = []
    for t in targets:
        values = np.unique(np.asarray(t))
        out.append({int(v) for v in values if ignore_index is None or v != ignore_index})
    return out


def label_subset(
    labels: Sequence[int],
    fraction: float,
    seed: int,
    classes: Sequence[str] = (),
    where: str = "--fractions",
    present: Sequence[set[int]] | None = None,
) -> list[int]:
    """The sorted indices of a seeded, stratified ``fraction`` of the samples.

    Args:
        labels: the stratum of each sample.
        fraction: in (0, 1]; 1 keeps every sample.
        seed: the draw's seed.
        classes: class names, to name an emptied class in the error.
        where: what to name in the error.
        present: for dense tasks, the classes each sample holds: the check is then that
            every class of the split keeps a pixel, not that every stratum keeps a sample.

    Raises:
        ProfileError: for a fraction outside (0, 1] or one that leaves a class empty.
    """
    if not 0 < fraction <= 1:
        raise ProfileError(
            f"label fraction {fraction:g} is not in (0, 1]", where=where, hint="e.g. 0.1,0.5,1.0"
        )
    if fraction == 1:
        return list(range(len(labels)))
    arr = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for value in np.unique(arr):
        members = np.flatnonzero(arr == value)
        n = math.floor(fraction * len(members) + 0.5)
        if n == 0 and present is None:
            name = classes[value] if 0 <= value < len(classes) else str(value)
            smallest = 1 / len(members)
            raise ProfileError(
                f"label fraction {fraction:g} leaves class {name!r} with no training sample "
                f"(it has {len(members)})",
                where=where,
                hint=f"use fractions of at least {smallest:.3g}",
            )
        keep.extend(rng.choice(members, n, replace=False).tolist())
    if present is not None:
        lost = set().union(*present) - set().union(*(present[i] for i in keep))
        if lost:
            value = min(lost)
            name = classes[value] if 0 <= value < len(classes) else str(value)
            raise ProfileError(
                f"label fraction {fraction:g} leaves class {name!r} with no labelled pixel in "
                "the training subset",
                where=where,
                hint="use a larger fraction",
            )
    return sorted(keep)
