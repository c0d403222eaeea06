"""The RGB quicklook of a multi-band image: the bands shown as colours, and their stretch.

**Bands.** Red, green and blue are the catalogued optical bands whose centre wavelengths
(:mod:`eosfm_cli.bands`) lie nearest to 665, 560 and 490 nm (Sentinel-2's B04, B03 and B02),
each within 100 nm, and all three different. An image without such bands that holds a co- and
a cross-polarised radar band is shown as co-pol, cross-pol and their difference (the ratio, in
dB). Any other image is shown in grey from its first band.

**Stretch.** Each colour is stretched linearly between its 2nd and 98th percentiles over the
pixels where all three colours hold a value; a pixel without one (NaN) is transparent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

#: Centre wavelengths (nm) of the red, green and blue the quicklook looks for.
RGB_TARGETS_NM = (665.0, 560.0, 490.0)
#: Furthest a band's centre may lie from its colour's target.
RGB_TOLERANCE_NM = 100.0
#: Percentiles mapped to 0 and 1 by the stretch.
STRETCH_PERCENTILES = (2.0, 98.0)


def rgb_mix(bands: Sequence[str]) -> FloatArray:
    """How red, green and blue are made from the bands (see the module's rule).

    Args:
        bands: the image's band names, in channel order.

    Returns:
        Weights ``(3, C)``: colour ``c`` is ``sum_k mix[c, k] * band_k``.
    """
    from eosfm_cli.bands import get_band
    from eosfm_cli.errors import BandError

    mix = np.zeros((3, max(len(bands), 1)), np.float32)
    centres: list[float | None] = []
    co: int | None = None
    cross: int | None = None
    for i, name in enumerate(bands):
        try:
            band = get_band(name)
        except BandError:  # an uncatalogued band just cannot be shown as a colour
            centres.append(None)
            continue
        centres.append(band.center_nm if band.is_optical else None)
        if band.polarisation in ("VV", "HH") and co is None:
            co = i
        elif band.polarisation in ("VH", "HV") and cross is None:
            cross = i
    picked = [i for i in (_nearest(centres, t) for t in RGB_TARGETS_NM) if i is not None]
    if len(picked) == 3 and len(set(picked)) == 3:
        for c, i in enumerate(picked):
            mix[c, i] = 1.0
    elif co is not None and cross is not None:
        mix[0, co] = mix[1, cross] = mix[2, co] = 1.0
        mix[2, cross] = -1.0
    else:
        mix[:, 0] = 1.0
    return mix


def _nearest(centres: Sequence[float | None], target: float) -> int | None:
    """The channel whose centre is nearest ``target`` within the tolerance, if any."""
    cands = [(abs(c - target), i) for i, c in enumerate(centres) if c is not None]
    best = min(cands, default=None)
    return None if best is None or best[0] > RGB_TOLERANCE_NM else best[1]


def mix_bands(mix: FloatArray, image: Any) -> FloatArray:
    """Red, green and blue ``(3, ...)`` of an image ``(C, ...)``.

    Only the bands the mix uses are read, so a missing value (NaN) in another band does not
    hide the pixel.
    """
    x = np.asarray(image, dtype=np.float32)
    used = np.flatnonzero(np.abs(mix).sum(axis=0))
    out: FloatArray = np.tensordot(mix[:, used], x[used], axes=1).astype(np.float32)
    return out


def stretch(rgb: FloatArray) -> FloatArray:
    """Stretch ``(3, H, W)`` colours to an RGBA picture ``(H, W, 4)`` in ``[0, 1]``.

    Each colour goes linearly from its 2nd percentile (0) to its 98th (1) over the pixels
    where all three hold a value; other pixels are transparent.
    """
    out = np.zeros((*rgb.shape[1:], 4), np.float32)
    ok = ~np.isnan(rgb).any(axis=0)
    for c in range(3):
        vals = rgb[c][ok]
        if vals.size:
            lo, hi = np.percentile(vals, STRETCH_PERCENTILES)
            out[..., c] = np.clip((rgb[c] - lo) / max(float(hi - lo), 1e-6), 0, 1)
    out[..., 3] = ok
    result: FloatArray = np.nan_to_num(out)
    return result


def quicklook(image: Any, bands: Sequence[str]) -> FloatArray:
    """The RGBA quicklook ``(H, W, 4)`` of an image ``(C, H, W)`` with these bands."""
    return stretch(mix_bands(rgb_mix(bands), image))
