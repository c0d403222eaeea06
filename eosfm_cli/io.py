"""Atomic file writes and file hashing: the one copy both the models and the workspace use.

Every artifact is written to a temporary file in the same folder, flushed with ``fsync`` and
renamed over its final name, so a crash never leaves a half-written file under a real name.
A write that fails for lack of space, a file size limit or missing rights becomes one
:class:`~eosfm_cli.errors.WorkspaceError` line naming the file.

This module imports nothing heavier than the standard library and :mod:`eosfm_cli.errors`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eosfm_cli.errors import WorkspaceError
from eosfm_cli.faults import crash_point


def now_iso() -> str:
    """Return the current UTC time as an ISO 8601 string."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


#: Files up to this size are fingerprinted by sha256, larger ones by size and mtime.
FINGERPRINT_HASH_LIMIT = 256 * 2**20


def fingerprint_file(path: str | Path, limit: int = FINGERPRINT_HASH_LIMIT) -> str:
    """sha256 of a small file; ``size=...;mtime=...`` of a big one (hashing costs a pass).

    Used to record inputs in the manifest, where a multi-GB raster must not be read twice.
    """
    st = Path(path).stat()
    if st.st_size <= limit:
        return sha256_file(path)
    mtime = _dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc).isoformat()
    return f"size={st.st_size};mtime={mtime}"


def json_digest(obj: Any, length: int = 64) -> str:
    """A stable hex digest of JSON-able data (keys sorted), cut to ``length`` characters.

    Used for content keys (cache entries, statistics): equal data give equal keys on every
    machine and in every process.
    """
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def fsync_dir(path: Path) -> None:
    """Flush a folder's entry table (after a rename into it), where the platform allows."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def disk_error(err: OSError, path: Path) -> WorkspaceError:
    """Turn a failed write into one actionable line: a full disk, a size limit, no rights.

    Args:
        err: the error the write raised.
        path: the file or folder being written.
    """
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return WorkspaceError(
            "no space left on device", where=str(path), hint="free disk space and run again"
        )
    if err.errno == errno.EFBIG:
        return WorkspaceError(
            "file too large for this process's file size limit",
            where=str(path),
            hint="raise the limit (ulimit -f unlimited) and run again",
        )
    if err.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return WorkspaceError(
            "the workspace is not writable",
            where=str(path),
            hint="choose a writable folder with --workspace",
        )
    return WorkspaceError(f"cannot write: {err.strerror or err}", where=str(path))


@contextlib.contextmanager
def atomic_path(final: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` on success.

    The caller writes the file at the yielded path (with any library). On an exception the
    temporary file is removed and ``final`` is untouched.

    Args:
        final: the artifact's final path.
        suffix: suffix of the temporary file (defaults to ``final``'s suffix, which some
            writers need to pick a format).

    Yields:
        The temporary path to write.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise disk_error(err, final.parent) from None
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp{suffix or final.suffix}"
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        crash_point(f"rename:{final.name}")
        os.replace(tmp, final)
        fsync_dir(final.parent)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise disk_error(err, final) from None
    except BaseException:
        with contextlib.suppress(OSError):
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically (temporary file, fsync, rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically, indented and with a trailing newline."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def check_space(path: str | Path, nbytes: int) -> None:
    """Refuse early when a file of ``nbytes`` cannot be written at ``path``.

    Checks the free space of the file system that holds ``path`` (with a 10 % margin) and the
    process's file size limit (``ulimit -f``), so that a stage stops before it writes anything
    rather than half-way.

    Args:
        path: the file about to be written.
        nbytes: its expected size.

    Raises:
        WorkspaceError: when the file would not fit.
    """
    target = Path(path).absolute()
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if soft == resource.RLIM_INFINITY:
            soft = -1
    except (ImportError, OSError, ValueError):  # no such limit on this platform
        soft = -1
    if soft >= 0 and nbytes > soft:
        raise WorkspaceError(
            f"the file needs {nbytes / 1e6:.1f} MB, above this process's file size limit "
            f"({soft / 1e6:.1f} MB)",
            where=str(target),
            hint="raise the limit (ulimit -f unlimited) and run again",
        )
    existing = target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return
    if nbytes * 1.1 > free:
        raise WorkspaceError(
            f"no space left on device: the file needs {nbytes / 1e6:.1f} MB, "
            f"{free / 1e6:.1f} MB are free",
            where=str(target),
            hint="free disk space and run again",
        )
