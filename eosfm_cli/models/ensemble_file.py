"""Ensemble files in either format: tell them apart by content and load them.

Two formats hold an ensemble: the native safetensors file (:mod:`eosfm_cli.models.native_file`,
what eosfm writes: band names, statistics and provenance included) and the reference ``.pth``
list of the published EoS-FM code (:mod:`eosfm_cli.models.reference_file`: weights only, read
without ever unpickling code). The format is detected from the first bytes, never from the
extension. :func:`load_any` is the entry point for a file of either kind.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from eosfm_cli.bands import expand_bands
from eosfm_cli.errors import ArtifactError
from eosfm_cli.models.adaptation import plan_ensemble
from eosfm_cli.models.file_checks import Entry, check_readable
from eosfm_cli.models.native_file import load_ensemble, load_state_dicts, read_metadata
from eosfm_cli.models.reference_file import load_reference
from eosfm_cli.models.spec import SpecialistSpec

if TYPE_CHECKING:
    import torch

FileFormat = Literal["native", "reference"]
#: Band names per specialist, for reference files (see :func:`load_reference`).
BandLists = Sequence[Sequence[str] | str | None]


def detect_format(path: str | os.PathLike[str]) -> FileFormat:
    """Tell a native ensemble from a reference file by content, not by extension.

    Args:
        path: the file.

    Returns:
        ``"native"`` for a safetensors file, ``"reference"`` for a zip or pickle file.

    Raises:
        ArtifactError: if the file is missing, empty, a truncated safetensors file, or neither.
    """
    path = Path(path)
    size = check_readable(path)
    with path.open("rb") as fh:
        head = fh.read(9)
    if head[:4] == b"PK\x03\x04":
        return "reference"  # torch.save's zip archive
    # safetensors: a little-endian u64 header length, then the JSON header. Checked before the
    # pickle opcode because a header length of 128 mod 256 also starts with byte 0x80.
    looks_safetensors = len(head) == 9 and head[8:9] == b"{"
    n = struct.unpack("<Q", head[:8])[0] if looks_safetensors else 0
    if looks_safetensors and n <= size - 8:
        return "native"
    if head[:1] == b"\x80":
        return "reference"  # a legacy torch.save file or a plain pickle
    if looks_safetensors:
        raise ArtifactError(
            f"truncated safetensors file: the header alone needs {n} bytes, the file has "
            f"{size - 8} after the length prefix",
            str(path),
            hint="copy or export the ensemble again",
        )
    raise ArtifactError(
        "not an ensemble file: neither safetensors nor a torch.save archive",
        str(path),
        hint="pass an eosfm .safetensors ensemble or a reference .pth list",
    )


def load_any(
    path: str | os.PathLike[str], bands: BandLists | None = None
) -> tuple[list[Entry], list[str]]:
    """Load an ensemble in either format, chosen by content.

    Args:
        path: a native ``.safetensors`` ensemble or a reference ``.pth`` list.
        bands: band names per specialist, for reference files only (see
            :func:`~eosfm_cli.models.reference_file.load_reference`).

    Returns:
        ``(entries, assumptions)``; ``assumptions`` is empty for a native file.

    Raises:
        ArtifactError: for any unreadable, unsafe or malformed file, or ``bands`` given for a
            native file (which records its own).
    """
    if detect_format(path) == "native":
        _refuse_bands(path, bands)
        return load_ensemble(path), []
    return load_reference(path, bands)


def load_active(
    path: str | os.PathLike[str],
    input_bands: Sequence[str] | str,
    bands: BandLists | None = None,
    **plan_options: Any,
) -> tuple[list[SpecialistSpec], list[dict[str, torch.Tensor] | None], list[str]]:
    """Load an ensemble file for an input, reading only the weights that input needs.

    Of a native file, only the specialists that are active for ``input_bands`` (under
    ``plan_options``) have their weights read; the others get ``None``. A reference file is read
    whole (its format cannot be read in part).

    Args:
        path: a native ``.safetensors`` ensemble or a reference ``.pth`` list.
        input_bands: the input's band names, in channel order.
        bands: band names per specialist, for reference files only.
        **plan_options: keyword options of :func:`~eosfm_cli.models.adaptation.plan_ensemble`.

    Returns:
        ``(specs, state_dicts, assumptions)`` in ensemble order.

    Raises:
        ArtifactError: as :func:`load_any`.
        BandError: for unknown band names.
    """
    if detect_format(path) == "native":
        _refuse_bands(path, bands)
        specs = read_metadata(path)
        plans = plan_ensemble(specs, expand_bands(input_bands), **plan_options)
        states = load_state_dicts(path, [i for i, p in enumerate(plans) if p.is_active])
        return specs, [states.get(i) for i in range(len(specs))], []
    entries, assumptions = load_reference(path, bands)
    return [spec for spec, _ in entries], [state for _, state in entries], assumptions


def _refuse_bands(path: str | os.PathLike[str], bands: BandLists | None) -> None:
    if bands is not None:
        raise ArtifactError(
            "`bands=` applies to reference files only; this native ensemble records its "
            "specialists' bands",
            str(path),
            hint="drop `bands=`",
        )
