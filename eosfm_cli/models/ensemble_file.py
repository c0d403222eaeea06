"""Reading and writing ensemble files: the native safetensors format and the reference list.

**Native format** (``*.safetensors``). One safetensors file. Specialist *i* keeps its timm
feature-extractor weights under ``specialists.<i>.<timm key>``. The header metadata (a string to
string map) holds::

    format       "eosfm-ensemble"
    version      "1"
    eosfm        the eosfm version that wrote it
    specialists  JSON list of SpecialistSpec.to_dict(), in ensemble order

Loading parses JSON and copies tensors; it never runs code. :func:`read_metadata` reads only the
header, so inspecting a large ensemble costs nothing.

**Reference format** (``*.pth``), as written by the published EoS-FM code: a ``torch.save``d list
of ``(in_chans, state_dict, config)`` with ``config["backbone"] = "timm_<name>"`` and an optional
``config["encoder_name"]``. It is read with ``torch.load(weights_only=True)`` only: a file that
would need arbitrary unpickling is refused, never executed. The format carries no band names and
no statistics: band names come from the caller, from an ``eosfm``-written ``config["bands"]``, or
are inferred from ``in_chans`` with a stated assumption; normalisation is the identity, as in the
reference code, so a reference file gives the same features here as there.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from eosfm_cli import __version__
from eosfm_cli.bands import BAND_SETS, expand_bands
from eosfm_cli.errors import ArtifactError, BandError
from eosfm_cli.io import atomic_path
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.models.tensor_file import save_tensor_file

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "eosfm-ensemble"
FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
KEY_PREFIX = "specialists"
REFERENCE_BACKBONE_PREFIX = "timm_"

#: Band sets assumed for reference specialists that record no band names, by in_chans.
INFERRED_BAND_SETS: dict[int, str] = {3: "S2_RGB", 13: "S2_ALL", 2: "S1"}

# A safetensors header beyond this is not a header but the wrong kind of file.
_MAX_HEADER_BYTES = 100 * 1024 * 1024

Entry = tuple[SpecialistSpec, dict[str, "torch.Tensor"]]
FileFormat = Literal["native", "reference"]


# ---------------------------------------------------------------------------- native format


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
    _check_pairs(specs, state_dicts, where=str(path))
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


# ------------------------------------------------------------------------- reference format


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
        ArtifactError: as :func:`save_ensemble`.
    """
    import torch

    path = Path(path)
    _check_pairs(specs, state_dicts, where=str(path))
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
            names cannot be determined (pass ``--bands``).
    """
    import torch

    path = Path(path)
    where = str(path)
    _check_readable(path)
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
            f"--bands gives {len(bands)} band lists for {len(raw)} specialists",
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
            in_chans=in_chans,
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


# --------------------------------------------------------------------------------- any file


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
    size = _check_readable(path)
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
    path: str | os.PathLike[str],
    bands: Sequence[Sequence[str] | str | None] | None = None,
) -> tuple[list[Entry], list[str]]:
    """Load an ensemble in either format, chosen by content.

    Args:
        path: a native ``.safetensors`` ensemble or a reference ``.pth`` list.
        bands: band names per specialist, for reference files only (see
            :func:`load_reference`).

    Returns:
        ``(entries, assumptions)``; ``assumptions`` is empty for a native file.

    Raises:
        ArtifactError: for any unreadable, unsafe or malformed file, or ``bands`` given for a
            native file (which records its own).
    """
    if detect_format(path) == "native":
        if bands is not None:
            raise ArtifactError(
                "--bands applies to reference files only; this native ensemble records its "
                "specialists' bands",
                str(path),
                hint="drop --bands",
            )
        return load_ensemble(path), []
    return load_reference(path, bands)


# ---------------------------------------------------------------------------------- helpers


def _check_readable(path: Path) -> int:
    if not path.exists():
        raise ArtifactError("no such file", str(path), hint="check the path")
    if not path.is_file():
        raise ArtifactError("not a file", str(path), hint="pass an ensemble file, not a folder")
    size = path.stat().st_size
    if size == 0:
        raise ArtifactError("empty file", str(path), hint="copy or export the ensemble again")
    return size


def _read_safetensors_header(path: Path) -> dict[str, Any]:
    size = _check_readable(path)
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
    _check_unique([s.name for s in specs], where)
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


def _check_pairs(
    specs: Sequence[SpecialistSpec],
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    where: str,
) -> None:
    import torch

    if len(specs) != len(state_dicts):
        raise ArtifactError(f"{len(specs)} specialists but {len(state_dicts)} state dicts", where)
    if not specs:
        raise ArtifactError("an ensemble needs at least one specialist", where)
    _check_unique([s.name for s in specs], where)
    for spec, state in zip(specs, state_dicts, strict=True):
        if not state:
            raise ArtifactError(f"specialist {spec.name!r} has an empty state dict", where)
        bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise ArtifactError(f"specialist {spec.name!r}: {bad[0]!r} is not a tensor", where)


def _check_unique(names: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ArtifactError(
                f"specialist name {name!r} appears twice",
                where,
                hint="give every specialist a unique name",
            )
        seen.add(name)


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
            raise ArtifactError(f"--bands: {err.message}", at, hint=err.hint) from None
        if len(names) != in_chans:
            raise ArtifactError(
                f"--bands gives {len(names)} bands ({','.join(names)}) for a specialist with "
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
            hint=f"pass --bands with {in_chans} band names for specialist {i}",
        )
    return None


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
