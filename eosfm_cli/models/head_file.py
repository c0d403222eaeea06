"""The head-run file format: ``head.safetensors`` and ``head.json``.

A fitted head is stored as a *head run* folder: ``head.safetensors`` (the trainable parts only:
gates, head, feature normalisers and fusion layers, plus the specialists when they were
fine-tuned) and ``head.json`` (task, classes, input bands, ensemble options, and the sha256 of
the ensemble file it was fitted on). ``head.json`` is written last, so a folder without it is an
unfinished run. :func:`load_generalist` refuses a head whose ensemble file changed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from eosfm_cli.errors import ArtifactError
from eosfm_cli.io import atomic_write_json, sha256_file
from eosfm_cli.models.generalist import Generalist, HeadConfig, build_generalist
from eosfm_cli.models.tensor_file import save_tensor_file


def save_head_run(
    folder: Path, model: Generalist, ensemble_path: Path, ensemble_sha: str, extra: dict[str, Any]
) -> None:
    """Write ``head.safetensors`` and ``head.json`` atomically.

    Args:
        folder: the head run folder (it exists).
        model: the fitted generalist.
        ensemble_path: the ensemble file it was fitted on (recorded as given).
        ensemble_sha: that file's sha256.
        extra: more keys for ``head.json`` (metrics, provenance...).
    """
    save_tensor_file(folder / "head.safetensors", model.trainable_state())
    meta = {
        "format": "eosfm-head",
        "version": 1,
        "config": asdict(model.cfg),
        "ensemble": str(ensemble_path),
        "ensemble_sha256": ensemble_sha,
        "active_specialists": model.active_names,
        **extra,
    }
    atomic_write_json(folder / "head.json", meta)


def read_head_meta(folder: Path) -> dict[str, Any]:
    """Read and check ``head.json``.

    Args:
        folder: the head run folder.

    Returns:
        Its content.

    Raises:
        ArtifactError: when there is no ``head.json``, or it is not an eosfm head run.
    """
    path = folder / "head.json"
    if not path.is_file():
        raise ArtifactError(
            "head run not found (no head.json)",
            where=str(folder),
            hint="fit one with `eosfm fit-head`",
        )
    try:
        meta = json.loads(path.read_text())
    except ValueError:
        raise ArtifactError("head.json is not valid JSON", where=str(path)) from None
    if not isinstance(meta, dict) or meta.get("format") != "eosfm-head":
        raise ArtifactError("not an eosfm head run", where=str(path))
    return meta


def load_generalist(
    folder: Path, ensemble: Path | None = None
) -> tuple[Generalist, dict[str, Any]]:
    """Rebuild a fitted generalist from a head run.

    Args:
        folder: the head run folder.
        ensemble: the ensemble file (default: the one recorded in ``head.json``).

    Raises:
        ArtifactError: when the ensemble file differs from the one the head was fitted on, or
            the head weights do not match.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = read_head_meta(folder)
    ens = fitted_ensemble(folder, meta, ensemble)
    cfg = HeadConfig(**meta["config"])
    model = build_generalist(ens, cfg)
    try:
        state = load_file(str(folder / "head.safetensors"))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(
            f"cannot read head weights ({err})", where=str(folder / "head.safetensors")
        ) from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("encoder.specialists.")] + list(unexpected)
    if bad:
        raise ArtifactError(
            f"head weights do not match the model ({bad[0]}...)",
            where=str(folder / "head.safetensors"),
        )
    model.eval()
    return model, meta


def fitted_ensemble(folder: Path, meta: dict[str, Any], ensemble: Path | None = None) -> Path:
    """The ensemble file of a head run, checked to be the one the head was fitted on.

    Args:
        folder: the head run folder.
        meta: its ``head.json``.
        ensemble: the ensemble file to use (default: the one recorded in ``head.json``).

    Returns:
        The ensemble file.

    Raises:
        ArtifactError: when the file is missing or its sha256 is not the recorded one.
    """
    ens = Path(ensemble) if ensemble is not None else Path(meta["ensemble"])
    if not ens.is_file():
        raise ArtifactError(
            "the head's ensemble file is missing",
            where=str(ens),
            hint="pass the ensemble it was fitted on with `ensemble=`",
        )
    if sha256_file(ens) != meta.get("ensemble_sha256"):
        raise ArtifactError(
            "this head was fitted on another ensemble",
            where=str(folder / "head.json"),
            hint=f"use the ensemble it was fitted on, or re-fit the head on {ens.name}",
        )
    return ens
