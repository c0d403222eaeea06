"""Where one specialist channel takes its values from: a selected, substituted or filled band.

The per-channel rules of a band plan (:mod:`eosfm_cli.models.adaptation`): a band present in the
input by name is **selected**; a missing optical band is **substituted** by the present optical
band with the nearest centre wavelength within the tolerance (never across kinds, and with a unit
rescale when the value scales differ); anything else is **filled** with the specialist's
training mean. Ties go to the earlier input band, so a plan never depends on dict order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from eosfm_cli.bands import Band, unit_scale

SourceKind = Literal["select", "substitute", "fill"]


@dataclass(frozen=True)
class ChannelSource:
    """Where one specialist channel takes its values from.

    Attributes:
        band: the band the specialist expects on this channel (canonical name).
        kind: ``select`` (same band present), ``substitute`` (nearest optical band) or ``fill``.
        input_index: index of the input channel read, or -1 for a fill.
        input_band: name of the input band read, or ``None`` for a fill.
        gap_nm: centre-wavelength gap of a substitute (0 for a selection, ``None`` for a fill).
        fill_value: the raw value written for a fill (the specialist's training mean).
        scale: factor converting the input band's unit into the expected band's unit (a
            substitute across value scales, e.g. S2 reflectance x 1e4 feeding an 8-bit RGB
            specialist); 1.0 otherwise.
    """

    band: str
    kind: SourceKind
    input_index: int = -1
    input_band: str | None = None
    gap_nm: float | None = None
    fill_value: float | None = None
    scale: float = 1.0

    @property
    def is_real(self) -> bool:
        """Whether a real input band feeds this channel (selection or substitute)."""
        return self.kind != "fill"

    def describe(self) -> str:
        """Render this channel as one line, e.g. ``B05 ← input[3] B04 (substitute, Δ39.5 nm)``."""
        if self.kind == "select":
            return f"{self.band} ← input[{self.input_index}] {self.input_band}"
        if self.kind == "substitute":
            rescale = f", x{self.scale:.4g} unit rescale" if self.scale != 1.0 else ""
            return (
                f"{self.band} ← input[{self.input_index}] {self.input_band} "
                f"(substitute, Δ{self.gap_nm:.1f} nm{rescale})"
            )
        return f"{self.band} ← fill (mean {self.fill_value:.4g})"


def source_for(
    band: Band,
    mean: float,
    first_index: Mapping[str, int],
    inputs: Sequence[Band],
    tolerance_nm: float,
) -> ChannelSource:
    """Decide where one specialist channel comes from (select, substitute or fill).

    Args:
        band: the band the specialist expects on this channel.
        mean: the specialist's training mean for it (the fill value).
        first_index: canonical band name → index of its first occurrence in the input.
        inputs: the input's bands, in input order.
        tolerance_nm: the largest centre-wavelength gap allowed for a substitute.

    Returns:
        The channel's source.
    """
    if band.name in first_index:
        i = first_index[band.name]
        return ChannelSource(band.name, "select", i, band.name, gap_nm=0.0)
    if band.is_optical and band.center_nm is not None:
        best: tuple[float, int] | None = None
        for i, cand in enumerate(inputs):
            if not cand.is_optical or cand.center_nm is None:
                continue
            gap = abs(cand.center_nm - band.center_nm)
            # Ties go to the earlier input band, so plans never depend on dict order.
            if gap <= tolerance_nm and (best is None or gap < best[0]):
                best = (gap, i)
        if best is not None:
            gap, i = best
            return ChannelSource(
                band.name,
                "substitute",
                i,
                inputs[i].name,
                gap_nm=gap,
                scale=unit_scale(inputs[i], band),
            )
    return ChannelSource(band.name, "fill", fill_value=float(mean))
