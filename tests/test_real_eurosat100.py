"""The EuroSAT loader on the real EuroSAT100 patches in ../shared/data/eurosat100."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.data.base import DatasetRequest
from eosfm_cli.data.eurosat import build

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "eurosat100"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(
        not REAL.is_dir(), reason=f"real EuroSAT100 data not found at {REAL} (../shared absent)"
    ),
]


def request(split: str, bands: tuple[str, ...] = BAND_SETS["S2_ALL"]) -> DatasetRequest:
    return DatasetRequest("eurosat_s2", REAL, split, bands)


@pytest.mark.parametrize(("split", "size"), [("train", 60), ("val", 20), ("test", 20)])
def test_split_sizes(split: str, size: int) -> None:
    ds = build(request(split))
    assert len(ds) == size
    labels = [int(ds[i]["label"]) for i in range(len(ds))]
    assert sorted(set(labels)) == list(range(10))
    assert all(labels.count(c) == size // 10 for c in range(10))


def test_thirteen_bands_with_b8a_last() -> None:
    ds = build(request("val"))
    sample = ds[0]
    assert sample["image"].shape == (13, 64, 64)
    assert sample["image"].dtype == torch.float32
    assert sample["label"].dtype == torch.int64
    path = ds.inner.samples[0][0]
    with rasterio.open(path) as src:
        assert src.count == 13
        raw = src.read()
    np.testing.assert_array_equal(sample["image"].numpy(), raw.astype(np.float32))
    b8a = build(request("val", ("B8A",)))[0]["image"][0].numpy()
    np.testing.assert_array_equal(b8a, raw[12].astype(np.float32))


@pytest.mark.shared
def test_eurosat100_loads_through_the_eurosat_s2_profile(eurosat100: Path) -> None:
    from eosfm_cli.context import resolve
    from eosfm_cli.data.splits import build_splits

    repo = Path(__file__).resolve().parents[1]
    ctx = resolve(repo / "profiles" / "default.yaml", dataset="eurosat_s2", root=eurosat100)
    spec, splits, root = build_splits(ctx.profile, ctx.source)
    assert spec.name == "eurosat_s2" and root == eurosat100
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "val": 20, "test": 20}
    assert ctx.profile.dataset is not None and ctx.profile.dataset.bands[-1] == "B8A"
    direct = build(DatasetRequest("eurosat_s2", eurosat100, "test", BAND_SETS["S2_ALL"]))
    for i in (0, 7, 19):
        assert torch.equal(splits["test"][i]["image"], direct[i]["image"])
        assert int(splits["test"][i]["label"]) == int(direct[i]["label"])
