"""Read workspaces' emission records: each CodeCarbon CSV row joined with its manifest entry.

Each tracked stage run leaves ``emissions/<stage>-<run_id>.csv`` (see
:mod:`eosfm_cli.emissions.tracker`). The reader joins each file to its manifest entry (by the
run id in the file name, matched against the manifest's run ids) for the stage, specialist and
dataset. Rows that cannot be trusted (missing columns, non-numeric or negative figures, fewer
fields than the header, a file cut short) are never counted: they come back as
:class:`SkippedRow` with their file and reason.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape

from eosfm_cli.console import warn
from eosfm_cli.errors import WorkspaceError
from eosfm_cli.workspace import RUN_ID_TAIL_PATTERN, Workspace

# CodeCarbon CSV columns a row needs to be counted.
REQUIRED_COLUMNS = ("duration", "energy_consumed", "emissions")

NONE_KEY = "(none)"
"""The key of rows that lack a value: a run without a stage, a specialist or a dataset."""

# `<stage>-<run_id>.csv` where the run id is `<stage>-YYYYmmdd-HHMMSS-<6 hex>`: the fallback
# for files whose run is missing from the manifest.
_FILE_RE = re.compile(rf"^(?P<stage>.+?)-(?P<run_id>(?P=stage)-{RUN_ID_TAIL_PATTERN})$")


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
    folder = ws.emissions_dir
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
    when = parse_time(record.get("timestamp")) or parse_time((entry or {}).get("end"))
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


def parse_time(raw: Any) -> _dt.datetime | None:
    """Read an ISO 8601 time, naive ones as local time; ``None`` when there is none.

    Args:
        raw: the text (anything else gives ``None``).
    """
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        when = _dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    # CodeCarbon writes naive local time; the manifest writes UTC with an offset.
    return when.astimezone() if when.tzinfo is None else when


def read_workspaces(
    roots: list[Path],
) -> tuple[list[EmissionRow], list[SkippedRow], list[dict[str, Any]]]:
    """Read several workspaces with :func:`read_workspace`, in order, and join the results.

    Args:
        roots: the workspace folders.

    Returns:
        The counted rows, the skipped rows and the runs without a record, of all of them.
    """
    rows: list[EmissionRow] = []
    skipped: list[SkippedRow] = []
    untracked: list[dict[str, Any]] = []
    for root in roots:
        r, s, u = read_workspace(root)
        rows += r
        skipped += s
        untracked += u
    return rows, skipped, untracked
