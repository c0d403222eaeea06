"""Windowed reading, option parsing and seeded splits (eosfm_cli.data.windows)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio.io

from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import bool_option, check_options, fraction_option, int_option
from eosfm_cli.data.registry import EXPERIMENTS
from eosfm_cli.data.windows import PatchWindow, plan_windows, random_windows, tile_windows
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
        hits[w.slices] += 1
    return hits


# window plans


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


def test_last_tiles_are_moved_inwards() -> None:
    starts = sorted({w.row for w in tile_windows(72, 40, 32)})
    assert starts == [0, 32, 40]
    assert [(w.row, w.col) for w in tile_windows(64, 40, 32)] == [
        (0, 0),
        (0, 8),
        (32, 0),
        (32, 8),
    ]


def test_small_image_is_one_window() -> None:
    assert [(w.height, w.width) for w in tile_windows(20, 30, 32)] == [(20, 30)]
    assert [(w.height, w.width) for w in tile_windows(20, 30, None)] == [(20, 30)]
    assert len(random_windows(20, 30, 32, 5, random.Random(0))) == 1
    # a side shorter than the patch is kept whole, the other one is tiled
    assert {(w.height, w.width) for w in tile_windows(20, 70, 32)} == {(20, 32)}


def test_random_windows_are_inside_and_seeded() -> None:
    first = random_windows(100, 80, 32, 50, random.Random(3))
    assert len(first) == 50
    assert all(0 <= w.row <= 68 and 0 <= w.col <= 48 for w in first)
    assert first == random_windows(100, 80, 32, 50, random.Random(3))
    assert first != random_windows(100, 80, 32, 50, random.Random(4))
    # pinned: changing the draw order changes every loader's training crops
    pinned = [(w.row, w.col) for w in random_windows(100, 80, 32, 3, random.Random(0))]
    assert pinned == [(49, 48), (53, 2), (33, 32)]


def test_plan_windows_tiles_eval_splits_and_crops_train() -> None:
    grid = tile_windows(100, 80, 32)
    for split in ("val", "test"):
        assert plan_windows(100, 80, 32, split, random.Random(0)) == grid
    # as many crops as tiles by default, and the same draw as random_windows
    assert plan_windows(100, 80, 32, "train", random.Random(5)) == random_windows(
        100, 80, 32, len(grid), random.Random(5)
    )
    assert len(plan_windows(100, 80, 32, "train", random.Random(5), crops=3)) == 3
    assert plan_windows(100, 80, None, "train", random.Random(5)) == [PatchWindow(0, 0, 100, 80)]


def test_window_slices_and_rasterio_window_agree() -> None:
    window = PatchWindow(row=3, col=5, height=4, width=6)
    image = np.arange(20 * 20).reshape(20, 20)
    assert image[window.slices].shape == (4, 6)
    assert image[window.slices][0, 0] == image[3, 5]
    rio = window.to_rasterio()
    assert (rio.row_off, rio.col_off, rio.height, rio.width) == (3, 5, 4, 6)


# seeded splits


def test_split_keys_is_seeded_disjoint_and_never_takes_everything() -> None:
    names = [f"n{i}" for i in range(20)]
    parts = split_keys(names, 0, {"val": 0.1})
    assert parts == split_keys(list(reversed(names)) + names, 0, {"val": 0.1})
    assert len(parts["val"]) == 2 and len(parts["train"]) == 18
    assert set(parts["val"]).isdisjoint(parts["train"])
    assert parts != split_keys(names, 1, {"val": 0.1})
    assert len(split_keys(names[:2], 0, {"val": 0.9})["val"]) == 1
    assert split_keys(names[:1], 0, {"val": 0.5}) == {"val": [], "train": ["n0"]}
    assert split_keys(names[:5], 0, {"val": 0.01})["val"] != []
    assert split_keys(names, 0, {"val": 0.0})["val"] == []


def test_split_keys_cuts_parts_in_order() -> None:
    keys = [("t1", 3), ("t1", 1), ("t2", 2), ("t2", 5), ("t3", 4)]
    parts = split_keys(keys, 1, {"test": 0.2, "val": 0.2})
    assert parts == {
        "test": [("t2", 2)],
        "val": [("t2", 5)],
        "train": [("t1", 1), ("t1", 3), ("t3", 4)],
    }


def test_split_keys_sort_key_decides_the_draw() -> None:
    # "a!" sorts after "a" as a string but before it as a repr ('!' < "'"), so the start
    # order and the draw differ; each loader keeps the sort_key it was released with
    names = ["a", "a!", "a b", "it's", "b", "c", "d", "e"]
    assert split_keys(names, 0, {"val": 0.25}, sort_key=str)["val"] == ["a b", "c"]
    assert split_keys(names, 0, {"val": 0.25})["val"] == ["a b", "b"]


# dataset options


def test_int_option() -> None:
    assert int_option({}, "n", 4) == 4
    assert int_option({"n": 2}, "n", 4) == 2
    assert int_option({}, "n", None) is None
    assert int_option({"n": None}, "n", None) is None
    for bad in (0, -2, 1.5, "many", True, None):
        with pytest.raises(DataError, match=r"dataset\.options\.n"):
            int_option({"n": bad}, "n", 4)


def test_fraction_option() -> None:
    assert fraction_option({}, "f", 0.1) == 0.1
    assert fraction_option({"f": 0.5}, "f", 0.1) == 0.5
    assert fraction_option({"f": 0}, "f", 0.1, allow_zero=True) == 0.0
    for bad in (0, 1, 1.5, -0.1, "half", True, float("nan")):
        with pytest.raises(DataError, match=r"dataset\.options\.f"):
            fraction_option({"f": bad}, "f", 0.1)
    with pytest.raises(DataError, match=r"\[0, 1\)"):
        fraction_option({"f": 1}, "f", 0.1, allow_zero=True)


def test_bool_option() -> None:
    assert bool_option({}, "b", False) is False
    assert bool_option({"b": True}, "b", False) is True
    with pytest.raises(DataError, match="true or false"):
        bool_option({"b": "yes"}, "b", False)


def test_check_options_suggests_the_closest_key() -> None:
    check_options({"val_fraction": 0.1}, ("val_fraction", "crops_per_image"), "dataset x")
    with pytest.raises(DataError, match="did you mean 'val_fraction'"):
        check_options({"val_fractoin": 0.1}, ("val_fraction", "crops_per_image"), "dataset x")
    with pytest.raises(DataError, match=r"known options: \(none\)"):
        check_options({"anything": 1}, (), "dataset x")


# loaders on the committed fixtures


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
