"""Draw the emissions report's figure (``reports/emissions.png``) with matplotlib's Agg canvas."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.emissions.reader import NONE_KEY, parse_time
from eosfm_cli.emissions.report import PAPER_ENERGY_KWH, number_text
from eosfm_cli.viz.figures import new_figure, save_png

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Energy units from small to large, with their size in kWh.
ENERGY_UNITS = (("mWh", 1e-6), ("Wh", 1e-3), ("kWh", 1.0), ("MWh", 1e3))


def energy_unit(largest_kwh: float) -> tuple[str, float]:
    """The unit in which ``largest_kwh`` reads as a number between 1 and 1000 (or the nearest).

    Returns:
        ``(name, size in kWh)``: divide kWh values by the size to express them in the unit.
    """
    chosen = ENERGY_UNITS[0]
    for name, size in ENERGY_UNITS:
        if largest_kwh >= size:
            chosen = (name, size)
    return chosen


def write_png(report: dict[str, Any], path: Path) -> Path:
    """Write :func:`draw_report`'s figure as a PNG (atomically) and return ``path``."""
    save_png(draw_report(report), path, dpi=100)
    return path


def draw_report(report: dict[str, Any]) -> Figure:
    """Draw energy per stage and per specialist, and cumulative emissions.

    Energy axes use mWh, Wh, kWh or MWh, whichever makes the largest bar a number between 1
    and 1000, with at most four ticks so that labels never overlap.

    Args:
        report: the report (:func:`eosfm_cli.emissions.report.build_report`).

    Returns:
        The figure, on an Agg canvas.
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(15, 4.5)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, 3)
    for ax, title, groups in (
        (axes[0], "Energy per stage", report["by_stage"]),
        (axes[1], "Energy per specialist", report["by_specialist"]),
    ):
        named = {k: v for k, v in groups.items() if k != NONE_KEY}
        if not named:
            ax.set_title(title)
            empty = "no records" if not report["runs"] else "no run names one"
            ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        names = list(named)[::-1]
        kwh = [float(named[n]["energy_kwh"] or 0.0) for n in names]
        unit, size = energy_unit(max(kwh))
        ax.set_title(f"{title} ({unit})")
        ax.barh(names, [v / size for v in kwh], color="#4c72b0")
        ax.set_xlabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, min_n_ticks=2))
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
    return fig
