"""The native ensemble format: one safetensors file, metadata in its header.

Specialist *i* keeps its timm feature-extractor weights under ``specialists.<i>.<timm key>``.
The header metadata (a string to string map) holds::

    format       "eosfm-ensemble"
    version      "1"
    eosfm        the eosfm version that wrote it
    specialists  JSON list of SpecialistSpec.to_dict(), in ensemble order

Loading parses JSON and copies tensors; it never runs code. :func:`read_metadata` reads only the
header, so inspecting a large ensemble costs nothing. Files are written with a canonical header
(:mod:`eosfm_cli.models.tensor_file`), so the same ensemble always has the same sha256.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli import __version__
from eosfm_cli.errors import ArtifactError
from eosfm_cli.models.file_checks import Entry, check_pairs, check_readable, check_unique
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.models.tensor_file import save_tensor_file

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "eosfm-ensemble"
FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
KEY_PREFIX = "specialists"

# A safetensors header beyond this is not a header but the wrong kind of file.
_MAX_HEADER_BYTES = 100 * 1024 * 1024


def save_ensemble(
    path: str | os.PathLike[str],
    specs: Sequence[SpecialistSpec],
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
) -> Path:
    """Write specialists to one native safetensors ensemble file, atomically.

    Args:
        path: destination file (conventionally ``*.safetensors``).
        specs: the specialists' metadata, in ensemble order.
        state_dicts: each specialist's timm ``features_only`` state dict, in the same order.

    Returns:
        The path written.

    Raises:
        ArtifactError: if the lists differ in length, are empty, names repeat, or a state dict
            is empty or holds something other than tensors.
    """
    path = Path(path)
    check_pairs(specs, state_dicts, where=str(path))
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for i, state in enumerate(state_dicts):
        for key, value in state.items():
            tensors[f"{KEY_PREFIX}.{i}.{key}"] = _own_storage(value, seen)
    metadata = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "eosfm": __version__,
        "specialists": json.dumps([s.to_dict() for s in specs], sort_keys=True),
    }
    return save_tensor_file(path, tensors, metadata)


def read_metadata(path: str | os.PathLike[str]) -> list[SpecialistSpec]:
    """Read the specialists' metadata of a native ensemble without loading any tensor.

    Args:
        path: a native ``.safetensors`` ensemble.

    Returns:
        The specialists, in ensemble order.

    Raises:
        ArtifactError: if the file is missing, empty, truncated, not safetensors, not an eosfm
            ensemble, of an unsupported version, or its metadata is malformed.
    """
    header = _read_safetensors_header(Path(path))
    return _specs_from_header(header, str(path))


def load_ensemble(path: str | os.PathLike[str]) -> list[Entry]:
    """Load every specialist of a native ensemble.

    Args:
        path: a native ``.safetensors`` ensemble.

    Returns:
        ``(spec, state_dict)`` per specialist, in ensemble order; state dicts are on the CPU.

    Raises:
        ArtifactError: as :func:`read_metadata`, and when a specialist has no tensors or a key
            does not belong to any specialist.
    """
    specs = read_metadata(path)
    states = load_state_dicts(path, range(len(specs)))
    return [(spec, states[i]) for i, spec in enumerate(specs)]


def load_state_dicts(
    path: str | os.PathLike[str], indices: Collection[int]
) -> dict[int, dict[str, torch.Tensor]]:
    """Load the weights of some specialists of a native ensemble, leaving the others on disk.

    Args:
        path: a native ``.safetensors`` ensemble.
        indices: ensemble indices of the specialists to load.

    Returns:
        Ensemble index → timm state dict (CPU tensors).

    Raises:
        ArtifactError: if the file is malformed, an index is out of range, or a requested
            specialist has no tensors.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    header = _read_safetensors_header(path)
    n = len(_specs_from_header(header, str(path)))
    wanted = set(indices)
    bad = sorted(i for i in wanted if not 0 <= i < n)
    if bad:
        raise ArtifactError(f"no specialist with index {bad[0]} (the file holds {n})", str(path))
    keys_by_index: dict[int, list[tuple[str, str]]] = {i: [] for i in wanted}
    for full_key in header:
        if full_key == "__metadata__":
            continue
        i, key = _split_key(full_key, n, str(path))
        if i in keys_by_index:
            keys_by_index[i].append((full_key, key))
    empty = [i for i, keys in keys_by_index.items() if not keys]
    if empty:
        raise ArtifactError(
            f"specialist {empty[0]} has no tensors", str(path), hint="re-export the ensemble"
        )
    out: dict[int, dict[str, torch.Tensor]] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for i in sorted(keys_by_index):
                out[i] = {key: handle.get_tensor(full) for full, key in keys_by_index[i]}
    except SafetensorError as err:
        raise ArtifactError(f"cannot read tensors: {err}", str(path)) from None
    return out


def _read_safetensors_header(path: Path) -> dict[str, Any]:
    size = check_readable(path)
    where = str(path)
    if size < 8:
        raise ArtifactError(f"truncated file ({size} bytes)", where)
    with path.open("rb") as fh:
        n = struct.unpack("<Q", fh.read(8))[0]
        if n > _MAX_HEADER_BYTES:
            raise ArtifactError(
                "not a safetensors file (implausible header length)",
                where,
                hint="pass an eosfm .safetensors ensemble",
            )
        if n > size - 8:
            raise ArtifactError(
                f"truncated safetensors file: header needs {n} bytes, {size - 8} remain",
                where,
                hint="copy or export the ensemble again",
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArtifactError("not a safetensors file (unreadable header)", where) from None
    if not isinstance(header, dict):
        raise ArtifactError("not a safetensors file (header is not a JSON object)", where)
    data_bytes = size - 8 - n
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise ArtifactError(f"malformed safetensors entry {key!r}", where)
        if offsets[1] > data_bytes:
            raise ArtifactError(
                f"truncated safetensors file: tensor {key!r} ends at byte {offsets[1]} of a "
                f"{data_bytes}-byte data section",
                where,
                hint="copy or export the ensemble again",
            )
    return header


def _specs_from_header(header: Mapping[str, Any], where: str) -> list[SpecialistSpec]:
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT_NAME:
        raise ArtifactError(
            "a safetensors file, but not an eosfm ensemble (no 'format: eosfm-ensemble' metadata)",
            where,
            hint="export it with `eosfm export-ensemble`",
        )
    version = meta.get("version")
    if version not in SUPPORTED_VERSIONS:
        raise ArtifactError(
            f"ensemble format version {version!r} is not supported "
            f"(this eosfm reads {', '.join(SUPPORTED_VERSIONS)})",
            where,
            hint="upgrade eosfm",
        )
    try:
        items = json.loads(meta.get("specialists", ""))
    except json.JSONDecodeError:
        raise ArtifactError("the 'specialists' metadata is not valid JSON", where) from None
    if not isinstance(items, list) or not items:
        raise ArtifactError("the ensemble lists no specialists", where)
    specs = [
        SpecialistSpec.from_dict(item, where=f"{where}: specialist {i}")
        for i, item in enumerate(items)
    ]
    check_unique([s.name for s in specs], where)
    return specs


def _split_key(full_key: str, n: int, where: str) -> tuple[int, str]:
    parts = full_key.split(".", 2)
    if len(parts) == 3 and parts[0] == KEY_PREFIX and parts[1].isdigit():
        i = int(parts[1])
        if i < n:
            return i, parts[2]
    raise ArtifactError(
        f"tensor {full_key!r} belongs to no listed specialist (expected "
        f"'{KEY_PREFIX}.<0..{n - 1}>.<key>')",
        where,
        hint="re-export the ensemble",
    )


def _own_storage(tensor: torch.Tensor, seen: set[int]) -> torch.Tensor:
    """Return a contiguous CPU tensor that shares storage with nothing else being saved."""
    import torch

    t = tensor.detach().cpu()
    storage = t.untyped_storage()
    whole = storage.nbytes() == t.numel() * t.element_size()
    if not t.is_contiguous() or not whole or storage.data_ptr() in seen:
        # safetensors refuses views and shared storage (tied weights): store a copy.
        t = t.clone(memory_format=torch.contiguous_format)
    seen.add(t.untyped_storage().data_ptr())
    return t
