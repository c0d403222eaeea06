"""Stage `eosfm export-model`: a head run with its ensemble as one ONNX or ``.pt2`` graph.

The graph takes raw physical values in the head's input bands (named in the file's metadata)
and gives the head's output: class probabilities and a class map, or regression values (see
:class:`~eosfm_cli.models.deployable.DeployableModel`). Band adaptation and every specialist's
normalisation are inside it, so a user needs only an ONNX runtime and numpy to apply it. With
``features_only=True`` the ensemble's fused pyramid is exported instead (all levels, no gates,
no head), which is what ``embed`` runs.

The batch is always dynamic; height and width are dynamic in multiples of the largest reduction
(32 for ConvNeXt) except where ONNX cannot keep them (UPerNet's pyramid pooling: a dense head's
ONNX file is fixed to ``tile``), see :mod:`eosfm_cli.inference.graph_export`. Detection and
change-detection heads stay PyTorch-only. The file is written under a temporary name and
renamed once whole.
"""

from __future__ import annotations

from pathlib import Path

from eosfm_cli.console import info
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.errors import ArtifactError, ProfileError, WorkspaceError
from eosfm_cli.head_exports import export_head
from eosfm_cli.head_runs import find_head_run
from eosfm_cli.inference.graph_export import check_format
from eosfm_cli.inference.tiling import TILE_MULTIPLE
from eosfm_cli.io import fingerprint_file


def export_model(
    ctx: StageContext,
    head: str | None = None,
    fmt: str = "onnx",
    output: Path | None = None,
    *,
    features_only: bool = False,
    tile: int = 256,
    ensemble: Path | None = None,
) -> Path | None:
    """Run the `export-model` stage: write a head run as one graph.

    Args:
        ctx: the resolved profile and workspace.
        head: the head run under ``heads/`` (or a head-run folder); default: the newest.
        fmt: ``onnx`` or ``pt2``.
        output: the output file, or a folder for the default name (default
            ``exports/<run>.<fmt>``, ``exports/<run>-features.<fmt>`` with ``features_only``).
        features_only: export the encoder alone (the fused pyramid, all levels).
        tile: the tile side the graph is traced with (and fixed to, where it must be).
        ensemble: the ensemble file (default: the one recorded in the head run).

    Returns:
        The file written, or ``None`` for a dry run.

    Raises:
        ProfileError: for an unknown format or a bad tile size.
        ArtifactError: for a missing run, a head that does not export, or a missing extra.
        WorkspaceError: when the workspace has no head run.
    """
    graph_format = check_format(fmt)
    if tile < TILE_MULTIPLE or tile % TILE_MULTIPLE:
        raise ProfileError(
            f"tile must be a positive multiple of {TILE_MULTIPLE} (got {tile})",
            where="--tile",
            hint=f"use e.g. {max(TILE_MULTIPLE, round(tile / TILE_MULTIPLE) * TILE_MULTIPLE)}",
        )
    if ctx.dry_run:
        _dry_run(ctx, head, graph_format, output, features_only)
        return None
    folder = find_head_run(ctx, head)
    out_path = _output_path(ctx, folder.name, graph_format, output, features_only)
    with ctx.workspace.stage_run(
        "export-model", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        meta = export_head(
            folder,
            graph_format,
            out_path,
            ensemble=ensemble,
            tile=tile,
            features_only=features_only,
        )
        sources = meta["sources"]
        record.inputs = {
            ctx.workspace.relative(src["path"]): str(src["sha256"]) for src in sources.values()
        }
        record.outputs = [ctx.workspace.relative(out_path)]
        record.extra.update(
            head=folder.name,
            format=graph_format,
            kind=meta["kind"],
            tile=tile,
            dynamic_spatial=meta["dynamic_spatial"],
            output_sha=fingerprint_file(out_path),
        )
    shape = "x".join(str(d) for d in meta["input_shape"])
    info(
        f"wrote {ctx.workspace.relative(out_path)}: {meta['kind']} of head {folder.name}, input "
        f"{shape} ({','.join(meta['input_bands'])}), outputs {', '.join(meta['output_names'])}"
    )
    return out_path


def _output_path(
    ctx: StageContext, run: str, fmt: str, output: Path | None, features_only: bool
) -> Path:
    name = f"{run}-features.{fmt}" if features_only else f"{run}.{fmt}"
    if output is None:
        return ctx.workspace.path("exports", name)
    path = Path(output)
    if path.is_dir():
        return path / name
    if path.suffix.lower() != f".{fmt}":
        raise ProfileError(
            f"a {fmt} export is named .{fmt}, not {path.suffix or 'without a suffix'!r}",
            where="--output",
            hint=f"name it {path.with_suffix('.' + fmt).name}, or pass --format",
        )
    return path


def _dry_run(
    ctx: StageContext, head: str | None, fmt: str, output: Path | None, features_only: bool
) -> None:
    try:
        folder = find_head_run(ctx, head)
        run_s, name = str(ctx.workspace.relative(folder)), folder.name
    except (ArtifactError, WorkspaceError):
        run_s, name = f"heads/{head or '<newest>'}", head or "<newest>"
    out_s = str(output) if output else f"exports/{name}{'-features' if features_only else ''}.{fmt}"
    print_dry_run(
        ctx,
        "export-model",
        [f"{run_s}/head.json", f"{run_s}/head.safetensors", "the head's ensemble"],
        [out_s, "manifest.json"],
    )
