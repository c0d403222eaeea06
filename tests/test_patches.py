"""Windowed reading of large images (eosfm_cli.data.patches) on the committed fixtures."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio.io

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.patches import hold_out, random_windows, tile_windows
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.errors import DataError

DATA = Path(__file__).resolve().parent / "data"
#: experiment -> fixture folder, for the loaders that read windows
WINDOWED = {
    "inria_aerial": "inria",
    "deepglobe_lcc": "deepglobe",
    "landcoverai": "landcoverai",
    "loveda": "loveda",
}


def coverage(windows: list[Any], height: int, width: int) -> np.ndarray:
    hits = np.zeros((height, width), dtype=np.uint8)
    for w in windows:
        hits[w.row : w.row + w.height, w.col : w.col + w.width] += 1
    return hits


@pytest.mark.parametrize(
    ("height", "width", "size", "count"),
    [(5000, 5000, 512, 100), (2448, 2448, 512, 25), (1024, 1024, 512, 4), (72, 40, 32, 6)],
)
def test_tiles_cover_the_image_with_full_size_tiles(
    height: int, width: int, size: int, count: int
) -> None:
    windows = tile_windows(height, width, size)
    assert len(windows) == count
    assert all(w.height == size and w.width == size for w in windows)
    assert coverage(windows, height, width).min() >= 1


def test_small_image_is_one_window() -> None:
    assert [(w.height, w.width) for w in tile_windows(20, 30, 32)] == [(20, 30)]
    assert [(w.height, w.width) for w in tile_windows(20, 30, None)] == [(20, 30)]
    assert len(random_windows(20, 30, 32, 5, random.Random(0))) == 1


def test_random_windows_are_inside_and_seeded() -> None:
    first = random_windows(100, 80, 32, 50, random.Random(3))
    assert len(first) == 50
    assert all(0 <= w.row <= 68 and 0 <= w.col <= 48 for w in first)
    assert first == random_windows(100, 80, 32, 50, random.Random(3))
    assert first != random_windows(100, 80, 32, 50, random.Random(4))


def test_hold_out_is_seeded_and_never_takes_everything() -> None:
    names = [f"n{i}" for i in range(20)]
    assert hold_out(names, 0.1, 0) == hold_out(list(reversed(names)), 0.1, 0)
    assert len(hold_out(names, 0.1, 0)) == 2
    assert len(hold_out(names[:2], 0.9, 0)) == 1
    assert hold_out(names[:1], 0.5, 0) == set()


def request(experiment: str, split: str, **options: Any) -> DatasetRequest:
    spec = EXPERIMENTS[experiment]
    return DatasetRequest(
        experiment,
        DATA / WINDOWED[experiment],
        split,  # type: ignore[arg-type]
        spec.bands,
        spec.classes,
        patch_size=32,
        ignore_index=spec.ignore_index,
        options={**spec.options, **options},
    )


@pytest.mark.parametrize("experiment", sorted(WINDOWED))
def test_reads_are_windows_never_whole_images(
    experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real_read = rasterio.io.DatasetReader.read

    def spy(self: Any, *args: Any, **kw: Any) -> Any:
        window = kw.get("window")
        assert window is not None, "whole-file read"
        calls.append((int(window.height), int(window.width)))
        assert window.height < self.height or window.width < self.width
        return real_read(self, *args, **kw)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    for split in ("train", "val", "test"):
        ds = request(experiment, split)
        built = EXPERIMENTS[experiment].load_function()(ds)
        for i in range(len(built)):
            built[i]
    assert calls and set(calls) == {(32, 32)}


@pytest.mark.parametrize("experiment", sorted(WINDOWED))
@pytest.mark.parametrize("value", [0, -2, 1.5, "many"])
def test_bad_crop_count_is_a_data_error(experiment: str, value: Any) -> None:
    with pytest.raises(DataError, match="crops_per_image"):
        EXPERIMENTS[experiment].load_function()(request(experiment, "train", crops_per_image=value))
