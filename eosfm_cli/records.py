"""Listings for people and for programs: one set of records, as a table, JSON or CSV.

A command that lists things (``datasets list``, ``datasets bands``, ``export-ensemble
--inspect``) builds plain records once and prints them in the format asked for. Tables never
wrap a cell when stdout is not a terminal, so ``eosfm datasets list | grep eurosat_rgb`` finds
its line; JSON and CSV carry the full values (lists stay lists in JSON, and are joined with
``;`` in CSV).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from eosfm_cli.console import console

#: Output formats of listing commands.
FORMATS = ("table", "json", "csv")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_json(records: Sequence[Mapping[str, Any]]) -> str:
    """The records as a JSON array (one object per record), with a trailing newline."""
    return json.dumps([dict(r) for r in records], indent=2, default=str) + "\n"


def render_csv(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """The records as CSV with a header row; list values joined by ``;``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        row = []
        for col in columns:
            value = record.get(col)
            if isinstance(value, list | tuple):
                value = ";".join(str(v) for v in value)
            row.append("" if value is None else value)
        writer.writerow(row)
    return out.getvalue()


def build_table(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    title: str | None = None,
    cells: Mapping[str, Any] | None = None,
) -> Table:
    """A rich table of the records' ``columns``.

    Args:
        records: the records.
        columns: the keys to show, in order.
        title: the table's title.
        cells: optional per-column functions turning a value into the cell's text.
    """
    wrap = console.is_terminal
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold" if wrap else "ignore", no_wrap=not wrap)
    for record in records:
        table.add_row(
            *[(cells or {}).get(col, _cell)(record.get(col)) for col in columns]  # type: ignore[operator]
        )
    return table


def print_table(table: Table) -> None:
    """Print a table; off a terminal, as wide as its widest line instead of 80 columns."""
    if console.is_terminal:
        console.print(table)
        return
    from rich.console import Console

    # A console as wide as the table's widest line: nothing wraps, nothing is cut.
    wide = Console(file=console.file, width=10_000, highlight=False, color_system=None)
    width = wide.measure(table).maximum
    Console(file=console.file, width=width, highlight=False, color_system=None).print(table)


def emit(
    records: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: str,
    title: str | None = None,
    cells: Mapping[str, Any] | None = None,
) -> None:
    """Print the records in ``fmt`` (``table``, ``json`` or ``csv``) on stdout.

    JSON and CSV are written raw (no markup, no wrapping), for other programs to read.
    """
    if fmt == "json":
        console.file.write(render_json(records))
    elif fmt == "csv":
        console.file.write(render_csv(records, columns))
    elif fmt == "table":
        print_table(build_table(records, columns, title, cells))
    else:  # pragma: no cover - the CLI's Enum admits only FORMATS
        raise ValueError(f"unknown format {fmt!r}")
