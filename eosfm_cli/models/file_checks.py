"""Checks that both ensemble file formats apply, and the entry type they read and write.

An ensemble file, native or reference, holds *entries*: one specialist's metadata with its timm
``features_only`` weights. Before writing, both formats check the same things (one non-empty
state dict of tensors per uniquely named specialist); before reading, the same file checks
(exists, is a file, is not empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from eosfm_cli.errors import ArtifactError
from eosfm_cli.models.spec import SpecialistSpec

if TYPE_CHECKING:
    import torch

#: One specialist of an ensemble file: its metadata and its timm state dict (CPU tensors).
Entry = tuple[SpecialistSpec, dict[str, "torch.Tensor"]]


def check_readable(path: Path) -> int:
    """Refuse a missing path, a folder or an empty file.

    Args:
        path: the ensemble file.

    Returns:
        The file's size in bytes.

    Raises:
        ArtifactError: when the file cannot hold an ensemble.
    """
    if not path.exists():
        raise ArtifactError("no such file", str(path), hint="check the path")
    if not path.is_file():
        raise ArtifactError("not a file", str(path), hint="pass an ensemble file, not a folder")
    size = path.stat().st_size
    if size == 0:
        raise ArtifactError("empty file", str(path), hint="copy or export the ensemble again")
    return size


def check_pairs(
    specs: Sequence[SpecialistSpec],
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    where: str,
) -> None:
    """Check what a writer is given: one non-empty state dict of tensors per unique specialist.

    Args:
        specs: the specialists, in ensemble order.
        state_dicts: their state dicts, in the same order.
        where: the destination file (for messages).

    Raises:
        ArtifactError: if the lists differ in length, are empty, names repeat, or a state dict
            is empty or holds something other than tensors.
    """
    import torch

    if len(specs) != len(state_dicts):
        raise ArtifactError(f"{len(specs)} specialists but {len(state_dicts)} state dicts", where)
    if not specs:
        raise ArtifactError("an ensemble needs at least one specialist", where)
    check_unique([s.name for s in specs], where)
    for spec, state in zip(specs, state_dicts, strict=True):
        if not state:
            raise ArtifactError(f"specialist {spec.name!r} has an empty state dict", where)
        bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise ArtifactError(f"specialist {spec.name!r}: {bad[0]!r} is not a tensor", where)


def check_entries(
    specs: Sequence[SpecialistSpec], state_dicts: Sequence[Mapping[str, torch.Tensor] | None]
) -> None:
    """Check what an ensemble is built from: one state dict (or ``None``) per unique specialist.

    Unlike :func:`check_pairs` a state dict may be ``None``: the weights of a specialist that
    does not run need not be read.

    Raises:
        ArtifactError: if the lists differ in length, are empty, or names repeat (all repeated
            names are given).
    """
    if len(specs) != len(state_dicts):
        raise ArtifactError(f"{len(specs)} specialists but {len(state_dicts)} state dicts")
    if not specs:
        raise ArtifactError("an ensemble needs at least one specialist")
    names = [s.name for s in specs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ArtifactError(
            f"specialist names repeat: {', '.join(repeated)}",
            hint="give every specialist a unique name",
        )


def check_unique(names: Sequence[str], where: str) -> None:
    """Refuse a specialist name that appears twice.

    Args:
        names: the specialists' names.
        where: the file concerned (for messages).

    Raises:
        ArtifactError: at the first repeated name.
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ArtifactError(
                f"specialist name {name!r} appears twice",
                where,
                hint="give every specialist a unique name",
            )
        seen.add(name)
