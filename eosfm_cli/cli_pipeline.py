"""The pipeline commands of ``eosfm``: each parses its options and calls one stage function.

Registered on the app by :mod:`eosfm_cli.cli`. Torch and the stages are imported inside the
commands, so ``eosfm --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eosfm_cli.cli_common import (
    DEFAULT_PROFILE,
    DryRunOpt,
    EmbedDtype,
    EmbedFormat,
    ExportFormat,
    ProfileOpt,
    QuietOpt,
    ReportFormat,
    RootOpt,
    RuntimeChoice,
    SetOpt,
    VerboseOpt,
    WaitOpt,
    WorkspaceOpt,
    handle_errors,
    stage_context,
)


@handle_errors
def train_specialist(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Experiment to train (e.g. eurosat_s2).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Specialist name (default: the dataset).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from last.ckpt.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Retrain a finished specialist.")] = False,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train one specialist encoder on one dataset and band set."""
    from eosfm_cli.stages.train_specialist import train_specialist as stage

    ctx = stage_context(profile, set_, workspace, root, dry_run, wait, dataset)
    stage(ctx, name=name, resume=resume, overwrite=overwrite)


@handle_errors
def export_ensemble(
    only: Annotated[
        str | None, typer.Option(help="Comma-separated specialist names to include.")
    ] = None,
    encoders_folder: Annotated[
        Path | None, typer.Option(help="Collect Lightning checkpoints from this folder instead.")
    ] = None,
    fmt: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            help="safetensors (native, default) or pth (reference list); with --inspect: "
            "table (default), json or csv.",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Output file.")] = None,
    inspect: Annotated[
        Path | None, typer.Option(help="Print the specialists of an existing ensemble file.")
    ] = None,
    input_bands: Annotated[
        str | None, typer.Option(help="With --inspect: show the band plan for these input bands.")
    ] = None,
    bands: Annotated[
        list[str] | None,
        typer.Option(
            help="Band names of a reference .pth specialist, NAME=B04,B03,B02 or "
            "one list per specialist in order. Repeatable."
        ),
    ] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Join the workspace's specialists (or a folder of checkpoints) into one ensemble file."""
    from eosfm_cli.stages.export_ensemble import export_ensemble as stage

    ctx = stage_context(profile, set_, workspace, root, dry_run, wait)
    stage(
        ctx,
        only=only,
        encoders_folder=encoders_folder,
        fmt=fmt.value if fmt else None,
        output=output,
        inspect=inspect,
        input_bands=input_bands,
        bands=bands or [],
    )


@handle_errors
def fit_head(
    freeze: Annotated[
        bool, typer.Option("--freeze/--no-freeze", help="Keep the specialists frozen.")
    ] = True,
    ensemble: Annotated[
        Path | None, typer.Option(help="Ensemble file (default: workspace's).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Downstream experiment.")
    ] = None,
    run: Annotated[str | None, typer.Option(help="Run name under heads/.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a light head on a downstream task over the frozen ensemble."""
    from eosfm_cli.stages.fit_head import fit_head as stage

    ctx = stage_context(profile, set_, workspace, root, dry_run, wait)
    stage(ctx, freeze=freeze, ensemble=ensemble, dataset=dataset, run=run)


@handle_errors
def select_encoders(
    k: Annotated[int | None, typer.Option("--k", help="Number of specialists to keep.")] = None,
    ensemble: Annotated[
        Path | None, typer.Option(help="Ensemble file (default: workspace's).")
    ] = None,
    from_run: Annotated[str | None, typer.Option(help="Reuse the gates of a fit-head run.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Learn gates, rank the specialists and write a pruned ensemble with the best K."""
    from eosfm_cli.stages.select_encoders import select_encoders as stage

    ctx = stage_context(profile, set_, workspace, root, dry_run, wait)
    stage(ctx, k=k, ensemble=ensemble, from_run=from_run)


@handle_errors
def evaluate(
    runs: Annotated[list[str] | None, typer.Argument(help="Head runs to evaluate.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate heads on the test split: metrics, confusion matrix (or mAP), overlays.

    Machine-readable results: [bold]eval/<run>/metrics.json[/bold] in the workspace (next to
    confusion.png, per_class.png and overlays.png).
    """
    from eosfm_cli.stages.evaluate import evaluate as stage

    ctx = stage_context(profile, set_, workspace, root, dry_run, wait)
    stage(ctx, runs=runs or [])


@handle_errors
def predict(
    raster: Annotated[Path, typer.Argument(help="Input GeoTIFF.")],
    run: Annotated[str | None, typer.Option(help="Head run to apply.")] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Output GeoTIFF (.gpkg or .geojson for a detection head)."),
    ] = None,
    tile: Annotated[int, typer.Option(help="Tile size in pixels (multiple of 32).")] = 256,
    overlap: Annotated[int, typer.Option(help="Overlap between tiles, blended.")] = 32,
    batch_size: Annotated[int, typer.Option(help="Tiles per batch.")] = 8,
    probabilities: Annotated[
        bool, typer.Option(help="Write class probabilities instead of a class map.")
    ] = False,
    ensemble: Annotated[Path | None, typer.Option(help="Ensemble file of the head.")] = None,
    input_bands: Annotated[
        str | None,
        typer.Option(
            help="The raster's band names in file order (B04,B03,B02), when its band "
            "descriptions do not name them: bands are never read by position."
        ),
    ] = None,
    runtime: Annotated[
        RuntimeChoice,
        typer.Option(
            help="torch, onnxruntime or openvino (pip extras), or auto: the fastest installed "
            "on a CPU, torch on a GPU."
        ),
    ] = RuntimeChoice.torch,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Apply a head to a GeoTIFF of any size, tile by tile: a map, or boxes for detection."""
    from eosfm_cli.stages.predict import predict as stage

    ctx = stage_context(profile, set_, workspace, root, dry_run, wait)
    stage(
        ctx,
        raster=raster,
        run=run,
        output=output,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        probabilities=probabilities,
        ensemble=ensemble,
        input_bands=[b.strip() for b in input_bands.split(",")] if input_bands else None,
        runtime=runtime.value,
    )


@handle_errors
def embed(
    scene: Annotated[Path, typer.Argument(help="Input GeoTIFF.")],
    ensemble: Annotated[
        Path | None, typer.Option(help="Ensemble file (default: workspace's).")
    ] = None,
    input_bands: Annotated[
        str | None,
        typer.Option(help="The scene's band names in file order, when its descriptions are not."),
    ] = None,
    level: Annotated[int, typer.Option(help="Pyramid level (0: finest, 1/4 for ConvNeXt).")] = 0,
    reduce: Annotated[str, typer.Option(help="none, or pca:D (D principal components).")] = "none",
    basis: Annotated[
        Path | None, typer.Option(help="Reuse a PCA basis saved by an earlier embed.")
    ] = None,
    fmt: Annotated[
        EmbedFormat, typer.Option("--format", help="cog (one band per dimension) or parquet.")
    ] = EmbedFormat.cog,
    dtype: Annotated[
        EmbedDtype,
        typer.Option(help="COG values: float16, or int8 with a per-band scale and offset."),
    ] = EmbedDtype.float16,
    similar_to: Annotated[
        str | None,
        typer.Option(
            help="Also map the cosine similarity to this location's embedding: X,Y in the "
            "scene's CRS, or px:ROW,COL (a scene pixel). Writes <name>.similarity.tif/.png."
        ),
    ] = None,
    patch: Annotated[
        int | None, typer.Option(help="Parquet: patch side in level pixels (one row each).")
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Output file or folder.")] = None,
    tile: Annotated[int, typer.Option(help="Tile size in pixels (multiple of 32).")] = 256,
    overlap: Annotated[int, typer.Option(help="Overlap between tiles, blended.")] = 32,
    batch_size: Annotated[int, typer.Option(help="Tiles per batch.")] = 8,
    runtime: Annotated[
        RuntimeChoice,
        typer.Option(help="torch, or onnxruntime / openvino / auto on an ONNX export (cached)."),
    ] = RuntimeChoice.torch,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a scene's embeddings with the frozen ensemble: a COG, or GeoParquet patches."""
    from eosfm_cli.stages.embed import embed as stage

    ctx = stage_context(profile, set_, workspace, None, dry_run, wait)
    stage(
        ctx,
        scene,
        ensemble=ensemble,
        input_bands=[b.strip() for b in input_bands.split(",")] if input_bands else None,
        level=level,
        reduce=reduce,
        basis=basis,
        fmt=fmt.value,
        dtype=dtype.value,
        similar_to=similar_to,
        patch=patch,
        output=output,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        runtime=runtime.value,
    )


@handle_errors
def emissions_report(
    workspaces: Annotated[
        list[Path] | None,
        typer.Option("--workspace", "-w", help="Workspace(s) to report on. Repeatable."),
    ] = None,
    fmt: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format",
            help="Write md, json or csv to stdout (reports/emissions.{md,json,png} are always "
            "written in the workspace).",
        ),
    ] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Aggregate the CodeCarbon records of one or more workspaces.

    Machine-readable results: [bold]reports/emissions.json[/bold] in the (first) workspace,
    or --format json / csv on stdout.
    """
    from eosfm_cli.stages.emissions_report import emissions_report as stage

    ctx = stage_context(profile, set_, workspaces[0] if workspaces else None, None, False)
    stage(ctx, workspaces=workspaces or [], fmt=fmt.value if fmt else None)
