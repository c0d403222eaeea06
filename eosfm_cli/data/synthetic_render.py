"""Drawing one synthetic scene: land cover from smoothed random fields, rendered per sensor.

Each class has a Sentinel-2 spectrum and a Sentinel-1 backscatter; a scene's land cover is the
argmax of one smoothed random field per class, and the images are those signatures on the map
plus texture and sensor noise. Everything here is numpy on arrays, seeded by the caller's
generator; :mod:`eosfm_cli.data.synthetic` writes the results to files.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.data.registry import SYNTHETIC_CLASSES

FloatArray = npt.NDArray[np.float32]
ByteArray = npt.NDArray[np.uint8]

#: The bands of each sensor's file, in file order.
S2_BANDS: tuple[str, ...] = BAND_SETS["S2_ALL"]
S1_BANDS: tuple[str, ...] = BAND_SETS["S1"]
RGB_BANDS: tuple[str, ...] = BAND_SETS["RGB"]

# Reflectance x 1e4 per class, in wavelength order B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10
# B11 B12. Vegetation has a red edge and a bright NIR plateau; water absorbs NIR and SWIR;
# urban is bright and flat; bare soil brightens toward the SWIR. B10 (cirrus) sees little of
# the ground anywhere.
_WAVELENGTH_ORDER = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
_SPECTRA = {
    "water":     (600, 550, 500, 350, 300, 250, 220, 200, 180, 150, 20, 100, 80),
    "forest":    (250, 300, 500, 250, 800, 2300, 2900, 3100, 3200, 3000, 30, 1500, 700),
    "cropland":  (350, 450, 800, 500, 1200, 2800, 3500, 3800, 3900, 3600, 40, 2200, 1200),
    "grassland": (400, 500, 800, 700, 1300, 2300, 2700, 2900, 3000, 2800, 40, 2500, 1500),
    "urban":     (1400, 1500, 1600, 1700, 1800, 1900, 2000, 2100, 2150, 2000, 60, 2300, 2100),
    "bare_soil": (900, 1000, 1400, 1800, 2100, 2300, 2400, 2500, 2600, 2600, 70, 3200, 3000),
}  # fmt: skip
# Sentinel-1 backscatter (VV, VH) in dB per class.
_BACKSCATTER = {
    "water": (-22.0, -28.0),
    "forest": (-7.0, -13.0),
    "cropland": (-10.0, -17.0),
    "grassland": (-12.0, -19.0),
    "urban": (0.0, -6.0),
    "bare_soil": (-14.0, -22.0),
}
# Classes that blobs of change turn into on the second date, with their odds.
_CHANGE_TARGETS = (("urban", 0.4), ("bare_soil", 0.3), ("cropland", 0.2), ("water", 0.1))
_SPECKLE_LOOKS = 4.0
_RGB_FULL_SCALE = 2500.0  # reflectance x 1e4 that maps to DN 255


def signatures() -> tuple[FloatArray, FloatArray]:
    """Return the class spectra ``(13, 6)`` in S2_ALL order and backscatter ``(2, 6)``."""
    order = [_WAVELENGTH_ORDER.index(b) for b in S2_BANDS]
    s2 = np.array([[_SPECTRA[c][i] for c in SYNTHETIC_CLASSES] for i in order], np.float32)
    s1 = np.array([[_BACKSCATTER[c][p] for c in SYNTHETIC_CLASSES] for p in (0, 1)], np.float32)
    return s2, s1


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> FloatArray:
    """Gaussian-smoothed white noise with zero mean and unit variance (periodic edges)."""
    noise = rng.standard_normal(shape, dtype=np.float32)
    ky = np.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    kernel = np.exp(np.float32(-2.0 * math.pi**2 * sigma**2) * (ky**2 + kx**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape).astype(np.float32)
    field -= field.mean()
    field /= np.float32(field.std() + 1e-6)
    return field


def _class_bias(rng: np.random.Generator, dominant: int | None) -> FloatArray:
    """Per-class offsets of the land-cover fields.

    A scene has one dominant class, which makes scene classification learnable, and misses
    some others, which makes multi-label targets vary. Without ``dominant`` (the large scene)
    every class keeps a fair share.
    """
    k = len(SYNTHETIC_CLASSES)
    bias = rng.normal(0.0, 0.5, k).astype(np.float32)
    if dominant is not None:
        bias[rng.random(k) < 0.35] -= 2.5
        bias[dominant] = 1.3
    return bias


def draw_landcover(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float, dominant: int | None
) -> ByteArray:
    """Argmax of one smoothed random field per class, plus each class's bias."""
    bias = _class_bias(rng, dominant)
    best = np.full(shape, -np.inf, np.float32)
    out = np.zeros(shape, np.uint8)
    # One field at a time keeps memory at two arrays for the large scene.
    for k in range(len(SYNTHETIC_CLASSES)):
        field = smooth_noise(rng, shape, sigma) + bias[k]
        better = field > best
        best[better] = field[better]
        out[better] = k
    return out


def blob_changes(rng: np.random.Generator, landcover: ByteArray) -> ByteArray:
    """Second-date land cover: zero to three irregular blobs turned into another class."""
    h, w = landcover.shape
    after = landcover.copy()
    n_blobs = int(rng.choice(4, p=[0.15, 0.35, 0.3, 0.2]))
    names = [name for name, _ in _CHANGE_TARGETS]
    odds = [p for _, p in _CHANGE_TARGETS]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(n_blobs):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        radius = rng.uniform(min(h, w) / 10, min(h, w) / 4)
        wobble = smooth_noise(rng, (h, w), max(1.0, min(h, w) / 16))
        blob = np.hypot(yy - cy, xx - cx) / radius + 0.3 * wobble < 1.0
        target = SYNTHETIC_CLASSES.index(names[int(rng.choice(len(names), p=odds))])
        after[blob] = target
    return after


def render_s2(
    rng: np.random.Generator,
    landcover: ByteArray,
    texture: FloatArray,
    spectra: FloatArray,
    illumination: float,
) -> tuple[npt.NDArray[np.uint16], FloatArray]:
    """Render 13-band reflectance; also return the noise-free image the RGB derives from."""
    clean = spectra[:, landcover] * (illumination * (1.0 + 0.06 * texture))[None]
    noise = rng.standard_normal(clean.shape, dtype=np.float32) * (0.03 * clean + 15.0)
    s2 = np.clip(np.rint(clean + noise), 0, 65535).astype(np.uint16)
    return s2, clean


def render_s1(
    rng: np.random.Generator, landcover: ByteArray, texture: FloatArray, backscatter: FloatArray
) -> FloatArray:
    """Render VV, VH in dB, with gamma speckle applied in linear power."""
    db = backscatter[:, landcover] + 1.0 * texture[None] + np.float32(rng.normal(0.0, 0.5))
    speckle = rng.gamma(_SPECKLE_LOOKS, 1.0 / _SPECKLE_LOOKS, db.shape).astype(np.float32)
    power = np.power(np.float32(10.0), db / np.float32(10.0)) * np.maximum(speckle, 1e-6)
    return (np.float32(10.0) * np.log10(power)).astype(np.float32)


def render_rgb(rng: np.random.Generator, clean_s2: FloatArray) -> ByteArray:
    """Aerial RGB from the noise-free S2 red, green and blue, plus camera noise."""
    idx = [S2_BANDS.index(b) for b in ("B04", "B03", "B02")]
    dn = clean_s2[idx] * np.float32(255.0 / _RGB_FULL_SCALE)
    dn += rng.standard_normal(dn.shape, dtype=np.float32) * np.float32(3.0)
    return np.clip(np.rint(dn), 0, 255).astype(np.uint8)
