"""The end-of-stage summaries: scalar metrics of each split as one rich table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from eosfm_cli.console import console


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The plain numbers of a metrics dict (per-class lists and counts left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def print_metrics(
    title: str, metrics: Mapping[str, Mapping[str, Any]], missing: str = "nan"
) -> None:
    """Print ``{column: metrics}`` as a table with one row per metric and one column per key.

    Args:
        title: the table's title (rich markup allowed).
        metrics: e.g. ``{"val": {...}, "test": {...}}`` (one column per split), or one column
            per head run.
        missing: what a cell shows for a metric its column lacks.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    splits = list(metrics)
    for split in splits:
        table.add_column(split, justify="right")
    values = {split: scalar_metrics(metrics[split]) for split in splits}
    for key in sorted(set().union(*values.values()) if values else ()):
        table.add_row(
            key, *(f"{values[s][key]:.4f}" if key in values[s] else missing for s in splits)
        )
    console.print(table)
