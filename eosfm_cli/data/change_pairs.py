"""Windowed reading of bi-temporal change-detection scenes (LEVIR-CD+, OSCD).

A :class:`ChangeScene` names, for each channel the model wants, the file and the 1-based band
that holds it on each date (one multi-band file per date for LEVIR-CD+, one file per band for
OSCD), and the change mask. :class:`WindowedChangePairs` reads only the window of a sample from
every file, as :class:`~eosfm_cli.data.windows.WindowedSegmentation` does for segmentation:
seeded random crops for training, a covering grid of tiles for validation and test.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.windows import PatchWindow, plan_windows, read_window

#: One channel of a date: a file and its 1-based band.
Channel = tuple[Path, int]


@dataclass(frozen=True)
class ChangeScene:
    """One bi-temporal scene.

    Attributes:
        name: scene identifier (file stem or city).
        date1: the channels of the first date, in the requested band order.
        date2: the channels of the second date, same order.
        mask: the change mask file (band 1; any non-zero value is change).
        height: scene height in pixels.
        width: scene width in pixels.
    """

    name: str
    date1: tuple[Channel, ...]
    date2: tuple[Channel, ...]
    mask: Path
    height: int
    width: int


def read_channels(
    channels: Sequence[Channel], window: PatchWindow, layout: str
) -> np.ndarray[tuple[int, int, int], np.dtype[np.float32]]:
    """Read one window of every channel, each file opened once, as ``float32 (C, h, w)``."""
    out = np.empty((len(channels), window.height, window.width), np.float32)
    files: dict[Path, list[int]] = {}
    for i, (path, _) in enumerate(channels):
        files.setdefault(path, []).append(i)
    for path, positions in files.items():
        data = read_window(path, window, [channels[i][1] for i in positions], layout)
        out[positions] = data.astype(np.float32)
    return out


class WindowedChangePairs(Dataset[dict[str, Tensor]]):
    """Change-detection samples read as windows of both dates and the mask.

    Args:
        scenes: the scenes of the split.
        split: ``train`` draws random crops, ``val`` and ``test`` tile.
        patch_size: crop / tile size (``None``: whole scenes).
        crops_per_image: random crops per scene in the training split.
        seed: seed of the training crops (drawn once, the same on every run).
        layout: the release layout, for error messages.
    """

    def __init__(
        self,
        scenes: Sequence[ChangeScene],
        *,
        split: str,
        patch_size: int | None,
        crops_per_image: int,
        seed: int,
        layout: str,
    ) -> None:
        self.scenes = list(scenes)
        self.layout = layout
        rng = random.Random(seed)
        #: (scene index, window) of every sample
        self.windows: list[tuple[int, PatchWindow]] = []
        for i, scene in enumerate(self.scenes):
            found = plan_windows(scene.height, scene.width, patch_size, split, rng, crops_per_image)
            self.windows.extend((i, w) for w in found)

    def __len__(self) -> int:
        """Return the number of windows."""
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return ``{"image", "image2": float32 (C, h, w), "mask": int64 (h, w) 0/1}``."""
        i, window = self.windows[index]
        scene = self.scenes[i]
        image = read_channels(scene.date1, window, self.layout)
        image2 = read_channels(scene.date2, window, self.layout)
        mask = (read_window(scene.mask, window, [1], self.layout)[0] > 0).astype(np.int64)
        return {
            "image": torch.from_numpy(image),
            "image2": torch.from_numpy(image2),
            "mask": torch.from_numpy(mask),
        }
