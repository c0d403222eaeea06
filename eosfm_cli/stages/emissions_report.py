"""Stage `eosfm emissions-report`: aggregate the CodeCarbon records of one or more workspaces.

Each tracked stage run leaves ``emissions/<stage>-<run_id>.csv`` (see
:mod:`eosfm_cli.emissions.tracker`). This stage reads them all with their manifest entries
(:mod:`eosfm_cli.emissions.reader`), sums duration, energy and emissions per stage, per
specialist, per dataset, per workspace and in total, next to the paper's published totals
(:mod:`eosfm_cli.emissions.report`), and writes the renderings
(:mod:`eosfm_cli.emissions.render`, :mod:`eosfm_cli.emissions.figure`).

Decisions:

- Rows that cannot be trusted are never counted: they are listed under "skipped rows" with
  their file and reason, and one warning line says how many.
- A workspace without any emission record gives an empty report with a note, not an error:
  "nothing tracked yet" is an answer. A workspace folder that does not exist is an error.
- The report is written atomically into the first workspace's ``reports/``. With ``fmt``
  only that rendering goes to stdout and no file is written, so scripts can read any
  workspace, read-only ones included.
- The report is not tracked and takes no workspace lock: it only reads, and its writes are
  atomic, so it runs even while a stage trains in the same workspace.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from eosfm_cli.console import console, info, warn
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.emissions.figure import write_png
from eosfm_cli.emissions.reader import NONE_KEY, read_workspaces
from eosfm_cli.emissions.render import FORMATS, RENDERERS, duration_text, render_markdown
from eosfm_cli.emissions.report import build_report, number_text
from eosfm_cli.errors import EosfmError, WorkspaceError
from eosfm_cli.io import atomic_write_json, atomic_write_text
from eosfm_cli.workspace import Workspace

REPORT_NAMES = ("emissions.md", "emissions.json", "emissions.png")
"""The files the report writes into the first workspace's ``reports/``."""


def emissions_report(
    ctx: StageContext, workspaces: list[Path] | None = None, fmt: str | None = None
) -> dict[str, Any]:
    """Run the `emissions-report` stage.

    Args:
        ctx: the resolved profile and workspace.
        workspaces: the workspaces to report on (``--workspace``, repeatable); empty means
            ``ctx.workspace``. The report files go into the first one.
        fmt: ``md``, ``json`` or ``csv``: print that rendering on stdout and write nothing.

    Returns:
        The report (the content of ``emissions.json``; empty for a dry run).

    Raises:
        EosfmError: for an unknown ``fmt``.
        WorkspaceError: when a workspace folder does not exist.
    """
    fmt = _check_format(fmt)
    roots = _roots(ctx, workspaces)
    if ctx.dry_run:
        reads: list[str] = []
        for root in roots:
            ws = Workspace(root)
            found = [p for p in ws.emissions_dir.glob("*.csv") if not p.name.startswith(".")]
            reads += [
                str(ws.manifest_path),
                f"{ws.emissions_dir / '*.csv'} ({len(found)} file(s))",
            ]
        reports = Workspace(roots[0]).reports_dir
        writes = ["stdout"] if fmt else [str(reports / name) for name in REPORT_NAMES]
        print_dry_run(ctx, "emissions-report", reads, writes)
        return {}
    for root in roots:
        if not root.is_dir():
            raise WorkspaceError(
                "no workspace here",
                where=str(root),
                hint="run a stage first, or pass an existing folder with --workspace",
            )

    rows, skipped, untracked = read_workspaces(roots)
    report = build_report(rows, skipped, untracked, roots)
    if skipped:
        warn(
            f"{len(skipped)} unreadable emission row(s) or file(s) skipped, not counted "
            f"(see 'Skipped rows'; first: {escape(skipped[0].file)}: {escape(skipped[0].reason)})"
        )
    if fmt:
        sys.stdout.write(RENDERERS[fmt](report))
        sys.stdout.flush()
        return report

    out = Workspace(roots[0]).reports_dir
    md, js, png = (out / name for name in REPORT_NAMES)
    atomic_write_text(md, render_markdown(report))
    atomic_write_json(js, report)
    write_png(report, png)
    _print_summary(report)
    info(f"wrote {escape(str(out))}/emissions.{{md,json,png}}")
    return report


def _check_format(fmt: str | None) -> str | None:
    if fmt is None or fmt == "":
        return None
    norm = fmt.strip().lower()
    if norm == "markdown":
        norm = "md"
    if norm not in FORMATS:
        raise EosfmError(
            f"unknown format {fmt!r}", where="--format", hint=f"use one of {', '.join(FORMATS)}"
        )
    return norm


def _roots(ctx: StageContext, workspaces: list[Path] | None) -> list[Path]:
    roots: list[Path] = []
    for p in workspaces or [ctx.workspace.root]:
        root = Workspace(p).root
        if root not in roots:
            roots.append(root)
    return roots


def _print_summary(report: dict[str, Any]) -> None:
    """Print the per-stage table, the per-specialist and per-dataset lines, and the notes."""
    t = report["totals"]
    table = Table(title="Energy and carbon per stage", title_justify="left")
    table.add_column("stage")
    table.add_column("runs", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("kWh", justify="right")
    table.add_column("kg CO2eq", justify="right")
    for name, g in report["by_stage"].items():
        table.add_row(
            escape(name),
            str(g["runs"]),
            duration_text(g["duration_s"]),
            number_text(g["energy_kwh"]),
            number_text(g["emissions_kg"]),
        )
    table.add_section()
    table.add_row(
        "[bold]total[/bold]",
        str(t["runs"]),
        duration_text(t["duration_s"]),
        f"[bold]{number_text(t['energy_kwh'])}[/bold]",
        f"[bold]{number_text(t['emissions_kg'])}[/bold]",
    )
    console.print(table)
    for title, key in (("specialist", "by_specialist"), ("dataset", "by_dataset")):
        groups = report[key]
        if any(k != NONE_KEY for k in groups):
            parts = ", ".join(
                f"{escape(k)} {number_text(g['energy_kwh'])} kWh" for k, g in groups.items()
            )
            console.print(f"per {title}: {parts}")
    console.print(escape(report["paper"]["line"]))
    for note in report["notes"]:
        console.print(f"[dim]note: {escape(note)}[/dim]")
