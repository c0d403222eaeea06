"""A head run (or an ensemble's encoder) as an exported graph, and predict's cached exports.

:func:`export_head` and :func:`export_features` build the deployable module
(:mod:`eosfm_cli.models.deployable`) and write it with the metadata every export carries
(:mod:`eosfm_cli.inference.graph_export`): the input bands, classes, tile size, the graph's
shapes, and the sha256 of each source file (ensemble, ``head.safetensors``, ``head.json``).

:func:`cached_head_export` is what ``predict --runtime onnxruntime|openvino`` runs on: the ONNX
export of the head run in ``cache/exports/``, named by the sha256 of its sources and tile size,
written once and reused while the sources are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eosfm_cli import __version__
from eosfm_cli.console import info
from eosfm_cli.inference.graph_export import GraphFormat, write_graph
from eosfm_cli.io import json_digest, sha256_file

if TYPE_CHECKING:
    from eosfm_cli.context import StageContext
    from eosfm_cli.models.ensemble import EosFM

#: The tile side traced when none is given (predict's default tile).
DEFAULT_TILE = 256


def head_sources(folder: Path, meta: dict[str, Any], ensemble: Path) -> dict[str, dict[str, str]]:
    """The files a head export is built from, each with its sha256."""
    return {
        "ensemble": {"path": str(ensemble), "sha256": str(meta.get("ensemble_sha256", ""))},
        "head.safetensors": {
            "path": str(folder / "head.safetensors"),
            "sha256": sha256_file(folder / "head.safetensors"),
        },
        "head.json": {
            "path": str(folder / "head.json"),
            "sha256": sha256_file(folder / "head.json"),
        },
    }


def export_head(
    folder: Path,
    fmt: GraphFormat,
    path: Path,
    *,
    ensemble: Path | None = None,
    tile: int = DEFAULT_TILE,
    features_only: bool = False,
) -> dict[str, Any]:
    """Export a head run (or, with ``features_only``, its encoder alone) to ``path``.

    Args:
        folder: the head-run folder.
        fmt: ``onnx`` or ``pt2``.
        path: the output file.
        ensemble: the ensemble file (default: the one recorded in ``head.json``).
        tile: the tile side traced (and fixed, where the graph needs it).
        features_only: export the ensemble's fused pyramid (all levels), without gates or head.

    Returns:
        The metadata written.

    Raises:
        ArtifactError: for a missing or mismatched run, a head that does not export, or a
            missing exporter extra.
    """
    from eosfm_cli.models.deployable import DeployableEncoder, DeployableModel, deployable_summary
    from eosfm_cli.models.head_file import fitted_ensemble, load_generalist, read_head_meta

    meta = read_head_meta(folder)
    ens = fitted_ensemble(folder, meta, ensemble)
    model, _ = load_generalist(folder, ens)
    module: DeployableModel | DeployableEncoder
    if features_only:
        module = DeployableEncoder(cast("EosFM", model.encoder))
    else:
        module = DeployableModel(model)
    module.eval()
    summary = deployable_summary(module)
    record = {
        "eosfm_version": __version__,
        "kind": "features" if features_only else "head",
        "head_run": folder.name,
        "tile": tile,
        "sources": head_sources(folder, meta, ens),
        **summary,
    }
    return _write(module, fmt, path, record, summary["outputs"], tile)


def export_features(
    ensemble: Path,
    input_bands: Sequence[str],
    fmt: GraphFormat,
    path: Path,
    *,
    tile: int = DEFAULT_TILE,
    ensemble_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export an ensemble file's fused pyramid for these input bands (what ``embed`` runs).

    Args:
        ensemble: the ensemble file (full, pruned or a distilled student).
        input_bands: the input's band names, in channel order.
        fmt: ``onnx`` or ``pt2``.
        path: the output file.
        tile: the tile side traced.
        ensemble_options: more keyword options of :class:`~eosfm_cli.models.ensemble.EosFM`.

    Returns:
        The metadata written.
    """
    from eosfm_cli.models.deployable import DeployableEncoder, deployable_summary
    from eosfm_cli.models.ensemble import EosFM

    encoder = EosFM.from_file(ensemble, input_bands, **(ensemble_options or {}))
    module = DeployableEncoder(encoder).eval()
    summary = deployable_summary(module)
    record = {
        "eosfm_version": __version__,
        "kind": "features",
        "tile": tile,
        "sources": {"ensemble": {"path": str(ensemble), "sha256": sha256_file(ensemble)}},
        **summary,
    }
    return _write(module, fmt, path, record, summary["outputs"], tile)


def _write(
    module: Any,
    fmt: GraphFormat,
    path: Path,
    record: dict[str, Any],
    outputs: Sequence[str],
    tile: int,
) -> dict[str, Any]:
    import torch

    encoder = getattr(module, "encoder", module)
    # A seeded batch of two: a batch of one would let the tracer fix the batch size.
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, len(encoder.input_bands), tile, tile, generator=generator) * 3000
    return write_graph(module, fmt, path, example, record, outputs)


def cached_head_export(ctx: StageContext, folder: Path, ensemble: Path | None, tile: int) -> Path:
    """The ONNX export of a head run for this tile size, written on first use.

    Its name is a digest of the sources' sha256 and the tile size, so a re-fitted head or
    another ensemble gets a new export and an unchanged one is reused.
    """
    from eosfm_cli.models.head_file import fitted_ensemble, read_head_meta

    meta = read_head_meta(folder)
    ens = fitted_ensemble(folder, meta, ensemble)
    shas = {name: src["sha256"] for name, src in head_sources(folder, meta, ens).items()}
    key = json_digest({"sources": shas, "tile": tile}, 16)
    path = ctx.workspace.path("cache", "exports", f"{folder.name}-{key}.onnx")
    if not path.is_file():
        info(f"exporting head {folder.name} to ONNX for this runtime (once, reused later)")
        export_head(folder, "onnx", path, ensemble=ens, tile=tile)
    return path


def cached_features_export(
    ctx: StageContext,
    ensemble: Path,
    input_bands: Sequence[str],
    tile: int,
    ensemble_options: dict[str, Any],
) -> Path:
    """The ONNX export of an ensemble's fused pyramid for these bands, written on first use.

    Named by a digest of the ensemble's sha256, the bands, the tile and the options that
    change the features, so ``embed --runtime`` exports once per ensemble and band plan.
    """
    from eosfm_cli.head_features import FEATURE_OPTIONS

    # precision and compile are PyTorch's: the exported graph is fp32 and compiled elsewhere
    opts = {k: v for k, v in ensemble_options.items() if k not in ("precision", "compile")}
    key = json_digest(
        {
            "ensemble": sha256_file(ensemble),
            "bands": list(input_bands),
            "tile": tile,
            "options": {k: v for k, v in opts.items() if k in FEATURE_OPTIONS},
        },
        16,
    )
    path = ctx.workspace.path("cache", "exports", f"{ensemble.stem}-features-{key}.onnx")
    if not path.is_file():
        info(f"exporting {ensemble.name}'s features to ONNX for this runtime (once, reused later)")
        export_features(ensemble, input_bands, "onnx", path, tile=tile, ensemble_options=opts)
    return path


def embed_level_fn(
    ctx: StageContext,
    runtime: str,
    model: Any,
    ensemble: Path,
    tile: int,
    ensemble_options: dict[str, Any],
    level: int,
    device: Any,
) -> Callable[[Any], Any]:
    """``embed``'s per-batch features of one level, on PyTorch or on an exported graph.

    Args:
        ctx: the resolved profile and workspace (the export's cache).
        runtime: ``torch``, ``onnxruntime``, ``openvino`` or ``auto``.
        model: the frozen :class:`~eosfm_cli.models.ensemble.EosFM`.
        ensemble: its file.
        tile: the tile side the export is traced at.
        ensemble_options: the options the model was built with.
        level: the pyramid level.
        device: the PyTorch device (``auto`` keeps PyTorch off the CPU).
    """
    from eosfm_cli.inference.embeddings import embed_fn
    from eosfm_cli.inference.runtimes import features_graph_tile_fn, load_graph, resolve_runtime

    engine = resolve_runtime(runtime, device.type)
    if engine == "torch":
        return embed_fn(model, level, device)
    bands = list(model.input_bands)
    graph = cached_features_export(ctx, ensemble, bands, tile, ensemble_options)
    return features_graph_tile_fn(load_graph(graph, engine), level)
