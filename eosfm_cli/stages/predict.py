"""Stage `eosfm predict`: apply a fitted head to a GeoTIFF of any size, tile by tile.

The raster is cut into overlapping tiles whose outputs are blended
(:mod:`eosfm_cli.inference.tiling`), read and written a strip of rows at a time, so memory does
not grow with the raster (:mod:`eosfm_cli.inference.dense`).

**Outputs.** ``predictions/<raster stem>-<run>.tif`` (or ``--output``) in the input's CRS and
transform: a uint8 class map (nodata 255) for segmentation, classification and multi-label heads
(the top class), float32 class probabilities with ``probabilities=True`` (one band per class,
nodata NaN), or one float32 band for regression (nodata NaN); see
:mod:`eosfm_cli.inference.heads`. ``<name>.png`` beside it shows an RGB-like quicklook of the
input next to the colour-coded prediction. A detection head writes its boxes as vectors instead,
``<name>.gpkg`` (or ``.geojson``), every box scoring at least 0.05 with its score, and a preview
of the boxes scoring at least 0.5 (:mod:`eosfm_cli.inference.boxes`,
:mod:`eosfm_cli.inference.vectors`). Files are written under temporary names and renamed at the
end, so a failed run leaves nothing partial.

**Nodata.** A pixel whose bands all equal the input's nodata value (or are NaN) gets the
output's nodata; a tile without any valid pixel is not run (:mod:`eosfm_cli.inference.reading`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from eosfm_cli.console import info
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.errors import ArtifactError, ProfileError, WorkspaceError
from eosfm_cli.head_runs import find_head_run, select_device
from eosfm_cli.inference.heads import DENSE, POOLED, head_output
from eosfm_cli.inference.outputs import TilePass, write_detections, write_map
from eosfm_cli.inference.raster import open_source
from eosfm_cli.inference.tiling import TILE_MULTIPLE, TileGrid
from eosfm_cli.inference.vectors import DRIVERS
from eosfm_cli.io import fingerprint_file

if TYPE_CHECKING:
    from eosfm_cli.inference.runtimes import Runtime

#: Every head task predict applies.
TASKS = (*DENSE, *POOLED, "detection")


def predict(
    ctx: StageContext,
    raster: Path,
    run: str | None = None,
    output: Path | None = None,
    *,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    probabilities: bool = False,
    ensemble: Path | None = None,
    input_bands: Sequence[str] | None = None,
    runtime: str = "torch",
) -> Path | None:
    """Run the `predict` stage: apply a head run to a GeoTIFF of any size.

    Args:
        ctx: the resolved profile and workspace.
        raster: the input GeoTIFF; its bands are the head's input bands, in order.
        run: the head run under ``heads/`` (or a head-run folder); default: the newest.
        output: the output GeoTIFF, or a folder for the default name (default
            ``predictions/<raster stem>-<run>.tif``); the preview is written beside it as
            ``<name>.png``.
        tile: tile side in pixels, a multiple of 32.
        overlap: pixels shared by neighbouring tiles, blended.
        batch_size: tiles per forward pass.
        probabilities: write per-class probabilities (float32) instead of a class map.
        ensemble: the ensemble file (default: the one recorded in the head run).
        input_bands: the raster's band names in file order, when its band descriptions do
            not name them (bands are never read by position).
        runtime: ``torch``, ``onnxruntime`` or ``openvino`` (the head's ONNX export, written
            once to ``cache/exports/``), or ``auto`` (:func:`~eosfm_cli.inference.runtimes.
            resolve_runtime`: the fastest installed on a CPU, torch on a GPU or for a head
            that does not export).

    Returns:
        The output path, or ``None`` for a dry run.

    Raises:
        ProfileError: for a bad tile size, overlap, batch size or runtime.
        ArtifactError: when the head run is missing or is a change-detection head, or the
            runtime's extra is missing.
        WorkspaceError: when the workspace has no head run.
        DataError: when the raster is missing, unreadable or has other bands than the head.
    """
    from eosfm_cli.models.head_file import load_generalist, read_head_meta

    raster = Path(raster)
    if ctx.dry_run:
        _dry_run(ctx, raster, run, output)
        return None
    _check_options(tile, overlap, batch_size)
    folder = find_head_run(ctx, run)
    cfg = read_head_meta(folder).get("config") or {}
    task, classes = str(cfg.get("task")), [str(c) for c in cfg.get("classes") or []]
    bands = [str(b) for b in cfg.get("input_bands") or []]
    _check_head(folder, task, bands)
    source = open_source(raster, bands, input_bands)
    out_path = Path(output) if output is not None else default_output(ctx, raster, folder)
    if out_path.is_dir():
        out_path = out_path / default_output(ctx, raster, folder).name
    if task == "detection":
        if probabilities:
            raise ProfileError(
                "a detection head writes scored boxes, not class probabilities",
                where="--probabilities",
                hint="drop --probabilities; every box carries its score",
            )
        out_path = vector_output(out_path)
    preview_path = out_path.with_suffix(".png")

    with ctx.workspace.stage_run(
        "predict", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        model, meta = load_generalist(folder, ensemble)
        device = select_device(ctx)
        model.to(device)
        engine = _runtime(runtime, device.type, task)
        tile_fn = None
        if engine != "torch":
            from eosfm_cli.head_exports import cached_head_export
            from eosfm_cli.inference.runtimes import head_graph_tile_fn, load_graph

            graph = cached_head_export(ctx, folder, ensemble, tile)
            tile_fn = head_graph_tile_fn(load_graph(graph, engine))
        grid = TileGrid(source.height, source.width, tile, overlap)
        info(
            f"predict {raster.name} ({source.width}x{source.height}, {len(bands)} bands) with "
            f"head {folder.name} ({task}): {grid.n_tiles} tiles of {tile} px, overlap {overlap}, "
            f"on {engine}"
        )
        tiles = TilePass(grid, batch_size, device)
        if task == "detection":
            found, stats = write_detections(model, source, out_path, preview_path, tiles, classes)
            kind = "boxes"
            record.extra["detections"] = len(found)
        else:
            spec = head_output(task, classes, probabilities)
            stats = write_map(model, source, spec, out_path, preview_path, tiles, classes, tile_fn)
            kind = spec.kind
        head_file = folder / "head.safetensors"
        record.inputs = {
            ctx.workspace.relative(raster): fingerprint_file(raster),
            ctx.workspace.relative(head_file): fingerprint_file(head_file),
            # load_generalist checked that this file's sha256 is the recorded one.
            ctx.workspace.relative(ensemble or str(meta.get("ensemble", ""))): str(
                meta.get("ensemble_sha256", "")
            ),
        }
        record.outputs = [ctx.workspace.relative(out_path), ctx.workspace.relative(preview_path)]
        record.extra.update(
            head=folder.name,
            task=task,
            runtime=engine,
            output=kind,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            tiles=stats.tiles,
            tiles_skipped=stats.skipped,
            tiles_per_second=round(stats.rate, 3),
            size=[source.height, source.width],
        )
    info(
        f"wrote {ctx.workspace.relative(out_path)} and {preview_path.name}: {stats.tiles} tiles "
        f"in {stats.seconds:.1f} s ({stats.rate:.2f} tiles/s)"
        + (f", {stats.skipped} empty tiles skipped" if stats.skipped else "")
    )
    return out_path


def _dry_run(ctx: StageContext, raster: Path, run: str | None, output: Path | None) -> None:
    """Print what predict would read and write, without loading anything heavy."""
    from eosfm_cli.models.head_file import read_head_meta

    suffix = ".tif"
    try:
        head_dir = find_head_run(ctx, run)
        run_s = str(ctx.workspace.relative(head_dir))
        if (read_head_meta(head_dir).get("config") or {}).get("task") == "detection":
            suffix = ".gpkg"
    except (ArtifactError, WorkspaceError):
        run_s = f"heads/{run or '<newest>'}"
    out_s = str(output) if output else f"predictions/{raster.stem}-{Path(run_s).name}{suffix}"
    print_dry_run(
        ctx,
        "predict",
        [str(raster), f"{run_s}/head.json", f"{run_s}/head.safetensors", "the head's ensemble"],
        [out_s, str(Path(out_s).with_suffix(".png")), "manifest.json"],
    )


def _runtime(runtime: str, device_type: str, task: str) -> Runtime:
    """The runtime predict uses: ``auto`` keeps PyTorch for heads that do not export."""
    from eosfm_cli.inference.runtimes import resolve_runtime

    if runtime == "auto" and task == "detection":
        return "torch"
    engine = resolve_runtime(runtime, device_type)
    if engine != "torch" and task == "detection":
        raise ProfileError(
            f"a detection head runs in PyTorch only, not {engine}",
            where="--runtime",
            hint="use --runtime torch (or auto)",
        )
    return engine


def _check_options(tile: int, overlap: int, batch_size: int) -> None:
    if tile < TILE_MULTIPLE or tile % TILE_MULTIPLE:
        raise ProfileError(
            f"tile must be a positive multiple of {TILE_MULTIPLE} (got {tile})",
            where="--tile",
            hint=f"use e.g. {max(TILE_MULTIPLE, round(tile / TILE_MULTIPLE) * TILE_MULTIPLE)}",
        )
    if not 0 <= overlap < tile:
        raise ProfileError(
            f"overlap must be between 0 and the tile size {tile} (got {overlap})",
            where="--overlap",
            hint=f"use e.g. {tile // 8}",
        )
    if batch_size < 1:
        raise ProfileError(f"batch size must be at least 1 (got {batch_size})", "--batch-size")


def _check_head(folder: Path, task: str, bands: list[str]) -> None:
    """Refuse a head predict cannot apply over a single raster."""
    if task == "change_detection":
        raise ArtifactError(
            "predict cannot apply a change_detection head: it needs two dates per pixel",
            where=str(folder / "head.json"),
            hint="use `eosfm evaluate` for change detection, or pass a single-date head",
        )
    if task not in TASKS or not bands:
        raise ArtifactError(
            f"predict cannot apply this head (task {task!r}, input bands {bands or 'missing'})",
            where=str(folder / "head.json"),
            hint=f"fit a {', '.join(TASKS)} head with `eosfm fit-head`",
        )


def default_output(ctx: StageContext, raster: Path, folder: Path) -> Path:
    """``predictions/<raster stem>-<run>.tif`` in the workspace."""
    return ctx.workspace.path("predictions", f"{raster.stem}-{folder.name}.tif")


def vector_output(path: Path) -> Path:
    """The detection output path: ``.tif`` becomes ``.gpkg``; other suffixes are refused."""
    if path.suffix.lower() in DRIVERS:
        return path
    if path.suffix.lower() in (".tif", ".tiff", ""):
        return path.with_suffix(".gpkg")
    raise ProfileError(
        f"a detection head writes boxes as vectors, not {path.suffix!r}",
        where="--output",
        hint="name the output .gpkg or .geojson",
    )
