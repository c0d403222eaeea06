"""The record of one tracked stage run: what it consumed, and how well that was measured.

:func:`eosfm_cli.emissions.tracker.track_emissions` fills it; the workspace stores
:meth:`EmissionsRecord.to_dict` as the manifest entry's ``emissions`` field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EmissionsRecord:
    """What one tracked stage run consumed.

    Fields stay ``None`` when nothing was measured (tracking off, a non-zero rank, or a
    tracker failure); ``status`` then says why.

    Attributes:
        stage: the stage name.
        run_id: the stage run's id.
        status: ``measured``, ``disabled``, ``not-rank-zero`` or ``failed``.
        csv: the CodeCarbon CSV (the workspace stores it relative to its root).
        duration_s: seconds tracked.
        energy_kwh: energy consumed (CPU + GPU + RAM), kWh.
        emissions_kg: emissions, kg CO2eq.
        cpu_energy_kwh: CPU share of the energy, kWh.
        gpu_energy_kwh: GPU share of the energy, kWh.
        ram_energy_kwh: RAM share of the energy, kWh.
        country: the country whose energy mix was used (ISO 3166-1 alpha-3).
        mode: how CPU, GPU and RAM power were obtained (the quality of the figure).
        tracking_mode: CodeCarbon's ``machine`` or ``process``.
        online: whether the online tracker (location looked up on the internet) was used.
        note: why nothing (or only part) was measured.
    """

    stage: str
    run_id: str
    status: str = "disabled"
    csv: str | None = None
    duration_s: float | None = None
    energy_kwh: float | None = None
    emissions_kg: float | None = None
    cpu_energy_kwh: float | None = None
    gpu_energy_kwh: float | None = None
    ram_energy_kwh: float | None = None
    country: str | None = None
    mode: str | None = None
    tracking_mode: str | None = None
    online: bool | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the record as a JSON-ready dict (the manifest's ``emissions`` entry)."""
        return asdict(self)

    def summary(self) -> str:
        """Return a one-line human summary of the measured figures."""
        return (
            f"emissions: {_fmt(self.energy_kwh)} kWh, {_fmt(self.emissions_kg)} kg CO2eq "
            f"in {_fmt(self.duration_s)} s ({self.country or '?'})"
        )


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"
