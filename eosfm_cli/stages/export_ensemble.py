"""Stage `eosfm export-ensemble`: join specialists into one ensemble file, or inspect one.

Sources, in order of precedence:

- ``--encoders-folder DIR``: Lightning runs found recursively, as the reference
  ``utils.py export`` does (newest ``version_N`` per run, its best checkpoint, else the last);
- otherwise every finished specialist of the workspace (``specialists/*/specialist.json``),
  restricted by ``--only a,b``.

Formats: ``safetensors`` (native: weights + per-specialist JSON metadata) or ``pth`` (the
reference list of ``(in_chans, state_dict, config)``; lossy: no statistics).
``--inspect FILE`` prints the specialists of an existing file and, with ``--input-bands``, the
band plan of each specialist for that input.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table

from eosfm_cli.console import console, info, warn
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.ensemble_sources import (
    folder_specialists,
    param_bytes,
    parse_bands_option,
    workspace_specialists,
)
from eosfm_cli.errors import ProfileError
from eosfm_cli.records import FORMATS as LISTING_FORMATS
from eosfm_cli.records import emit

#: File formats an ensemble is written in; ``--inspect`` prints in one of LISTING_FORMATS.
FORMATS = ("safetensors", "pth")


def _param_count(state: dict[str, Any]) -> int:
    return int(sum(int(v.numel()) for v in state.values()))


def specialist_table(entries: list[tuple[Any, dict[str, Any]]], title: str) -> Table:
    """A rich table of specialists: name, backbone, bands, parameters, metrics."""
    table = Table(title=title, title_justify="left")
    for col in ("#", "name", "backbone", "bands", "params", "dataset / task", "metrics"):
        table.add_column(col, overflow="fold")
    for i, (spec, state) in enumerate(entries):
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in spec.metrics.items() if isinstance(v, float))
        table.add_row(
            str(i),
            spec.name,
            spec.backbone,
            ",".join(spec.bands),
            f"{_param_count(state) / 1e6:.2f} M" if state else "-",
            f"{spec.dataset or '-'} / {spec.task or '-'}",
            metrics or "-",
        )
    return table


def inspect_ensemble(
    path: Path,
    input_bands: str | None,
    bands: list[str],
    ctx: StageContext | None = None,
    fmt: str = "table",
) -> list[Any]:
    """Print the specialists of an ensemble file and, optionally, their band plans.

    Args:
        path: the ensemble file.
        input_bands: show each specialist's band plan for these input bands.
        bands: band names for reference specialists that do not record them.
        ctx: the profile whose ``ensemble`` section sets the plan rules.
        fmt: ``table``; ``json`` (``{"file", "specialists": [...], "plans": [...]}``) or
            ``csv`` (one row per specialist, or per planned channel with ``input_bands``).
    """
    from eosfm_cli.models.ensemble_file import load_any

    parsed = parse_bands_option(bands)
    entries, assumptions = load_any(path, bands=parsed if isinstance(parsed, list) else None)
    for line in assumptions:
        warn(line)
    plans = _plans(entries, input_bands, ctx) if input_bands else []
    if fmt == "json":
        console.file.write(
            json.dumps(
                {
                    "file": str(path),
                    "specialists": [_specialist_record(i, e) for i, e in enumerate(entries)],
                    "plans": [_plan_record(p) for p in plans],
                    "assumptions": list(assumptions),
                },
                indent=2,
            )
            + "\n"
        )
        return entries
    if fmt == "csv":
        if plans:
            rows = [
                {"specialist": p.specialist, "status": p.status, **asdict(c)}
                for p in plans
                for c in p.channels
            ]
            emit(rows, list(rows[0]), "csv")
        else:
            rows = [_specialist_record(i, e) for i, e in enumerate(entries)]
            emit(rows, list(rows[0]), "csv")
        return entries
    console.print(specialist_table(entries, f"ensemble {path}"))
    for plan in plans:
        console.print(plan.explain(), markup=False)
        console.print()
    return entries


def _plans(entries: list[Any], input_bands: str, ctx: StageContext | None) -> list[Any]:
    from eosfm_cli.bands import expand_bands
    from eosfm_cli.models.adaptation import plan_ensemble

    ens = ctx.profile.ensemble if ctx is not None else None
    kwargs: dict[str, Any] = {}
    if ens is not None:
        kwargs = {
            "tolerance_nm": ens.substitute_tolerance_nm,
            "min_coverage": ens.min_coverage,
            "force": ens.force,
            "ablate": ens.ablate,
        }
    return plan_ensemble([e[0] for e in entries], expand_bands(input_bands), **kwargs)


def _specialist_record(index: int, entry: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
    spec, state = entry
    return {
        "index": index,
        "name": spec.name,
        "backbone": spec.backbone,
        "in_chans": spec.in_chans,
        "bands": list(spec.bands),
        "params": _param_count(state) if state else None,
        "dataset": spec.dataset,
        "task": spec.task,
        "metrics": {k: v for k, v in spec.metrics.items() if isinstance(v, float)},
    }


def _plan_record(plan: Any) -> dict[str, Any]:
    return {
        "specialist": plan.specialist,
        "status": plan.status,
        "reason": plan.reason,
        "coverage": plan.coverage,
        "channels": [asdict(c) for c in plan.channels],
    }


def export_ensemble(
    ctx: StageContext,
    only: str | None = None,
    encoders_folder: Path | None = None,
    fmt: str | None = None,
    output: Path | None = None,
    inspect: Path | None = None,
    input_bands: str | None = None,
    bands: list[str] | None = None,
) -> Path | None:
    """Run the `export-ensemble` stage.

    Args:
        ctx: the resolved profile and workspace.
        only: comma-separated specialist names to include.
        encoders_folder: collect Lightning checkpoints from this folder instead.
        fmt: ``safetensors`` (default) or ``pth``; with ``inspect``, how the listing is
            printed: ``table`` (default), ``json`` or ``csv``.
        output: output file (default ``ensembles/<ensemble.name>.<fmt>``).
        inspect: print an existing file instead of exporting.
        input_bands: with ``inspect``, show the band plans for these input bands.
        bands: band names for checkpoints that lack them (``NAME=B1,B2`` or positional).

    Returns:
        The written file, or ``None`` for inspection and dry runs.
    """
    if inspect is not None:
        if fmt is not None and fmt not in LISTING_FORMATS:
            raise ProfileError(
                f"--inspect prints a listing, not a {fmt} file",
                where="--format",
                hint=f"choose {', '.join(LISTING_FORMATS)} with --inspect",
            )
        inspect_ensemble(inspect, input_bands, bands or [], ctx, fmt or "table")
        return None
    fmt = fmt or "safetensors"
    if fmt not in FORMATS:
        raise ProfileError(
            f"an ensemble file is written as {' or '.join(FORMATS)}, not {fmt}",
            where="--format",
            hint=f"choose {' or '.join(FORMATS)} (or {', '.join(LISTING_FORMATS)} with --inspect)",
        )
    target = Path(output) if output else ctx.workspace.ensemble_path(ctx.profile.ensemble.name, fmt)
    if ctx.dry_run:
        src = str(encoders_folder) if encoders_folder else "specialists/*/best.ckpt"
        print_dry_run(ctx, "export-ensemble", [src], [str(target), "manifest.json"])
        return None
    from eosfm_cli.models.native_file import save_ensemble
    from eosfm_cli.models.reference_file import save_reference

    parsed = parse_bands_option(bands or [])
    # Every source is read and checked before the workspace is touched: a missing, corrupt or
    # unsafe checkpoint leaves no trace in it.
    if encoders_folder is not None:
        entries, inputs = folder_specialists(encoders_folder, parsed)
        if only:
            keep = {n.strip() for n in only.split(",")}
            entries = [e for e in entries if e[0].name in keep]
    else:
        entries, inputs = workspace_specialists(ctx, only)
    from eosfm_cli.io import check_space

    check_space(target, sum(param_bytes(e[1]) for e in entries))
    with ctx.workspace.stage_run(
        "export-ensemble", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as run:
        specs = [e[0] for e in entries]
        states = [e[1] for e in entries]
        if fmt == "pth":
            for note in save_reference(target, specs, states):
                warn(note)
        else:
            save_ensemble(target, specs, states)
        run.inputs = inputs
        run.outputs = [ctx.workspace.relative(target)]
        run.extra["specialists"] = [s.name for s in specs]
    console.print(specialist_table(entries, f"ensemble {ctx.workspace.relative(target)}"))
    size = target.stat().st_size / 1e6
    info(
        f"[green]wrote[/green] {ctx.workspace.relative(target)} ({len(entries)} specialists, "
        f"{size:.1f} MB)"
    )
    return target
