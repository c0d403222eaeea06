"""Byte-reproducible safetensors files.

``safetensors`` writes its JSON header from a hash map whose order changes from one process to
the next, so the same tensors and metadata give files with different bytes and different
sha256. eosfm keys caches and head runs by an ensemble file's sha256, so the header is
rewritten here in one canonical form: keys sorted, compact separators, padded with spaces to a
multiple of 8 bytes. The tensor data (whose order safetensors fixes itself) is left as is, so
any safetensors reader loads the file unchanged.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from eosfm_cli.io import atomic_path

if TYPE_CHECKING:
    import torch


def canonical_header(data: bytes) -> bytes:
    """Return safetensors bytes with the header in canonical form (same tensors, same data).

    Args:
        data: a complete safetensors file.
    """
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + length :]


def tensor_file_bytes(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Serialise tensors (contiguous, unshared) and string metadata to canonical safetensors."""
    from safetensors.torch import save

    return canonical_header(save(dict(tensors), metadata=dict(metadata or {}) or None))


def save_tensor_file(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a canonical safetensors file atomically (temporary file, fsync, rename).

    Args:
        path: the destination.
        tensors: name → contiguous CPU tensor (no two sharing storage).
        metadata: the header's string-to-string metadata.

    Returns:
        The path written.
    """
    data = tensor_file_bytes(tensors, metadata)
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)
