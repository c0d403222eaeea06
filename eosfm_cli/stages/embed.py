"""Stage `eosfm embed`: the frozen ensemble as a feature extractor for a whole scene.

The scene's bands are named by its band descriptions (or ``input_bands``); the ensemble runs
on them at one pyramid level, tile by tile, blended as in ``predict``
(:mod:`eosfm_cli.inference.embeddings`). ``reduce="pca:D"`` projects onto a basis fitted on a
seeded sample of the scene, or loaded with ``basis`` (:mod:`eosfm_cli.inference.pca`).

**Outputs.** ``embeddings/<scene stem>-L<level>.tif`` (or ``--output``): a COG, one half-float
band per dimension on the level's grid (:mod:`eosfm_cli.inference.embedding_files`); or with
``fmt="parquet"`` a GeoParquet table, one row per patch (:mod:`eosfm_cli.inference.geoparquet`).
With a PCA, ``<name>.pca.safetensors`` (the basis, unless ``basis`` was given) and
``<name>.png`` (the scene beside components 1-3) are written beside it. ``dtype="int8"`` stores
the COG as int8 with a per-band scale and offset. ``similar_to`` (``X,Y`` in the scene's CRS, or
``px:ROW,COL``) adds ``<name>.similarity.tif`` and ``.png``: every level pixel's cosine
similarity to that location's embedding (:mod:`eosfm_cli.inference.similarity`). Every file is
written under a temporary name and renamed when whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eosfm_cli.console import info
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.downstream import ensemble_file, ensemble_options
from eosfm_cli.errors import ProfileError
from eosfm_cli.head_exports import embed_level_fn
from eosfm_cli.head_runs import select_device
from eosfm_cli.inference.embedding_files import (
    COG_DTYPES,
    blended_half,
    blended_values,
    cog_bytes,
    level_transform,
    provenance,
    write_cog,
)
from eosfm_cli.inference.embeddings import (
    level_channel_names,
    level_grid,
    projected,
    run_level_tiles,
    sample_vectors,
)
from eosfm_cli.inference.geoparquet import check_patch, write_patch_table
from eosfm_cli.inference.outputs import tile_progress
from eosfm_cli.inference.pca import check_basis, fit_pca, load_basis, parse_reduce, save_basis
from eosfm_cli.inference.raster import open_source, scene_bands
from eosfm_cli.inference.reading import raster_env
from eosfm_cli.inference.similarity import (
    LevelCopy,
    query_point,
    similarity_paths,
    write_similarity,
)
from eosfm_cli.inference.tiling import TILE_MULTIPLE, TileGrid
from eosfm_cli.io import check_space, fingerprint_file, sha256_file
from eosfm_cli.viz.embedding_preview import (
    ComponentLook,
    write_embedding_preview,
    write_similarity_preview,
)
from eosfm_cli.viz.previews import Quicklook

#: Output suffixes of each format.
SUFFIXES = {"cog": (".tif", ".tiff"), "parquet": (".parquet", ".geoparquet")}


def embed(
    ctx: StageContext,
    scene: Path,
    *,
    ensemble: Path | None = None,
    input_bands: Sequence[str] | None = None,
    level: int = 0,
    reduce: str = "none",
    basis: Path | None = None,
    fmt: str = "cog",
    dtype: str = "float16",
    similar_to: str | None = None,
    patch: int | None = None,
    output: Path | None = None,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    seed: int = 0,
    runtime: str = "torch",
) -> Path | None:
    """Run the `embed` stage: write a scene's embeddings at one pyramid level.

    Args:
        ctx: the resolved profile and workspace.
        scene: the input GeoTIFF.
        ensemble: the ensemble file (default: the workspace's).
        input_bands: the scene's band names in file order, when its band descriptions do not
            name them (bands are never read by position).
        level: the pyramid level (0: the finest).
        reduce: ``none`` or ``pca:D``.
        basis: a PCA basis saved by an earlier run (with ``reduce="pca:D"``).
        fmt: ``cog`` or ``parquet``.
        dtype: the COG's values: ``float16``, or ``int8`` with a per-band scale and offset.
        similar_to: also map the cosine similarity to this location's embedding: ``X,Y`` (map
            coordinates in the scene's CRS) or ``px:ROW,COL`` (a scene pixel).
        patch: parquet patch side in level pixels (default: the largest up to 8 dividing the
            level grid).
        output: the output file, or a folder for the default name.
        tile: tile side in input pixels, a multiple of 32.
        overlap: input pixels shared by neighbouring tiles, blended.
        batch_size: tiles per forward pass.
        seed: seed of the PCA's sample.
        runtime: ``torch``, or ``onnxruntime``/``openvino``/``auto`` on an ONNX export.

    Returns:
        The output path, or ``None`` for a dry run.

    Raises:
        ProfileError: for bad options, a level the pyramid lacks, a patch that does not
            divide the level grid or a ``similar_to`` outside the scene.
        DataError: when the scene is missing, its bands are not named, or it has no data at
            ``similar_to``.
        BandError: when no specialist can run on the scene's bands.
        ArtifactError: for a missing ensemble or a basis fitted elsewhere.
    """
    from eosfm_cli.models.ensemble import EosFM

    scene = Path(scene)
    dims = parse_reduce(reduce)
    _check_options(fmt, dtype, tile, batch_size, basis, dims)
    ens = ensemble_file(ctx, ensemble)
    bands = scene_bands(scene, input_bands)
    source = open_source(scene, bands, input_bands)
    opts = ensemble_options(ctx, TileGrid(source.height, source.width, tile, overlap).n_tiles)
    # An exported ensemble holds no fusion or feature-norm weights: those are a head's.
    opts.update(fusion="concat", normalize_features=False)
    model = EosFM.from_file(ens, input_bands=bands, **opts)
    grid = level_grid(model.reductions, level, source.height, source.width, tile, overlap)
    hl, wl = grid.level_height, grid.level_width
    names = level_channel_names(model, level)
    count = dims or len(names)
    patch = check_patch(hl, wl, patch) if fmt == "parquet" else None
    out_path = _output(ctx, scene, level, fmt, output)
    query = query_point(similar_to, source, grid) if similar_to else None
    sim_tif, sim_png = similarity_paths(out_path)
    if source.profile.get("crs") is None:
        info(f"note: {scene.name} has no CRS; the embeddings keep its pixel grid, without one")
    info(
        f"embed {scene.name} ({source.width}x{source.height}, {', '.join(bands)}) at level "
        f"{level} (1/{grid.reduction}: {wl}x{hl}), {count} dimensions, {grid.tiles.n_tiles} "
        f"tiles" + (f", patches of {patch}" if patch else "")
    )
    if ctx.dry_run:
        per_patch = count * 4 + 96  # the vector, its polygon and centre
        size = cog_bytes(grid, count, dtype) if patch is None else hl * wl * per_patch // patch**2
        writes = [f"{out_path} (about {size / 1e6:.1f} MB uncompressed)"]
        if dims:
            writes += [str(out_path.with_suffix(".png"))]
            writes += [] if basis else [str(out_path.with_suffix(".pca.safetensors"))]
        if query is not None:
            writes += [f"{sim_tif} (level pixel {query.row},{query.col})", str(sim_png)]
        print_dry_run(ctx, "embed", [str(scene), str(ens)], [*writes, "manifest.json"])
        return None

    preview = out_path.with_suffix(".png")
    with ctx.workspace.stage_run(
        "embed", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        sha = sha256_file(ens)
        device = select_device(ctx)
        model.to(device)
        pca, basis_path = None, basis
        raw = embed_level_fn(ctx, runtime, model, ens, tile, opts, level, device)
        if dims:
            meta: dict[str, object] = {"ensemble_sha256": sha, "level": level, "channels": names}
            if basis is not None:
                pca = load_basis(basis)
                check_basis(pca, basis, sha, level, names, dims)
            else:
                sample = sample_vectors(raw, source, grid, seed=seed)
                pca = fit_pca(sample, dims, {**meta, "samples": len(sample), "seed": seed})
                basis_path = save_basis(out_path.with_suffix(".pca.safetensors"), pca)
            names = [f"pca:{i + 1}" for i in range(pca.dims)]
            reduce = f"pca:{pca.dims}"
        tags = provenance(model, ens, sha, level, reduce, basis_path)
        look = Quicklook.create(source.height, source.width, bands)
        comps = ComponentLook.create(hl, wl)
        fn = projected(raw, pca)

        def fill(sink: Any) -> Any:
            return run_level_tiles(
                fn,
                source,
                sink,
                blended_half if fmt == "cog" and dtype == "float16" else blended_values,
                len(names),
                grid,
                batch_size=batch_size,
                on_input=look.add_input,
                on_rows=comps.add_rows,
                on_tiles=advance,
            )

        rows, crs = None, source.profile.get("crs")
        transform = level_transform(source, grid.reduction)
        copy = LevelCopy(out_path, grid, len(names), crs, transform)
        try:
            with raster_env(), tile_progress(grid.tiles.n_tiles) as advance:
                if fmt == "cog":
                    check_space(out_path, 3 * cog_bytes(grid, len(names), dtype))
                    stats = write_cog(out_path, source, grid, names, tags, fill, dtype=dtype)
                else:
                    table_args: dict[str, Any] = {"height": hl, "width": wl, "patch": patch}
                    table_args.update(transform=transform, crs=crs, provenance=tags)
                    tee = copy.wrap if query is not None else None
                    stats, rows = write_patch_table(out_path, table_args, fill, tee)
                    copy.close()
            outputs = [out_path]
            if query is not None:
                level_file = out_path if fmt == "cog" else copy.path
                sims = write_similarity(level_file, query, sim_tif, tags)
                label = f"{query.text} (level pixel {query.row},{query.col})"
                point = (query.row, query.col)
                write_similarity_preview(sim_png, look, sims, point, grid.reduction, label)
                outputs += [sim_tif, sim_png]
                info(f"similarity to {label}: {ctx.workspace.relative(sim_tif)}")
        finally:
            copy.remove()
        if pca is not None:
            write_embedding_preview(preview, look, comps)
            outputs += [preview] + ([basis_path] if basis is None and basis_path else [])
        record.inputs = {
            ctx.workspace.relative(scene): fingerprint_file(scene),
            ctx.workspace.relative(ens): sha,
        }
        record.outputs = [ctx.workspace.relative(p) for p in outputs]
        record.extra.update(
            level=level,
            reduce=reduce,
            format=fmt,
            dtype=dtype if fmt == "cog" else None,
            similar_to=similar_to,
            dimensions=len(names),
            grid=[hl, wl],
            patch=patch,
            rows=rows,
            tiles=stats.tiles,
            tiles_skipped=stats.skipped,
            tiles_per_second=round(stats.rate, 3),
        )
    info(
        f"wrote {ctx.workspace.relative(out_path)} ({len(names)} dimensions"
        + (f", {rows} patches" if rows is not None else "")
        + f"): {stats.tiles} tiles in {stats.seconds:.1f} s ({stats.rate:.2f} tiles/s)"
    )
    return out_path


def _check_options(
    fmt: str, dtype: str, tile: int, batch_size: int, basis: Path | None, dims: int | None
) -> None:
    if fmt not in SUFFIXES:
        raise ProfileError(f"unknown format {fmt!r}", where="`fmt=`", hint="use cog or parquet")
    if dtype not in COG_DTYPES:
        raise ProfileError(f"unknown dtype {dtype!r}", "`dtype=`", "use float16 or int8")
    if dtype != "float16" and fmt != "cog":
        raise ProfileError(
            f"dtype {dtype} is the COG's; GeoParquet vectors are float32",
            where="`dtype=`",
            hint="drop --dtype, or use --format cog",
        )
    if tile < TILE_MULTIPLE or tile % TILE_MULTIPLE:
        raise ProfileError(
            f"tile must be a positive multiple of {TILE_MULTIPLE} (got {tile})", where="`tile=`"
        )
    if batch_size < 1:
        raise ProfileError(f"batch size must be at least 1 (got {batch_size})", "`batch_size=`")
    if basis is not None and dims is None:
        raise ProfileError(
            "a PCA basis needs a PCA reduction", where="`basis=`", hint="add --reduce pca:D"
        )


def _output(ctx: StageContext, scene: Path, level: int, fmt: str, output: Path | None) -> Path:
    """``--output`` (a file, or a folder for the default name), checked against the format."""
    name = f"{scene.stem}-L{level}{SUFFIXES[fmt][0]}"
    if output is None:
        return ctx.workspace.path("embeddings", name)
    path = Path(output)
    if path.is_dir():
        return path / name
    if path.suffix.lower() not in SUFFIXES[fmt]:
        raise ProfileError(
            f"a {fmt} output cannot be named {path.name!r}",
            where="`output=`",
            hint=f"name it {' or '.join(SUFFIXES[fmt])}, or choose the other --format",
        )
    return path
