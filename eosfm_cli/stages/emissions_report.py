"""Stage `eosfm emissions-report`: aggregate the CodeCarbon records of one or more workspaces.

Each tracked stage run leaves ``emissions/<stage>-<run_id>.csv`` (see
:mod:`eosfm_cli.emissions`). This stage reads them all, joins each to its manifest entry (by
the run id in the file name, matched against the manifest's run ids) for the stage,
specialist and dataset, and sums duration, energy and emissions per stage, per specialist,
per dataset, per workspace and in total, next to the paper's published totals.

Decisions:

- Rows that cannot be trusted (missing columns, non-numeric or negative figures, fewer
  fields than the header, a file cut short) are never counted: they are listed under
  "skipped rows" with their file and reason, and one warning line says how many.
- A workspace without any emission record gives an empty report with a note, not an error:
  "nothing tracked yet" is an answer. A workspace folder that does not exist is an error.
- The report is written atomically into the first workspace's ``reports/``. With ``fmt``
  only that rendering goes to stdout and no file is written, so scripts can read any
  workspace, read-only ones included.
- The report is not tracked and takes no workspace lock: it only reads, and its writes are
  atomic, so it runs even while a stage trains in the same workspace.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from eosfm_cli.console import console, info, warn
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.errors import EosfmError, WorkspaceError
from eosfm_cli.io import atomic_path, atomic_write_json, atomic_write_text, now_iso
from eosfm_cli.workspace import Workspace

PAPER_ENERGY_KWH = 76.05
"""Energy of all the paper's runs, kWh."""

PAPER_EMISSIONS_KG = 4.15
"""Emissions of all the paper's runs, kg CO2eq."""

FORMATS = ("md", "json", "csv")

REPORT_FILES = ("reports/emissions.md", "reports/emissions.json", "reports/emissions.png")

# CodeCarbon CSV columns a row needs to be counted.
REQUIRED_COLUMNS = ("duration", "energy_consumed", "emissions")

NONE_KEY = "(none)"

# `<stage>-<run_id>.csv` where the run id is `<stage>-YYYYmmdd-HHMMSS-<6 hex>`: the fallback
# for files whose run is missing from the manifest.
_FILE_RE = re.compile(r"^(?P<stage>.+?)-(?P<run_id>(?P=stage)-\d{8}-\d{6}-[0-9a-f]{6})$")

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


@dataclass
class EmissionRow:
    """One counted CodeCarbon row, joined with its manifest entry.

    Attributes:
        workspace: the workspace folder.
        file: the CSV, relative to the workspace.
        run_id: the stage run id (``None`` when no manifest entry matches).
        stage: the stage name (``(unknown)`` when neither manifest nor file name tells).
        specialist: the manifest entry's ``specialist``.
        dataset: the manifest entry's ``dataset`` (or the profile's dataset name).
        timestamp: when the run ended (ISO 8601, with offset), if known.
        duration_s: seconds tracked.
        energy_kwh: energy, kWh.
        emissions_kg: emissions, kg CO2eq.
        country: the energy mix used (ISO alpha-3).
        mode: how CPU/GPU/RAM power were obtained (from the manifest), if known.
    """

    workspace: str
    file: str
    run_id: str | None
    stage: str
    specialist: str | None
    dataset: str | None
    timestamp: str | None
    duration_s: float
    energy_kwh: float
    emissions_kg: float
    country: str | None
    mode: str | None


@dataclass
class SkippedRow:
    """A row (or a whole file) left out of the totals.

    Attributes:
        workspace: the workspace folder.
        file: the CSV, relative to the workspace.
        line: the line in the file (``None`` for the whole file).
        reason: why it was skipped.
    """

    workspace: str
    file: str
    line: int | None
    reason: str


# Entry point -------------------------------------------------------------------------------
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
            found = [p for p in (root / "emissions").glob("*.csv") if not p.name.startswith(".")]
            reads += [
                str(root / "manifest.json"),
                f"{root / 'emissions' / '*.csv'} ({len(found)} file(s))",
            ]
        writes = ["stdout"] if fmt else [str(roots[0] / f) for f in REPORT_FILES]
        print_dry_run(ctx, "emissions-report", reads, writes)
        return {}
    for root in roots:
        if not root.is_dir():
            raise WorkspaceError(
                "no workspace here",
                where=str(root),
                hint="run a stage first, or pass an existing folder with --workspace",
            )

    rows: list[EmissionRow] = []
    skipped: list[SkippedRow] = []
    untracked: list[dict[str, Any]] = []
    for root in roots:
        r, s, u = read_workspace(root)
        rows += r
        skipped += s
        untracked += u
    report = build_report(rows, skipped, untracked, roots)
    if skipped:
        warn(
            f"{len(skipped)} unreadable emission row(s) or file(s) skipped, not counted "
            f"(see 'Skipped rows'; first: {escape(skipped[0].file)}: {escape(skipped[0].reason)})"
        )
    if fmt:
        render = {"md": render_markdown, "json": render_json, "csv": render_csv}[fmt]
        sys.stdout.write(render(report))
        sys.stdout.flush()
        return report

    out = roots[0] / "reports"
    atomic_write_text(out / "emissions.md", render_markdown(report))
    atomic_write_json(out / "emissions.json", report)
    write_png(report, out / "emissions.png")
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


# Reading -----------------------------------------------------------------------------------
def read_workspace(
    root: Path,
) -> tuple[list[EmissionRow], list[SkippedRow], list[dict[str, Any]]]:
    """Read the emission CSVs of one workspace and join them with its manifest.

    Args:
        root: the workspace folder.

    Returns:
        The counted rows, the skipped rows, and the manifest runs that have no emission
        record (with the reason the manifest gives).
    """
    ws = Workspace(root)
    try:
        runs = [r for r in ws.read_manifest()["runs"] if isinstance(r, dict)]
    except WorkspaceError as err:
        warn(f"{escape(err.one_line())}; emission records are reported without their stage")
        runs = []
    by_id = {str(r["run_id"]): r for r in runs if isinstance(r.get("run_id"), str)}
    folder = root / "emissions"
    files = sorted(p for p in folder.glob("*.csv") if not p.name.startswith("."))

    rows: list[EmissionRow] = []
    skipped: list[SkippedRow] = []
    seen: set[str] = set()
    for path in files:
        rel = ws.relative(path)
        entry = _match_entry(path.stem, by_id)
        if entry is not None:
            seen.add(str(entry["run_id"]))
        for line, record in _read_csv(path, rel, str(root), skipped):
            row_entry = entry
            if row_entry is None:
                # A renamed file: CodeCarbon's experiment_id column holds eosfm's run id.
                row_entry = by_id.get(str(record.get("experiment_id") or ""))
                if row_entry is not None:
                    seen.add(str(row_entry["run_id"]))
            row = _make_row(record, row_entry, path.stem, str(root), rel, line, skipped)
            if row is not None:
                rows.append(row)

    untracked = [
        {
            "workspace": str(root),
            "run_id": run_id,
            "stage": entry.get("stage"),
            "status": entry.get("status"),
            "reason": _untracked_reason(entry),
        }
        for run_id, entry in by_id.items()
        if run_id not in seen
    ]
    return rows, skipped, untracked


def _untracked_reason(entry: dict[str, Any]) -> str:
    em = entry.get("emissions")
    if isinstance(em, dict):
        if em.get("status") == "measured":
            return f"its CSV is missing ({em.get('csv') or 'no path recorded'})"
        return str(em.get("note") or em.get("status") or "no record")
    if entry.get("status") == "running":
        return "still running (or killed)"
    return "not tracked"


def _match_entry(stem: str, by_id: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Find the manifest entry of ``<stage>-<run_id>``: the longest run id it ends with."""
    best: dict[str, Any] | None = None
    for run_id, entry in by_id.items():
        if stem == f"{entry.get('stage')}-{run_id}":
            return entry
        if stem.endswith(f"-{run_id}") and (best is None or len(run_id) > len(best["run_id"])):
            best = entry
    return best


def _read_csv(
    path: Path, rel: str, workspace: str, skipped: list[SkippedRow]
) -> Iterable[tuple[int, dict[str, str]]]:
    """Yield ``(line, row)`` for the well-formed rows of a CSV; record the rest as skipped."""

    def skip(line: int | None, reason: str) -> None:
        skipped.append(SkippedRow(workspace, rel, line, reason))

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        skip(None, "not a text file")
        return
    except OSError as err:
        skip(None, f"cannot read: {err.strerror or err}")
        return
    if not text.strip():
        skip(None, "empty file")
        return
    cut_short = not text.endswith("\n")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except (csv.Error, StopIteration):
        skip(None, "no readable CSV header")
        return
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        skip(None, f"missing column(s) {', '.join(missing)}: not a CodeCarbon emissions CSV")
        return
    records: list[tuple[int, list[str]]] = []
    try:
        for fields in reader:
            if fields:
                records.append((reader.line_num, fields))
    except csv.Error as err:
        skip(reader.line_num, f"malformed CSV ({err}); the rest of the file is ignored")
    else:
        if not records:
            skip(None, "header but no data row (truncated file?)")
    for i, (line, fields) in enumerate(records):
        if len(fields) != len(header):
            skip(
                line,
                f"incomplete or garbage row: {len(fields)} fields for a "
                f"{len(header)}-column header",
            )
            continue
        if cut_short and i == len(records) - 1:
            skip(line, "the file ends mid-row (truncated write?)")
            continue
        yield line, dict(zip(header, fields, strict=True))


def _number(record: dict[str, str], column: str) -> tuple[float | None, str | None]:
    raw = (record.get(column) or "").strip()
    if not raw:
        return None, f"empty {column}"
    try:
        value = float(raw)
    except ValueError:
        return None, f"non-numeric {column} {raw[:40]!r}"
    if not math.isfinite(value) or value < 0:
        return None, f"invalid {column} {raw[:40]!r}"
    return value, None


def _make_row(
    record: dict[str, str],
    entry: dict[str, Any] | None,
    stem: str,
    workspace: str,
    rel: str,
    line: int,
    skipped: list[SkippedRow],
) -> EmissionRow | None:
    values: dict[str, float] = {}
    for column in REQUIRED_COLUMNS:
        value, problem = _number(record, column)
        if problem is not None or value is None:
            skipped.append(SkippedRow(workspace, rel, line, problem or f"no {column}"))
            return None
        values[column] = value

    match = _FILE_RE.match(stem)
    if entry is not None:
        stage = str(entry.get("stage") or NONE_KEY)
        run_id: str | None = str(entry["run_id"])
    elif match:
        stage, run_id = match["stage"], match["run_id"]
    else:
        stage, run_id = "(unknown)", None
    em = (entry or {}).get("emissions")
    mode = em.get("mode") if isinstance(em, dict) else None
    when = _parse_time(record.get("timestamp")) or _parse_time((entry or {}).get("end"))
    country = (record.get("country_iso_code") or "").strip() or None
    return EmissionRow(
        workspace=workspace,
        file=rel,
        run_id=run_id,
        stage=stage,
        specialist=_text((entry or {}).get("specialist")),
        dataset=_dataset_of(entry),
        timestamp=when.isoformat(timespec="seconds") if when else None,
        duration_s=values["duration"],
        energy_kwh=values["energy_consumed"],
        emissions_kg=values["emissions"],
        country=country,
        mode=str(mode) if mode else None,
    )


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value is not None else None


def _dataset_of(entry: dict[str, Any] | None) -> str | None:
    if not entry:
        return None
    direct = _text(entry.get("dataset"))
    if direct:
        return direct
    profile = entry.get("profile")
    if isinstance(profile, dict):
        return _text(profile.get("dataset"))
    return None


def _parse_time(raw: Any) -> _dt.datetime | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        when = _dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    # CodeCarbon writes naive local time; the manifest writes UTC with an offset.
    return when.astimezone() if when.tzinfo is None else when


# Aggregation -------------------------------------------------------------------------------
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
    timed = [(t, r) for r in rows if (t := _parse_time(r.timestamp)) is not None]
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


def _cpu_estimated(mode: str | None) -> bool:
    """Whether a record's CPU power comes from a model (load x TDP, constant), not a counter."""
    if not mode:
        return False
    cpu = next((p for p in mode.split(";") if p.strip().startswith("cpu:")), "")
    return "estimate" in cpu or "constant" in cpu


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
        f"{who}: {_num(totals['energy_kwh'])} kWh = {energy_pct:.3g}% of the paper's "
        f"{PAPER_ENERGY_KWH} kWh; {_num(totals['emissions_kg'])} kg CO2eq = "
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
    estimated = [r for r in rows if _cpu_estimated(r.mode)]
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


# Rendering ---------------------------------------------------------------------------------
def _num(value: float) -> str:
    return f"{value:.4g}"


def _duration(seconds: float) -> str:
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
            f"| {_md_cell(name)} | {g['runs']} | {_duration(g['duration_s'])} | "
            f"{_num(g['energy_kwh'])} | {_num(g['emissions_kg'])} |"
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
        f"**Total: {_num(t['energy_kwh'])} kWh, {_num(t['emissions_kg'])} kg CO2eq, "
        f"{_duration(t['duration_s'])} over {t['runs']} run(s).**",
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
                f"{r['timestamp'] or ''} | {_duration(r['duration_s'])} | "
                f"{_num(r['energy_kwh'])} | {_num(r['emissions_kg'])} |"
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
    points = [(_parse_time(p["timestamp"]), p["emissions_kg"]) for p in report["cumulative"]]
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
        f"{_num(t['energy_kwh'])} kWh, {_num(t['emissions_kg'])} kg CO2eq over {t['runs']} "
        f"run(s) — {report['paper']['energy_pct']:.3g}% of the paper's {PAPER_ENERGY_KWH} kWh"
    )
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _print_summary(report: dict[str, Any]) -> None:
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
            _duration(g["duration_s"]),
            _num(g["energy_kwh"]),
            _num(g["emissions_kg"]),
        )
    table.add_section()
    table.add_row(
        "[bold]total[/bold]",
        str(t["runs"]),
        _duration(t["duration_s"]),
        f"[bold]{_num(t['energy_kwh'])}[/bold]",
        f"[bold]{_num(t['emissions_kg'])}[/bold]",
    )
    console.print(table)
    for title, key in (("specialist", "by_specialist"), ("dataset", "by_dataset")):
        groups = report[key]
        if any(k != NONE_KEY for k in groups):
            parts = ", ".join(f"{escape(k)} {_num(g['energy_kwh'])} kWh" for k, g in groups.items())
            console.print(f"per {title}: {parts}")
    console.print(escape(report["paper"]["line"]))
    for note in report["notes"]:
        console.print(f"[dim]note: {escape(note)}[/dim]")
