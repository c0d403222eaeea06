"""Render the emissions report as text: Markdown (``reports/emissions.md``), JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from eosfm_cli.emissions.report import number_text

CSV_COLUMNS = (
    "workspace",
    "file",
    "run_id",
    "stage",
    "specialist",
    "dataset",
    "timestamp",
    "duration_s",
    "energy_kwh",
    "emissions_kg",
    "country",
    "mode",
)


def duration_text(seconds: float) -> str:
    """Write a duration in s, min or h, whichever reads best (3 significant digits).

    Args:
        seconds: the duration.
    """
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_group(title: str, key: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        f"## {title}",
        "",
        f"| {key} | runs | duration | energy (kWh) | emissions (kg CO2eq) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, g in groups.items():
        lines.append(
            f"| {_md_cell(name)} | {g['runs']} | {duration_text(g['duration_s'])} | "
            f"{number_text(g['energy_kwh'])} | {number_text(g['emissions_kg'])} |"
        )
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    """Render the report as Markdown (``reports/emissions.md``)."""
    t = report["totals"]
    out = [
        "# Energy and carbon report",
        "",
        f"Generated {report['generated']} from "
        + ", ".join(f"`{w}`" for w in report["workspaces"])
        + ".",
        "",
        f"**Total: {number_text(t['energy_kwh'])} kWh, {number_text(t['emissions_kg'])} kg CO2eq, "
        f"{duration_text(t['duration_s'])} over {t['runs']} run(s).**",
        "",
        f"Paper comparison — {report['paper']['line']}.",
        "",
    ]
    if report["countries"]:
        out += [f"Energy mix: {', '.join(report['countries'])}.", ""]
    if report["runs"]:
        out += _md_group("By stage", "stage", report["by_stage"])
        out += _md_group("By specialist", "specialist", report["by_specialist"])
        out += _md_group("By dataset", "dataset", report["by_dataset"])
        if len(report["workspaces"]) > 1:
            out += _md_group("By workspace", "workspace", report["by_workspace"])
        out += _md_group("Measurement modes", "mode", report["by_mode"])
        out += [
            "## Runs",
            "",
            "| run | stage | specialist | dataset | end | duration | kWh | kg CO2eq |",
            "|---|---|---|---|---|---:|---:|---:|",
        ]
        for r in report["runs"]:
            out.append(
                f"| {_md_cell(r['run_id'] or r['file'])} | {_md_cell(r['stage'])} | "
                f"{_md_cell(r['specialist'] or '')} | {_md_cell(r['dataset'] or '')} | "
                f"{r['timestamp'] or ''} | {duration_text(r['duration_s'])} | "
                f"{number_text(r['energy_kwh'])} | {number_text(r['emissions_kg'])} |"
            )
        out += ["", "![energy per stage and specialist, cumulative emissions](emissions.png)", ""]
    if report["untracked_runs"]:
        out += ["## Runs without a record", "", "| run | stage | reason |", "|---|---|---|"]
        for u in report["untracked_runs"]:
            out.append(
                f"| {_md_cell(u['run_id'])} | {_md_cell(u['stage'])} | {_md_cell(u['reason'])} |"
            )
        out.append("")
    if report["skipped"]:
        out += [
            "## Skipped rows",
            "",
            "These rows are not counted in any total.",
            "",
            "| file | line | reason |",
            "|---|---:|---|",
        ]
        for s in report["skipped"]:
            where = s["file"] if len(report["workspaces"]) == 1 else f"{s['workspace']}/{s['file']}"
            line = "" if s["line"] is None else s["line"]
            out.append(f"| {_md_cell(where)} | {line} | {_md_cell(s['reason'])} |")
        out.append("")
    if report["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in report["notes"]] + [""]
    return "\n".join(out)


def render_json(report: dict[str, Any]) -> str:
    """Render the report as JSON."""
    return json.dumps(report, indent=2, default=str) + "\n"


def render_csv(report: dict[str, Any]) -> str:
    """Render the counted runs as CSV, one row per run (the totals are their sums)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in report["runs"]:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "md": render_markdown,
    "json": render_json,
    "csv": render_csv,
}
"""Each text format of the report and its renderer."""

FORMATS = tuple(RENDERERS)
"""The text formats, ``md``, ``json`` and ``csv``."""
