"""The specialists an ensemble is exported from: the workspace's, or a folder of Lightning runs.

``export-ensemble`` reads every source here, and checks it, before it touches the workspace: a
missing, corrupt or unsafe checkpoint fails with nothing written. Checkpoints that lack band
names take them from repeatable ``--bands`` values (:func:`parse_bands_option`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eosfm_cli.console import warn
from eosfm_cli.context import StageContext
from eosfm_cli.errors import BandError, WorkspaceError
from eosfm_cli.models.spec import SpecialistSpec


def parse_bands_option(values: list[str], names: list[str] | None = None) -> Any:
    """Parse repeatable ``--bands``: ``NAME=B1,B2`` pairs, or plain lists in specialist order.

    Returns:
        A dict name → band list, or a list of band lists (positional), or ``None``.
    """
    if not values:
        return None
    from eosfm_cli.bands import expand_bands

    if all("=" in v for v in values):
        return {k.strip(): expand_bands(v) for k, v in (x.split("=", 1) for x in values)}
    if any("=" in v for v in values):
        raise BandError(
            "mix of NAME=BANDS and plain --bands values",
            where="--bands",
            hint="use NAME=B04,B03,B02 for every specialist, or plain lists in order",
        )
    return [expand_bands(v) for v in values]


def param_bytes(state: dict[str, Any]) -> int:
    """The bytes of a state dict's tensors (what its ensemble entry will take)."""
    return int(sum(int(v.numel()) * int(v.element_size()) for v in state.values()))


def workspace_specialists(
    ctx: StageContext, only: str | None
) -> tuple[list[tuple[SpecialistSpec, Any]], dict[str, str]]:
    """The finished specialists of the workspace, with their encoder weights.

    Args:
        ctx: the resolved profile and workspace.
        only: comma-separated names to keep (``--only``); all of them when ``None``.

    Returns:
        ``([(spec, weights)], {checkpoint: sha256})``, in the workspace's order.

    Raises:
        WorkspaceError: for a name that is not a finished specialist, or none at all.
    """
    import json

    from eosfm_cli.io import sha256_file
    from eosfm_cli.models.checkpoints import encoder_weights, load_checkpoint_file

    names = ctx.workspace.list_specialists()
    if only:
        wanted = [n.strip() for n in only.split(",") if n.strip()]
        missing = [n for n in wanted if n not in names]
        if missing:
            raise WorkspaceError(
                f"no finished specialist named {', '.join(missing)}",
                where=str(ctx.workspace.root / "specialists"),
                hint=f"available: {', '.join(names) or 'none'}",
            )
        names = wanted
    if not names:
        raise WorkspaceError(
            "no specialists to export",
            where=str(ctx.workspace.root / "specialists"),
            hint="train some with `eosfm train-specialist --dataset NAME`, "
            "or pass --encoders-folder DIR",
        )
    entries, inputs = [], {}
    for name in names:
        folder = ctx.workspace.specialist_dir(name)
        meta = json.loads((folder / "specialist.json").read_text())
        spec = SpecialistSpec.from_dict(meta, where=str(folder / "specialist.json"))
        ckpt_path = folder / "best.ckpt"
        if not ckpt_path.is_file():
            ckpt_path = folder / "last.ckpt"
        ckpt = load_checkpoint_file(ckpt_path)
        weights = encoder_weights(ckpt.get("state_dict", {}), str(ckpt_path))
        entries.append((spec, weights))
        inputs[ctx.workspace.relative(ckpt_path)] = sha256_file(ckpt_path)
    return entries, inputs


def folder_specialists(
    folder: Path, bands: Any
) -> tuple[list[tuple[SpecialistSpec, Any]], dict[str, str]]:
    """The specialists of the Lightning runs under ``folder`` (``--encoders-folder``).

    Each run gives its newest ``version_N``'s best checkpoint (else its last); runs of the same
    name are numbered ``name_1``, ``name_2``.

    Args:
        folder: searched recursively.
        bands: what :func:`parse_bands_option` returned, for checkpoints without bands.

    Returns:
        ``([(spec, weights)], {checkpoint: sha256})``.
    """
    from eosfm_cli.io import sha256_file
    from eosfm_cli.models.checkpoints import (
        checkpoint_run_name,
        find_run_checkpoints,
        specialist_from_checkpoint,
    )

    paths = find_run_checkpoints(folder)
    names = [checkpoint_run_name(p) for p in paths]
    counts = {n: names.count(n) for n in names}
    seen: dict[str, int] = {}
    entries, inputs = [], {}
    for i, path in enumerate(paths):
        name = names[i]
        if counts[name] > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name}_{seen[name]}"
        given = bands.get(names[i]) if isinstance(bands, dict) else None
        if isinstance(bands, list) and i < len(bands):
            given = bands[i]
        spec, weights = specialist_from_checkpoint(path, name=name, bands=given)
        for note in spec.assumed:
            warn(f"{spec.name}: {note}")
        entries.append((spec, weights))
        inputs[str(path)] = sha256_file(path)
    return entries, inputs
