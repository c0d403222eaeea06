"""Band plans: select by name, substitute by wavelength within a kind, fill with the mean."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eosfm_cli.bands import BAND_SETS, get_band
from eosfm_cli.errors import ArtifactError, BandError
from eosfm_cli.models.adaptation import BandPlan, plan_ensemble
from eosfm_cli.models.spec import SpecialistSpec

S2_ALL = list(BAND_SETS["S2_ALL"])


def spec(name: str, bands: list[str], backbone: str = "convnextv2_atto") -> SpecialistSpec:
    n = len(bands)
    return SpecialistSpec(
        name=name,
        backbone=backbone,
        bands=bands,
        mean=[100.0 * (i + 1) + 0.5 for i in range(n)],
        std=[10.0 + i for i in range(n)],
    )


S2_SPEC = spec("eurosat_s2", S2_ALL)
RGB_SPEC = spec("eurosat_rgb", ["B04", "B03", "B02"])
IRRG_SPEC = spec("cloud_cover", ["B08", "B04", "B03"])
S1_SPEC = spec("ben_s1", ["VV", "VH", "VH"])
AERIAL_SPEC = spec("landcoverai", ["R", "G", "B"])
DEM_SPEC = spec("dfc2022", ["R", "G", "B", "DEM"])
MIXED_SPEC = spec("sen12ms_all", ["VV", "VH", *S2_ALL])


def test_s2_input_to_s2_specialist_is_identity() -> None:
    plan = BandPlan.build(S2_SPEC, S2_ALL)
    assert plan.is_active and plan.coverage == 1.0
    assert plan.index == list(range(13))
    assert plan.is_identity
    assert all(c.kind == "select" for c in plan.channels)


def test_rgb_input_to_s2_specialist_substitutes_fills_and_is_skipped() -> None:
    plan = BandPlan.build(S2_SPEC, ["B04", "B03", "B02"])
    kinds = {c.band: c.kind for c in plan.channels}
    assert kinds["B02"] == kinds["B03"] == kinds["B04"] == "select"
    assert kinds["B01"] == kinds["B05"] == "substitute"
    by_band = {c.band: c for c in plan.channels}
    assert by_band["B01"].input_band == "B02"
    assert by_band["B01"].gap_nm == pytest.approx(49.7)
    assert by_band["B05"].input_band == "B04"
    assert by_band["B05"].gap_nm == pytest.approx(39.5)
    for band in ("B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"):
        assert kinds[band] == "fill"
        i = S2_ALL.index(band)
        assert by_band[band].fill_value == S2_SPEC.mean[i]
        assert by_band[band].input_index == -1
    assert plan.coverage == pytest.approx(5 / 13)
    assert plan.status == "skipped"
    assert "5/13" in (plan.reason or "")

    relaxed = BandPlan.build(S2_SPEC, ["B04", "B03", "B02"], min_coverage=0.3)
    assert relaxed.is_active


def test_rgb_apply_writes_selected_substituted_and_filled_channels() -> None:
    plan = BandPlan.build(S2_SPEC, ["B04", "B03", "B02"], min_coverage=0.0)
    x = torch.randn(2, 3, 5, 7)
    out = plan.apply(x)
    assert out.shape == (2, 13, 5, 7)
    for c, source in enumerate(plan.channels):
        if source.kind == "fill":
            assert torch.all(out[:, c] == S2_SPEC.mean[c])
        else:
            assert torch.equal(out[:, c], x[:, source.input_index])
    index = plan.index_tensor()
    assert index.dtype == torch.long
    assert index.tolist() == plan.index
    assert index.tolist().count(-1) == plan.n_fill == 8


def test_s2_input_to_rgb_specialist_selects_in_specialist_order() -> None:
    plan = BandPlan.build(RGB_SPEC, S2_ALL)
    assert plan.index == [3, 2, 1]
    x = torch.arange(13.0).view(1, 13, 1, 1).expand(2, 13, 4, 4)
    assert plan.apply(x)[0, :, 0, 0].tolist() == [3.0, 2.0, 1.0]


@pytest.mark.parametrize("specialist", [S2_SPEC, RGB_SPEC, IRRG_SPEC, AERIAL_SPEC, DEM_SPEC])
def test_sar_input_makes_optical_specialists_inactive(specialist: SpecialistSpec) -> None:
    plan = BandPlan.build(specialist, ["VV", "VH"])
    assert plan.status == "inactive"
    assert "SAR" in (plan.reason or "")
    assert not plan.is_active
    assert all(c.kind == "fill" for c in plan.channels)


def test_optical_input_makes_sar_specialist_inactive_unless_forced() -> None:
    plan = BandPlan.build(S1_SPEC, S2_ALL)
    assert plan.status == "inactive"
    forced = BandPlan.build(S1_SPEC, S2_ALL, force="active")
    assert forced.is_active and forced.forced
    assert "forced active" in (forced.reason or "")
    # A force never lets SAR borrow optical values: the channels stay filled.
    assert all(c.kind == "fill" for c in forced.channels)


def test_force_inactive_disables_a_runnable_specialist() -> None:
    plan = BandPlan.build(RGB_SPEC, S2_ALL, force="inactive")
    assert plan.status == "inactive" and plan.forced


def test_composite_sar_specialist_repeats_a_band() -> None:
    plan = BandPlan.build(S1_SPEC, ["VH", "VV"])
    assert plan.index == [1, 0, 0]
    assert [c.kind for c in plan.channels] == ["select"] * 3
    x = torch.tensor([-20.0, -10.0]).view(1, 2, 1, 1)
    assert plan.apply(x).flatten().tolist() == [-10.0, -20.0, -20.0]


def test_sar_never_substitutes_for_sar_or_optical() -> None:
    plan = BandPlan.build(S1_SPEC, ["VV", "B04", "B03"])
    assert [c.kind for c in plan.channels] == ["select", "fill", "fill"]
    assert plan.coverage == pytest.approx(1 / 3)
    assert plan.status == "skipped"


def test_grey_level_sar_and_db_sar_never_feed_each_other() -> None:
    etci = spec("etci2021", list(BAND_SETS["S1_U8_COMPOSITE"]))
    for plan in (BandPlan.build(etci, ["VV", "VH"]), BandPlan.build(S1_SPEC, ["VV_U8", "VH_U8"])):
        assert [c.kind for c in plan.channels] == ["fill"] * 3
        assert plan.status == "skipped"
    assert BandPlan.build(etci, ["etci_vh", "etci_vv"]).index == [1, 0, 0]


def test_optical_specialist_never_reads_sar_bands() -> None:
    plan = BandPlan.build(IRRG_SPEC, ["VV", "VH", "B04"])
    assert [c.kind for c in plan.channels] == ["fill", "select", "fill"]
    # B03 (559.8 nm) may borrow B04 (664.6 nm) under a wider tolerance, never VV or VH.
    wide = BandPlan.build(IRRG_SPEC, ["VV", "VH", "B04"], tolerance_nm=120.0)
    assert [c.kind for c in wide.channels] == ["fill", "select", "substitute"]
    assert wide.channels[2].input_band == "B04"


def test_elevation_matches_only_elevation() -> None:
    plan = BandPlan.build(DEM_SPEC, ["R", "G", "B"])
    assert [c.kind for c in plan.channels] == ["select", "select", "select", "fill"]
    assert plan.is_active and plan.coverage == 0.75
    with_dem = BandPlan.build(DEM_SPEC, ["DEM", "B", "G", "R"])
    assert with_dem.index == [3, 2, 1, 0]
    dem_only = BandPlan.build(RGB_SPEC, ["DEM"])
    assert dem_only.status == "inactive"


def test_mixed_specialist_on_s2_only_input_fills_sar() -> None:
    plan = BandPlan.build(MIXED_SPEC, S2_ALL)
    assert [c.kind for c in plan.channels[:2]] == ["fill", "fill"]
    assert plan.coverage == pytest.approx(13 / 15)
    assert plan.is_active
    s1_only = BandPlan.build(MIXED_SPEC, ["VV", "VH"])
    assert s1_only.status == "skipped"


def test_shuffled_input_order_is_followed_by_name() -> None:
    shuffled = ["B8A", "B11", "B02", "B09", "B04", "B01", "B12", "B06", "B03", "B10"]
    shuffled += ["B05", "B08", "B07"]
    plan = BandPlan.build(S2_SPEC, shuffled)
    assert [shuffled[i] for i in plan.index] == S2_ALL


@pytest.mark.parametrize(
    ("specialist", "inputs", "expected"),
    [
        (RGB_SPEC, ["B02", "B03", "B04"], [2, 1, 0]),  # S2 BGR to an S2 RGB specialist
        (AERIAL_SPEC, ["B", "G", "R"], [2, 1, 0]),  # aerial BGR to an aerial RGB specialist
        (RGB_SPEC, ["B", "G", "R"], [2, 1, 0]),  # aerial BGR to S2 RGB: by wavelength
        (AERIAL_SPEC, ["B02", "B03", "B04"], [2, 1, 0]),  # S2 BGR to aerial RGB
    ],
)
def test_bgr_input_maps_red_to_red_and_blue_to_blue(
    specialist: SpecialistSpec, inputs: list[str], expected: list[int]
) -> None:
    plan = BandPlan.build(specialist, inputs)
    assert plan.index == expected
    red = plan.channels[0]
    blue = plan.channels[2]
    assert get_band(inputs[red.input_index]).center_nm > 600  # type: ignore[operator]
    assert get_band(inputs[blue.input_index]).center_nm < 500  # type: ignore[operator]


def test_red_never_borrows_blue_at_the_default_tolerance() -> None:
    plan = BandPlan.build(AERIAL_SPEC, ["B02"], min_coverage=0.0)
    red, green, blue = plan.channels
    assert red.kind == "fill"
    assert green.kind == blue.kind == "substitute"  # 57.6 and 32.4 nm away
    assert blue.input_band == "B02"


def test_aliases_and_band_sets_are_canonicalised() -> None:
    plan = BandPlan.build(RGB_SPEC, ["s2_blue", "b3", "B4"])
    assert plan.input_bands == ["B02", "B03", "B04"]
    assert plan.index == [2, 1, 0]
    assert BandPlan.build(RGB_SPEC, ["S2_RGB"]).index == [0, 1, 2]


def test_zero_tolerance_disables_substitutes() -> None:
    plan = BandPlan.build(RGB_SPEC, ["R", "G", "B"], tolerance_nm=0.0)
    assert all(c.kind == "fill" for c in plan.channels)
    assert plan.status == "skipped"


def test_explain_lists_every_channel() -> None:
    text = BandPlan.build(S2_SPEC, ["B02", "B03", "B04"], min_coverage=0.0).explain()
    assert "eurosat_s2" in text and "active" in text
    assert "B04 ← input[2] B04" in text
    assert "B05 ← input[2] B04 (substitute, Δ39.5 nm)" in text
    assert "B10 ← fill (mean 1000)" in text  # B10's mean is 100 * 10 + 0.5 → "1000" at 4 digits
    skipped = BandPlan.build(S2_SPEC, ["B02", "B03", "B04"]).explain()
    assert "skipped" in skipped and "min_coverage" in skipped
    inactive = BandPlan.build(S1_SPEC, ["B04"]).explain()
    assert "inactive" in inactive and "SAR specialist" in inactive


def test_apply_rejects_a_wrong_channel_count() -> None:
    plan = BandPlan.build(RGB_SPEC, ["B04", "B03", "B02"])
    with pytest.raises(BandError, match="expected"):
        plan.apply(torch.zeros(1, 4, 2, 2))


def test_unknown_bands_and_rules_are_errors() -> None:
    with pytest.raises(BandError, match="unknown band"):
        BandPlan.build(RGB_SPEC, ["B04", "B03", "B99"])
    with pytest.raises(BandError, match="force rule"):
        BandPlan.build(RGB_SPEC, S2_ALL, force="sometimes")


def test_plan_ensemble_ablates_and_checks_names() -> None:
    plans = plan_ensemble([RGB_SPEC, S1_SPEC], S2_ALL, ablate=["eurosat_rgb"])
    assert [p.status for p in plans] == ["inactive", "inactive"]
    assert plans[0].reason == "ablated by request"
    plans = plan_ensemble([RGB_SPEC, S1_SPEC], S2_ALL, force={"ben_s1": "active"})
    assert [p.status for p in plans] == ["active", "active"]
    with pytest.raises(ArtifactError, match="ablate"):
        plan_ensemble([RGB_SPEC], S2_ALL, ablate=["nope"])
    with pytest.raises(ArtifactError, match="force"):
        plan_ensemble([RGB_SPEC], S2_ALL, force={"nope": "active"})


PROPERTY_SPECS = [S2_SPEC, RGB_SPEC, IRRG_SPEC, S1_SPEC, AERIAL_SPEC, MIXED_SPEC, DEM_SPEC]
RED_BLUE_MIN_GAP = 640.0 - 492.4
CANDIDATE_INPUTS = [*S2_ALL, "VV", "VH", "R", "G", "B", "NIR", "DEM"]


@settings(max_examples=300, deadline=None)
@given(
    inputs=st.lists(st.sampled_from(CANDIDATE_INPUTS), min_size=1, max_size=12, unique=True),
    tolerance=st.floats(min_value=0.0, max_value=150.0),
    min_coverage=st.floats(min_value=0.0, max_value=1.0),
)
def test_every_channel_is_same_band_allowed_substitute_or_recorded_fill(
    inputs: list[str], tolerance: float, min_coverage: float
) -> None:
    input_catalog = [get_band(b) for b in inputs]
    for specialist in PROPERTY_SPECS:
        plan = BandPlan.build(specialist, inputs, tolerance_nm=tolerance, min_coverage=min_coverage)
        assert len(plan.channels) == specialist.in_chans
        for c, source in enumerate(plan.channels):
            want = get_band(specialist.bands[c])
            assert source.band == want.name
            if source.kind == "select":
                assert inputs[source.input_index] == want.name
            elif source.kind == "substitute":
                got = input_catalog[source.input_index]
                assert want.name not in inputs
                assert want.kind == got.kind == "optical"
                assert want.center_nm is not None and got.center_nm is not None
                gap = abs(want.center_nm - got.center_nm)
                assert source.gap_nm == pytest.approx(gap)
                assert gap <= tolerance
                # It is the nearest optical band present.
                for other in input_catalog:
                    if other.is_optical and other.center_nm is not None:
                        assert abs(want.center_nm - other.center_nm) >= gap
            else:
                assert source.kind == "fill"
                assert source.input_index == -1 and source.input_band is None
                assert source.fill_value == specialist.mean[c]
                assert want.name not in inputs
                if want.is_optical and want.center_nm is not None:
                    assert all(
                        abs(want.center_nm - b.center_nm) > tolerance
                        for b in input_catalog
                        if b.is_optical and b.center_nm is not None
                    )
        real = sum(c.kind != "fill" for c in plan.channels)
        assert plan.coverage == pytest.approx(real / specialist.in_chans)
        shares_kind = {get_band(b).kind for b in specialist.bands} & {b.kind for b in input_catalog}
        if not shares_kind:
            assert plan.status == "inactive"
        elif plan.coverage < min_coverage:
            assert plan.status == "skipped"
        else:
            assert plan.status == "active"
        # Red never reads blue and blue never reads red, whatever the order, unless the
        # tolerance is wider than the catalog's smallest red-blue gap (R 640 / B02 492.4 nm).
        if tolerance >= RED_BLUE_MIN_GAP:
            continue
        for source in plan.channels:
            if source.input_band is not None and source.band in ("B04", "R"):
                assert source.input_band not in ("B02", "B", "B01")
            if source.input_band is not None and source.band in ("B02", "B"):
                assert source.input_band not in ("B04", "R")


@settings(max_examples=100, deadline=None)
@given(st.permutations(S2_ALL))
def test_any_permutation_of_s2_feeds_each_channel_its_own_band(order: list[str]) -> None:
    for specialist in (S2_SPEC, RGB_SPEC, IRRG_SPEC):
        plan = BandPlan.build(specialist, order)
        assert plan.is_active
        assert [order[i] for i in plan.index] == specialist.bands
        x = torch.arange(13.0).view(1, 13, 1, 1)
        got = plan.apply(x).flatten().tolist()
        assert got == [float(order.index(b)) for b in specialist.bands]
