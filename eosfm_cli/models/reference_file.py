"""The reference ensemble format: the ``.pth`` list written by the published EoS-FM code.

A ``torch.save``d list of ``(in_chans, state_dict, config)`` with ``config["backbone"] =
"timm_<name>"`` and an optional ``config["encoder_name"]``. It is read with
``torch.load(weights_only=True)`` only: a file that would need arbitrary unpickling is refused,
never executed. The format carries no band names and no statistics: band names come from the
caller, from an ``eosfm``-written ``config["bands"]``, or are inferred from ``in_chans`` with a
stated assumption; normalisation is the identity, as in the reference code, so a reference file
gives the same features here as there.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.bands import BAND_SETS, expand_bands
from eosfm_cli.errors import ArtifactError, BandError
from eosfm_cli.io import atomic_path
from eosfm_cli.models.file_checks import Entry, check_pairs, check_readable
from eosfm_cli.models.spec import SpecialistSpec

if TYPE_CHECKING:
    import torch

REFERENCE_BACKBONE_PREFIX = "timm_"

#: Band sets assumed for reference specialists that record no band names, by in_chans.
INFERRED_BAND_SETS: dict[int, str] = {3: "S2_RGB", 13: "S2_ALL", 2: "S1"}


def save_reference(
    path: str | os.PathLike[str],
    specs: Sequence[SpecialistSpec],
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
) -> list[str]:
    """Write specialists in the reference code's format, atomically.

    Each entry is ``(in_chans, state_dict, config)`` with ``config["backbone"] = "timm_<name>"``
    and ``config["encoder_name"]``. ``config["bands"]`` is added as well; the reference code
    ignores it and eosfm reads it back. Normalisation statistics cannot be stored: readers apply
    the identity, so this format is lossy for specialists trained on other statistics.

    Args:
        path: destination file (conventionally ``*.pth``).
        specs: the specialists' metadata, in ensemble order.
        state_dicts: their timm ``features_only`` state dicts, in the same order.

    Returns:
        Notes on what the format lost (one line per specialist whose statistics were dropped).

    Raises:
        ArtifactError: as :func:`~eosfm_cli.models.native_file.save_ensemble`.
    """
    import torch

    path = Path(path)
    check_pairs(specs, state_dicts, where=str(path))
    entries: list[tuple[int, dict[str, torch.Tensor], dict[str, Any]]] = []
    notes: list[str] = []
    for spec, state in zip(specs, state_dicts, strict=True):
        config: dict[str, Any] = {
            "backbone": REFERENCE_BACKBONE_PREFIX + spec.backbone,
            "encoder_name": spec.name,
            "bands": list(spec.bands),
        }
        entries.append(
            (int(spec.in_chans), {k: v.detach().cpu() for k, v in state.items()}, config)
        )
        if any(m != 0.0 for m in spec.mean) or any(s != 1.0 for s in spec.std):
            notes.append(
                f"specialist {spec.name!r}: its normalisation statistics are not stored in the "
                "reference format; readers will apply the identity"
            )
    with atomic_path(path) as tmp:
        torch.save(entries, tmp)
    return notes


def load_reference(
    path: str | os.PathLike[str],
    bands: Sequence[Sequence[str] | str | None] | None = None,
) -> tuple[list[Entry], list[str]]:
    """Load a reference-format ensemble safely.

    Only ``torch.load(path, map_location="cpu", weights_only=True)`` is used, so tensors, plain
    containers and numbers are all a file can contain; anything else is refused, not run.

    Args:
        path: a reference ``.pth`` file.
        bands: band names per specialist (a list of names or a band-set string such as
            ``"S1_COMPOSITE"``; ``None`` for an entry or for the whole argument means: use the
            names the file records, else infer them from ``in_chans``).

    Returns:
        ``(entries, assumptions)``: ``(spec, state_dict)`` per specialist, and one readable line
        per inference made (band names assumed, identity normalisation).

    Raises:
        ArtifactError: if the file is missing, empty, truncated, holds code or objects outside
            the safe allow-list, is not a list of ``(in_chans, state_dict, config)``, or band
            names cannot be determined (pass ``bands=``).
    """
    import torch

    path = Path(path)
    where = str(path)
    check_readable(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ArtifactError(
            "refused to load: the file holds pickled code or objects beyond tensors and plain "
            "containers, and nothing in it was executed",
            where,
            hint="only use ensembles from a trusted source, re-exported with "
            "`eosfm export-ensemble`",
        ) from None
    except Exception as err:  # torch.load raises many types for bad files (even safetensors')
        first = str(err).split("\n")[0][:160] or type(err).__name__
        raise ArtifactError(
            f"cannot read the file as a torch.save archive ({first})",
            where,
            hint="the file is truncated or corrupt; copy or export it again",
        ) from None

    raw = _check_reference_structure(obj, where)
    if bands is not None and len(bands) != len(raw):
        raise ArtifactError(
            f"`bands=` gives {len(bands)} band lists for {len(raw)} specialists",
            where,
            hint="give one band list per specialist, in file order",
        )

    entries: list[Entry] = []
    assumptions: list[str] = []
    used_names: set[str] = set()
    for i, (in_chans, state, config) in enumerate(raw):
        backbone = config["backbone"]
        if backbone.startswith(REFERENCE_BACKBONE_PREFIX):
            backbone = backbone[len(REFERENCE_BACKBONE_PREFIX) :]
        assumed: list[str] = []
        name = config.get("encoder_name")
        if not isinstance(name, str) or not name.strip():
            name = f"specialist_{i}"
            assumed.append(f"no encoder_name recorded; named {name!r}")
        if name in used_names:
            new = f"{name}_{i}"
            assumed.append(f"name {name!r} repeats in the file; renamed {new!r}")
            name = new
        used_names.add(name)

        given = bands[i] if bands is not None else None
        names = _reference_bands(i, name, in_chans, given, config.get("bands"), where)
        if names is None:
            set_name = INFERRED_BAND_SETS[in_chans]
            names = list(BAND_SETS[set_name])
            line = (
                f"band names not recorded; assumed {','.join(names)} ({set_name}) from "
                f"in_chans={in_chans} (pass --bands to override)"
            )
            assumed.append(line)
            assumptions.append(f"specialist {name!r}: {line}")
        assumed.append("no statistics recorded; identity normalisation, as the reference code")

        spec = SpecialistSpec(
            name=name,
            backbone=backbone,
            bands=names,
            mean=[0.0] * in_chans,
            std=[1.0] * in_chans,
            source="reference",
            assumed=assumed,
        )
        entries.append((spec, dict(state)))
    assumptions.append(
        "the reference format stores no normalisation statistics: every specialist uses the "
        "identity (mean 0, std 1), as the reference code does"
    )
    return entries, assumptions


def _check_reference_structure(
    obj: object, where: str
) -> list[tuple[int, Mapping[str, torch.Tensor], dict[str, Any]]]:
    import torch

    shape_hint = "expected a list of (in_chans, state_dict, config) tuples"
    if isinstance(obj, dict):
        lightning = "state_dict" in obj
        raise ArtifactError(
            "a single checkpoint, not an ensemble list"
            if lightning
            else f"not a reference ensemble: {shape_hint}",
            where,
            hint="export a folder of Lightning checkpoints with `eosfm export-ensemble`"
            if lightning
            else None,
        )
    if not isinstance(obj, list | tuple) or not obj:
        raise ArtifactError(f"not a reference ensemble: {shape_hint}", where)
    out: list[tuple[int, Mapping[str, torch.Tensor], dict[str, Any]]] = []
    for i, item in enumerate(obj):
        at = f"{where}: entry {i}"
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise ArtifactError(f"not a reference ensemble: {shape_hint}", at)
        in_chans, state, config = item
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans <= 0:
            raise ArtifactError(f"in_chans must be a positive integer, got {in_chans!r}", at)
        if not isinstance(state, Mapping) or not state:
            raise ArtifactError("the state dict is missing or empty", at)
        if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
            raise ArtifactError("the state dict must map names to tensors", at)
        if not isinstance(config, dict) or not isinstance(config.get("backbone"), str):
            raise ArtifactError(
                "config lacks a 'backbone' string such as 'timm_convnextv2_atto'", at
            )
        out.append((in_chans, state, config))
    return out


def _reference_bands(
    i: int,
    name: str,
    in_chans: int,
    given: Sequence[str] | str | None,
    recorded: object,
    where: str,
) -> list[str] | None:
    """Band names for reference entry ``i``: the caller's, the file's, or ``None`` to infer."""
    at = f"{where}: specialist {name!r}"
    if given is not None:
        try:
            names = expand_bands(given)
        except BandError as err:
            raise ArtifactError(f"`bands=`: {err.message}", at, hint=err.hint) from None
        if len(names) != in_chans:
            raise ArtifactError(
                f"`bands=` gives {len(names)} bands ({','.join(names)}) for a specialist with "
                f"in_chans={in_chans}",
                at,
                hint=f"give exactly {in_chans} band names for specialist {i}",
            )
        return names
    if isinstance(recorded, list) and len(recorded) == in_chans:
        try:
            return expand_bands([str(b) for b in recorded])
        except BandError:
            pass  # unusable names recorded by another tool: fall back to inference
    if in_chans not in INFERRED_BAND_SETS:
        raise ArtifactError(
            f"band names are not recorded and cannot be inferred for in_chans={in_chans}",
            at,
            hint=f"pass `bands=` with {in_chans} band names for specialist {i}",
        )
    return None
