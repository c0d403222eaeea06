"""The commands that take the ensemble out of the tool: ``distill`` and ``export-model``.

``distill`` writes one student encoder for the whole ensemble; ``export-model`` writes a head as
one ONNX or .pt2 graph.

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
    RootOpt,
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


@handle_errors
def distill(
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Experiment whose images to distil on (no labels)."),
    ] = None,
    ensemble: Annotated[
        Path | None, typer.Option(help="Teacher ensemble file (default: workspace's).")
    ] = None,
    student: Annotated[
        str | None, typer.Option(help="Student timm backbone (default: model.backbone).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Student name (default: <ensemble>-student).")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            help="Experiment or folder of GeoTIFFs to distil on (repeat to mix; "
            "default: --dataset).",
        ),
    ] = None,
    input_bands: Annotated[
        str | None,
        typer.Option(help="Student bands, e.g. B02,B03,B04,B08 (default: the ensemble's)."),
    ] = None,
    channels: Annotated[
        str,
        typer.Option(
            help="Student pyramid: 'own' channels, or 'teacher' (projections kept, so heads "
            "sized for the teacher fit).",
        ),
    ] = "own",
    resume: Annotated[bool, typer.Option(help="Continue from last.ckpt.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Distil a finished student again.")] = False,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Distil the ensemble into one student encoder, written as a one-specialist ensemble."""
    from eosfm_cli.stages.distill import distill as stage

    ctx = stage_context(profile, set_, workspace, root, dry_run, wait, dataset)
    stage(
        ctx,
        ensemble=ensemble,
        student=student,
        name=name,
        data=data,
        input_bands=input_bands.split(",") if input_bands else None,
        resume=resume,
        overwrite=overwrite,
        channels=channels,
    )
