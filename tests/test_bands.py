import pytest
from hypothesis import given
from hypothesis import strategies as st

from eosfm_cli.bands import BAND_SETS, all_bands, canonical, expand_bands, get_band
from eosfm_cli.errors import BandError


@pytest.mark.parametrize("alias", ["B8A", "B08A", "nir08", "b8a", " NIR08 "])
def test_b8a_aliases_resolve_to_one_band(alias: str) -> None:
    assert get_band(alias).name == "B8A"
    assert get_band(alias) is get_band("B8A")


def test_sentinel2_has_13_bands_with_wavelengths() -> None:
    s2 = [b for b in all_bands() if b.sensor == "S2"]
    assert len(s2) == 13
    assert all(b.center_nm and b.width_nm for b in s2)
    assert get_band("B04").center_nm == pytest.approx(664.6)
    assert get_band("B12").center_nm > get_band("B11").center_nm > get_band("B8A").center_nm


def test_sar_bands_are_db_with_polarisation() -> None:
    for name in ("VV", "VH"):
        band = get_band(name)
        assert band.is_sar and band.unit == "dB" and band.polarisation == name


def test_named_sets() -> None:
    assert BAND_SETS["S2_ALL"][-1] == "B8A" and len(BAND_SETS["S2_ALL"]) == 13
    assert expand_bands("S2_RGB") == ["B04", "B03", "B02"]
    assert expand_bands(["S1_COMPOSITE"]) == ["VV", "VH", "VH"]
    assert expand_bands("IRRG") == ["NIR", "R", "G"]
    assert expand_bands("S1,B8,nir08") == ["VV", "VH", "B08", "B8A"]


def test_every_set_member_is_in_the_catalog() -> None:
    for members in BAND_SETS.values():
        for m in members:
            assert canonical(m) == m


def test_unknown_band_suggests_a_name() -> None:
    with pytest.raises(BandError, match="did you mean 'B8A'"):
        get_band("B8AA")
    with pytest.raises(BandError):
        expand_bands("")


def test_other_sensors_present() -> None:
    sensors = {b.sensor for b in all_bands()}
    assert {"S2", "S1", "aerial", "L8", "SPOT"} <= sensors


@given(st.sampled_from([k for b in all_bands() for k in (b.name, *b.aliases)]))
def test_every_key_round_trips(key: str) -> None:
    band = get_band(key)
    assert get_band(band.name) is band
    assert get_band(key.upper()) is band
