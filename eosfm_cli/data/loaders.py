"""Data loaders with a seeded shuffle, batching as the dataset asks."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


def make_loader(
    ds: Dataset[Any], batch_size: int, num_workers: int, shuffle: bool, seed: int
) -> DataLoader[Any]:
    """A DataLoader with a seeded shuffle.

    A dataset whose samples do not stack (detection: one box list per image) provides its own
    batching as a ``collate_fn`` attribute; the default collation is used otherwise.
    """
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=getattr(ds, "collate_fn", None),
        generator=gen if shuffle else None,
        persistent_workers=num_workers > 0,
        drop_last=False,
    )
