"""Band catalog: every band the toolkit knows, identified by name, never by position.

Each optical band has a centre wavelength and a bandwidth (nanometres), each SAR band a
polarisation. Names are looked up case-insensitively, and common aliases resolve to the same
band (``B8A``, ``B08A`` and ``nir08`` are one band). Named band sets (``S2_ALL``, ``RGB``, ...)
expand to ordered lists of canonical names; repeats are allowed (``S1_COMPOSITE`` is
``VV, VH, VH``).

Sentinel-2 wavelengths are the Sentinel-2A MSI centre wavelengths and bandwidths from ESA's
spectral response functions; Landsat and SPOT values come from the sensors' published band
limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from eosfm_cli.errors import BandError

BandKind = Literal["optical", "sar", "elevation"]


@dataclass(frozen=True)
class Band:
    """One spectral or radar band.

    Attributes:
        name: canonical name, unique in the catalog.
        sensor: the instrument family (``S2``, ``S1``, ``aerial``, ``L8``, ``L7``, ``SPOT``).
        kind: ``optical``, ``sar`` or ``elevation``.
        unit: the physical unit of the values the toolkit expects for this band.
        center_nm: centre wavelength in nanometres (optical bands).
        width_nm: full bandwidth in nanometres (optical bands).
        polarisation: ``VV``, ``VH``, ``HH`` or ``HV`` (SAR bands).
        gsd_m: native ground sampling distance in metres.
        aliases: other names that resolve to this band.
        description: a short human-readable description.
    """

    name: str
    sensor: str
    kind: BandKind
    unit: str
    center_nm: float | None = None
    width_nm: float | None = None
    polarisation: str | None = None
    gsd_m: float | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""

    @property
    def is_optical(self) -> bool:
        """Whether this is an optical (reflectance) band."""
        return self.kind == "optical"

    @property
    def is_sar(self) -> bool:
        """Whether this is a radar backscatter band."""
        return self.kind == "sar"


_S2_UNIT = "reflectance x 1e4"

_BANDS: tuple[Band, ...] = (
    # Sentinel-2 MSI (S2A centre wavelength / bandwidth).
    Band(
        "B01", "S2", "optical", _S2_UNIT, 442.7, 21, None, 60, ("B1", "coastal"), "coastal aerosol"
    ),
    Band("B02", "S2", "optical", _S2_UNIT, 492.4, 66, None, 10, ("B2", "s2_blue"), "blue"),
    Band("B03", "S2", "optical", _S2_UNIT, 559.8, 36, None, 10, ("B3", "s2_green"), "green"),
    Band("B04", "S2", "optical", _S2_UNIT, 664.6, 31, None, 10, ("B4", "s2_red"), "red"),
    Band("B05", "S2", "optical", _S2_UNIT, 704.1, 15, None, 20, ("B5", "rededge1"), "red edge 1"),
    Band("B06", "S2", "optical", _S2_UNIT, 740.5, 15, None, 20, ("B6", "rededge2"), "red edge 2"),
    Band("B07", "S2", "optical", _S2_UNIT, 782.8, 20, None, 20, ("B7", "rededge3"), "red edge 3"),
    Band("B08", "S2", "optical", _S2_UNIT, 832.8, 106, None, 10, ("B8", "s2_nir"), "NIR"),
    Band("B8A", "S2", "optical", _S2_UNIT, 864.7, 21, None, 20, ("B08A", "nir08"), "narrow NIR"),
    Band("B09", "S2", "optical", _S2_UNIT, 945.1, 20, None, 60, ("B9", "nir09"), "water vapour"),
    Band("B10", "S2", "optical", _S2_UNIT, 1373.5, 31, None, 60, ("cirrus",), "SWIR cirrus"),
    Band("B11", "S2", "optical", _S2_UNIT, 1613.7, 91, None, 20, ("swir16",), "SWIR 1"),
    Band("B12", "S2", "optical", _S2_UNIT, 2202.4, 175, None, 20, ("swir22",), "SWIR 2"),
    # Sentinel-1 C-band SAR, backscatter in decibels.
    Band("VV", "S1", "sar", "dB", polarisation="VV", gsd_m=10, aliases=("s1_vv",)),
    Band("VH", "S1", "sar", "dB", polarisation="VH", gsd_m=10, aliases=("s1_vh",)),
    # Sentinel-1 backscatter rendered as 8-bit grey levels (ETCI 2021's HyP3 PNG tiles). The
    # release does not say how dB map to grey levels, so these never stand in for VV / VH.
    Band(
        "VV_U8",
        "S1",
        "sar",
        "grey level (uint8)",
        polarisation="VV",
        gsd_m=10,
        aliases=("etci_vv",),
        description="VV backscatter as an 8-bit grey level (unknown dB mapping)",
    ),
    Band(
        "VH_U8",
        "S1",
        "sar",
        "grey level (uint8)",
        polarisation="VH",
        gsd_m=10,
        aliases=("etci_vh",),
        description="VH backscatter as an 8-bit grey level (unknown dB mapping)",
    ),
    # Generic co- and cross-polarised SAR amplitude (other missions: TerraSAR-X, ERS, ALOS...).
    Band("HH", "SAR", "sar", "amplitude (uint8)", polarisation="HH", aliases=("sar_hh",)),
    Band("HV", "SAR", "sar", "amplitude (uint8)", polarisation="HV", aliases=("sar_hv",)),
    # Generic aerial / camera bands, 8-bit digital numbers.
    Band(
        "R",
        "aerial",
        "optical",
        "DN (uint8)",
        640,
        80,
        None,
        None,
        ("red", "aerial_red"),
        "aerial red",
    ),
    Band(
        "G",
        "aerial",
        "optical",
        "DN (uint8)",
        550,
        80,
        None,
        None,
        ("green", "aerial_green"),
        "aerial green",
    ),
    Band(
        "B",
        "aerial",
        "optical",
        "DN (uint8)",
        460,
        80,
        None,
        None,
        ("blue", "aerial_blue"),
        "aerial blue",
    ),
    Band(
        "NIR",
        "aerial",
        "optical",
        "DN (uint8)",
        840,
        120,
        None,
        None,
        ("aerial_nir",),
        "aerial NIR",
    ),
    # Landsat 8/9 OLI, surface reflectance x 1e4.
    Band("L8_B1", "L8", "optical", _S2_UNIT, 443, 16, None, 30, ("oli_coastal",), "OLI coastal"),
    Band("L8_B2", "L8", "optical", _S2_UNIT, 482, 60, None, 30, ("oli_blue",), "OLI blue"),
    Band("L8_B3", "L8", "optical", _S2_UNIT, 561.5, 57, None, 30, ("oli_green",), "OLI green"),
    Band("L8_B4", "L8", "optical", _S2_UNIT, 654.5, 37, None, 30, ("oli_red",), "OLI red"),
    Band("L8_B5", "L8", "optical", _S2_UNIT, 865, 28, None, 30, ("oli_nir",), "OLI NIR"),
    Band("L8_B6", "L8", "optical", _S2_UNIT, 1608.5, 85, None, 30, ("oli_swir1",), "OLI SWIR 1"),
    Band("L8_B7", "L8", "optical", _S2_UNIT, 2200.5, 187, None, 30, ("oli_swir2",), "OLI SWIR 2"),
    Band("L8_B8", "L8", "optical", _S2_UNIT, 589.5, 173, None, 15, ("oli_pan",), "OLI pan"),
    Band("L8_B9", "L8", "optical", _S2_UNIT, 1373.5, 21, None, 30, ("oli_cirrus",), "OLI cirrus"),
    # Landsat 7 ETM+, surface reflectance x 1e4.
    Band("L7_B1", "L7", "optical", _S2_UNIT, 485, 70, None, 30, ("etm_blue",), "ETM+ blue"),
    Band("L7_B2", "L7", "optical", _S2_UNIT, 560, 80, None, 30, ("etm_green",), "ETM+ green"),
    Band("L7_B3", "L7", "optical", _S2_UNIT, 660, 60, None, 30, ("etm_red",), "ETM+ red"),
    Band("L7_B4", "L7", "optical", _S2_UNIT, 835, 130, None, 30, ("etm_nir",), "ETM+ NIR"),
    Band("L7_B5", "L7", "optical", _S2_UNIT, 1650, 200, None, 30, ("etm_swir1",), "ETM+ SWIR 1"),
    Band("L7_B7", "L7", "optical", _S2_UNIT, 2220, 260, None, 30, ("etm_swir2",), "ETM+ SWIR 2"),
    # SPOT-6/7 multispectral, 8-bit products.
    Band("SPOT_B0", "SPOT", "optical", "DN", 490, 70, None, 6, ("spot_blue",), "SPOT blue"),
    Band("SPOT_B1", "SPOT", "optical", "DN", 560, 60, None, 6, ("spot_green",), "SPOT green"),
    Band("SPOT_B2", "SPOT", "optical", "DN", 660, 70, None, 6, ("spot_red",), "SPOT red"),
    Band("SPOT_B3", "SPOT", "optical", "DN", 825, 130, None, 6, ("spot_nir",), "SPOT NIR"),
    # Elevation, for datasets that ship a DEM next to the imagery.
    Band("DEM", "DEM", "elevation", "m", gsd_m=None, aliases=("elevation",), description="DEM"),
)

BAND_SETS: dict[str, tuple[str, ...]] = {
    # EuroSAT's order: B8A comes last in the released files.
    "S2_ALL": (
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B09",
        "B10",
        "B11",
        "B12",
        "B8A",
    ),
    # All 13 bands in wavelength order (B8A after B08), as in SEN12MS and OSCD.
    "S2_WAVELENGTH": (
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B10",
        "B11",
        "B12",
    ),
    # The 12 L2A bands (no cirrus), as in BigEarthNet.
    "S2_L2A": (
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B11",
        "B12",
    ),
    "S2_RGB": ("B04", "B03", "B02"),
    "S2_IRRG": ("B08", "B04", "B03"),
    "RGB": ("R", "G", "B"),
    "IRRG": ("NIR", "R", "G"),
    "RGBIR": ("R", "G", "B", "NIR"),
    "S1": ("VV", "VH"),
    "S1_COMPOSITE": ("VV", "VH", "VH"),
    "S1_U8_COMPOSITE": ("VV_U8", "VH_U8", "VH_U8"),
    "SPOT_IRRG": ("SPOT_B3", "SPOT_B2", "SPOT_B1"),
    "L8_OLI": ("L8_B1", "L8_B2", "L8_B3", "L8_B4", "L8_B5", "L8_B6", "L8_B7"),
}

_BY_KEY: dict[str, Band] = {}
for _band in _BANDS:
    for _key in (_band.name, *_band.aliases):
        _k = _key.lower()
        if (
            _BY_KEY.get(_k, _band) is not _band
        ):  # pragma: no cover - catalog consistency, checked by tests
            raise RuntimeError(f"duplicate band key {_key!r}")
        _BY_KEY[_k] = _band


def all_bands() -> tuple[Band, ...]:
    """Return every band of the catalog, in catalog order."""
    return _BANDS


def get_band(name: str) -> Band:
    """Look a band up by canonical name or alias, case-insensitively.

    Args:
        name: a band name such as ``B8A``, ``b08a``, ``nir08`` or ``VV``.

    Returns:
        The catalog band.

    Raises:
        BandError: if no band has that name; the message suggests the closest name.
    """
    band = _BY_KEY.get(name.strip().lower())
    if band is None:
        raise BandError(
            f"unknown band {name!r}",
            hint=_did_you_mean(name, [b.name for b in _BANDS] + list(BAND_SETS))
            + " (run `eosfm datasets bands` for the catalog)",
        )
    return band


def canonical(name: str) -> str:
    """Return the canonical name of a band given by name or alias."""
    return get_band(name).name


def expand_bands(spec: str | Sequence[str]) -> list[str]:
    """Expand a band specification into an ordered list of canonical band names.

    Args:
        spec: a band-set name (``S2_RGB``), a comma-separated string (``B04,B03,B02`` or
            ``S1,B08``) or a sequence whose items are band or set names.

    Returns:
        Canonical band names in input order. Repeats are kept.

    Raises:
        BandError: if an item is neither a band nor a band set.
    """
    items: Iterable[str]
    if isinstance(spec, str):
        items = [s for s in (p.strip() for p in spec.split(",")) if s]
    else:
        items = list(spec)
    out: list[str] = []
    for item in items:
        key = str(item).strip()
        if key.upper() in BAND_SETS:
            out.extend(BAND_SETS[key.upper()])
        else:
            out.append(canonical(key))
    if not out:
        raise BandError("empty band list", hint="name at least one band, e.g. B04,B03,B02")
    return out


# Optical value scales: surface reflectance x 1e4 versus 8-bit digital numbers. 8-bit aerial
# and camera products are close to a linear stretch of 0-30 % reflectance onto 0-255, so that is
# the conversion used when a band of one scale stands in for a band of the other.
_REFLECTANCE = "reflectance x 1e4"
_DN8_PER_REFLECTANCE_1E4 = 255.0 / 3000.0


def _scale_group(unit: str) -> str:
    return "reflectance" if unit == _REFLECTANCE else ("dn8" if unit.startswith("DN") else unit)


def unit_scale(source: Band, target: Band) -> float:
    """Factor that converts values of ``source``'s unit into ``target``'s unit.

    1.0 when the units agree (or no conversion is known); reflectance x 1e4 and 8-bit DNs
    convert through a 0-30 % reflectance stretch.
    """
    src, dst = _scale_group(source.unit), _scale_group(target.unit)
    if src == dst:
        return 1.0
    if (src, dst) == ("reflectance", "dn8"):
        return _DN8_PER_REFLECTANCE_1E4
    if (src, dst) == ("dn8", "reflectance"):
        return 1.0 / _DN8_PER_REFLECTANCE_1E4
    return 1.0


def bands_of_sensor(sensor: str) -> list[Band]:
    """Return the catalog bands of one sensor family (``S2``, ``S1``, ...)."""
    return [b for b in _BANDS if b.sensor.lower() == sensor.lower()]


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(word.upper(), choices, n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else "check the spelling"
