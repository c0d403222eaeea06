"""Substitutes across value scales are rescaled into the specialist's unit."""

from __future__ import annotations

import pytest
import timm
import torch

from eosfm_cli.bands import get_band, unit_scale
from eosfm_cli.models.adaptation import BandPlan
from eosfm_cli.models.ensemble import EosFM
from eosfm_cli.models.spec import SpecialistSpec


def test_unit_scale_table() -> None:
    assert unit_scale(get_band("B04"), get_band("B03")) == 1.0
    assert unit_scale(get_band("B04"), get_band("R")) == pytest.approx(255 / 3000)
    assert unit_scale(get_band("R"), get_band("B04")) == pytest.approx(3000 / 255)
    assert unit_scale(get_band("VV"), get_band("VH")) == 1.0


def test_s2_input_feeds_rgb_specialist_in_its_own_scale() -> None:
    spec = SpecialistSpec("rgb", "convnextv2_atto", ["R", "G", "B"], [100.0] * 3, [50.0] * 3)
    plan = BandPlan.build(spec, ["B02", "B03", "B04"])
    assert [c.input_band for c in plan.channels] == ["B04", "B03", "B02"]
    assert all(c.scale == pytest.approx(255 / 3000) for c in plan.channels)
    assert "unit rescale" in plan.explain()

    torch.manual_seed(0)
    model = timm.create_model("convnextv2_atto", features_only=True, in_chans=3)
    ens = EosFM([spec], [model.state_dict()], ["B02", "B03", "B04"])
    x = torch.rand(1, 3, 64, 64) * 3000
    dn = x[:, [2, 1, 0]] * 255 / 3000
    model.eval()
    with torch.no_grad():
        ref = model((dn - 100.0) / 50.0)
    got = ens(x)
    for a, b in zip(ref, got, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
