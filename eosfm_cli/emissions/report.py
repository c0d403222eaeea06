"""Aggregate emission rows into the report: sums per stage, specialist, dataset, workspace.

The report (the content of ``reports/emissions.json``) holds the totals, the groups, the
cumulative emissions over time, every counted row, every skipped row, the manifest runs
without a record, notes, and the comparison with the paper's published totals.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from eosfm_cli.emissions.measurement_mode import cpu_power_is_modelled
from eosfm_cli.emissions.reader import NONE_KEY, EmissionRow, SkippedRow, parse_time
from eosfm_cli.io import now_iso

PAPER_ENERGY_KWH = 76.05
"""Energy of all the paper's runs, kWh."""

PAPER_EMISSIONS_KG = 4.15
"""Emissions of all the paper's runs, kg CO2eq."""


def number_text(value: float) -> str:
    """Write a figure the way every rendering of the report does (4 significant digits).

    Args:
        value: the figure.
    """
    return f"{value:.4g}"


def _sums(rows: list[EmissionRow]) -> dict[str, Any]:
    return {
        "runs": len(rows),
        "duration_s": math.fsum(r.duration_s for r in rows),
        "energy_kwh": math.fsum(r.energy_kwh for r in rows),
        "emissions_kg": math.fsum(r.emissions_kg for r in rows),
    }


def _group(
    rows: list[EmissionRow], key: Callable[[EmissionRow], str | None]
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[EmissionRow]] = {}
    for row in rows:
        groups.setdefault(key(row) or NONE_KEY, []).append(row)
    ordered = sorted(groups.items(), key=lambda kv: (-_sums(kv[1])["energy_kwh"], kv[0]))
    return {k: _sums(v) for k, v in ordered}


def _cumulative(rows: list[EmissionRow]) -> list[dict[str, Any]]:
    """Cumulative emissions at the end of each run, from zero at the first run's start."""
    timed = [(t, r) for r in rows if (t := parse_time(r.timestamp)) is not None]
    timed.sort(key=lambda tr: tr[0])
    if not timed:
        return []
    first_time, first = timed[0]
    start = first_time - _dt.timedelta(seconds=first.duration_s)
    points = [{"timestamp": start.isoformat(timespec="seconds"), "emissions_kg": 0.0}]
    running = 0.0
    for when, r in timed:
        running += r.emissions_kg
        points.append({"timestamp": when.isoformat(timespec="seconds"), "emissions_kg": running})
    return points


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole else 0.0


def build_report(
    rows: list[EmissionRow],
    skipped: list[SkippedRow],
    untracked: list[dict[str, Any]],
    roots: list[Path],
) -> dict[str, Any]:
    """Aggregate the rows into the report (the content of ``emissions.json``).

    Args:
        rows: the counted rows.
        skipped: the rows left out.
        untracked: manifest runs without an emission record.
        roots: the workspaces read.

    Returns:
        The report dict.
    """
    totals = _sums(rows)
    who = "this workspace" if len(roots) == 1 else f"these {len(roots)} workspaces"
    energy_pct = _pct(totals["energy_kwh"], PAPER_ENERGY_KWH)
    emissions_pct = _pct(totals["emissions_kg"], PAPER_EMISSIONS_KG)
    line = (
        f"{who}: {number_text(totals['energy_kwh'])} kWh = {energy_pct:.3g}% of the paper's "
        f"{PAPER_ENERGY_KWH} kWh; {number_text(totals['emissions_kg'])} kg CO2eq = "
        f"{emissions_pct:.3g}% of its {PAPER_EMISSIONS_KG} kg CO2eq"
    )
    notes: list[str] = []
    if not rows:
        notes.append(
            "no emission records found: stages write emissions/<stage>-<run_id>.csv when "
            "the profile's emissions.enabled is true (the default) on DDP rank 0"
        )
    if untracked:
        notes.append(
            f"{len(untracked)} manifest run(s) have no emission record and are not counted "
            "(see 'Runs without a record')"
        )
    estimated = [r for r in rows if cpu_power_is_modelled(r.mode)]
    if estimated:
        notes.append(
            f"{len(estimated)} run(s) estimate CPU power from a model (CPU load x TDP, or a "
            "constant) because no RAPL counter was readable; see 'Measurement modes'. "
            "CodeCarbon always models RAM power"
        )
    countries = sorted({r.country for r in rows if r.country})
    cumulative = _cumulative(rows)
    return {
        "version": 1,
        "generated": now_iso(),
        "workspaces": [str(r) for r in roots],
        "totals": totals,
        "paper": {
            "energy_kwh": PAPER_ENERGY_KWH,
            "emissions_kg": PAPER_EMISSIONS_KG,
            "energy_pct": energy_pct,
            "emissions_pct": emissions_pct,
            "line": line,
        },
        "countries": countries,
        "by_stage": _group(rows, lambda r: r.stage),
        "by_specialist": _group(rows, lambda r: r.specialist),
        "by_dataset": _group(rows, lambda r: r.dataset),
        "by_workspace": _group(rows, lambda r: r.workspace),
        "by_mode": _group(rows, lambda r: r.mode or "unknown"),
        "cumulative": cumulative,
        "runs": [asdict(r) for r in rows],
        "skipped": [asdict(s) for s in skipped],
        "untracked_runs": untracked,
        "notes": notes,
    }
