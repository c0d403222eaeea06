"""Seeded hold-out splits that loaders draw themselves.

Loaders whose release has no validation (or test) split carve one out with :func:`split_keys`:
sorted keys, shuffled by the request's seed, cut into fractions, so a split never depends on
file-system order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

K = TypeVar("K", bound=Hashable)


def split_keys(
    keys: Iterable[K],
    seed: int,
    fractions: Mapping[str, float],
    *,
    sort_key: Callable[[K], Any] = repr,
) -> dict[str, list[K]]:
    """Split keys into named parts, seeded and disjoint.

    The unique keys are sorted by ``sort_key``, shuffled by ``seed`` and cut in the order of
    ``fractions``. The sort only fixes the starting order, but that order decides the draw:
    ``repr`` (the default) orders any hashable keys, ``str`` orders string keys the plain way.
    A loader must keep the ``sort_key`` it was released with, or its splits change.

    Args:
        keys: the keys (scenes, images, fields); duplicates are merged.
        seed: the random seed.
        fractions: share of the keys for each named hold-out part (``{"val": 0.1}``); the rest
            goes to ``train``. Each hold-out part with a positive fraction gets at least one key
            while ``train`` keeps one.
        sort_key: orders the keys before the shuffle and within each part.

    Returns:
        ``{<part>: [...], "train": [...]}``, each sorted by ``sort_key``.
    """
    order = sorted(set(keys), key=sort_key)
    random.Random(seed).shuffle(order)
    out: dict[str, list[K]] = {}
    start = 0
    for part, fraction in fractions.items():
        n = round(len(order) * fraction)
        if fraction > 0 and n == 0 and len(order) - start > 1:
            n = 1
        n = min(n, max(len(order) - start - 1, 0))
        out[part] = sorted(order[start : start + n], key=sort_key)
        start += n
    out["train"] = sorted(order[start:], key=sort_key)
    return out
