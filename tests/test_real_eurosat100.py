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
