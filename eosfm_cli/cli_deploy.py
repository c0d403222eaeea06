"""The deployment commands of ``eosfm``: ``export-model`` (a head as one ONNX or .pt2 graph).

Registered on the app by :mod:`eosfm_cli.cli`; ``predict --runtime`` runs what it writes. Torch
and the stages are imported inside the commands, so ``eosfm --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eosfm_cli.cli_common import (
    DEFAULT_PROFILE,
    DryRunOpt,
    ModelFormat,
    ProfileOpt,
    QuietOpt,
    SetOpt,
    VerboseOpt,
    WaitOpt,
    WorkspaceOpt,
    handle_errors,
    stage_context,
)


@handle_errors
def export_model(
    head: Annotated[str | None, typer.Option(help="Head run to export (default: newest).")] = None,
    fmt: Annotated[
        ModelFormat, typer.Option("--format", help="onnx (needs the onnx extra) or pt2.")
    ] = ModelFormat.onnx,
    output: Annotated[Path | None, typer.Option(help="Output file or folder.")] = None,
    features_only: Annotated[
        bool, typer.Option(help="Export the encoder alone (the fused pyramid), no head.")
    ] = False,
    tile: Annotated[int, typer.Option(help="Tile size traced (multiple of 32).")] = 256,
    ensemble: Annotated[Path | None, typer.Option(help="Ensemble file of the head.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Export a head with its ensemble as one ONNX or .pt2 graph: raw bands in, maps out."""
    from eosfm_cli.stages.export_model import export_model as stage

    ctx = stage_context(profile, set_, workspace, None, dry_run, wait)
    stage(
        ctx,
        head=head,
        fmt=fmt.value,
        output=output,
        features_only=features_only,
        tile=tile,
        ensemble=ensemble,
    )
