"""Draw the emissions report's figure (``reports/emissions.png``) with matplotlib's Agg canvas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eosfm_cli.emissions.reader import NONE_KEY, parse_time
from eosfm_cli.emissions.report import PAPER_ENERGY_KWH, number_text
from eosfm_cli.io import atomic_path


def write_png(report: dict[str, Any], path: Path) -> Path:
    """Draw energy per stage and per specialist, and cumulative emissions, into a PNG.

    Uses matplotlib's Agg canvas directly, so no GUI backend is ever touched.

    Args:
        report: the report.
        path: the PNG to write (atomically).

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for ax, title, groups in (
        (axes[0], "Energy per stage (kWh)", report["by_stage"]),
        (axes[1], "Energy per specialist (kWh)", report["by_specialist"]),
    ):
        ax.set_title(title)
        named = {k: v for k, v in groups.items() if k != NONE_KEY}
        if not named:
            empty = "no records" if not report["runs"] else "no run names one"
            ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        names = list(named)[::-1]
        ax.barh(names, [named[n]["energy_kwh"] for n in names], color="#4c72b0")
        ax.set_xlabel("kWh")
    ax = axes[2]
    ax.set_title("Cumulative emissions (kg CO2eq)")
    points = [(parse_time(p["timestamp"]), p["emissions_kg"]) for p in report["cumulative"]]
    points = [(t, v) for t, v in points if t is not None]
    if points:
        times = [t for t, _ in points]
        values = [v for _, v in points]
        ax.step(times, values, where="post", marker="o", color="#dd8452")
        ax.set_ylabel("kg CO2eq")
        ax.set_ylim(bottom=0)
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    else:
        ax.text(0.5, 0.5, "no records", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    t = report["totals"]
    fig.suptitle(
        f"{number_text(t['energy_kwh'])} kWh, {number_text(t['emissions_kg'])} kg CO2eq "
        f"over {t['runs']} run(s) — {report['paper']['energy_pct']:.3g}% of the paper's "
        f"{PAPER_ENERGY_KWH} kWh"
    )
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
