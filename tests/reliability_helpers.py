"""Shared pieces of the reliability tests (bad inputs, crashes, concurrency, DDP).

Import from a test module with ``from reliability_helpers import ...`` (pytest puts ``tests/``
on ``sys.path``). The session fixture ``prepared_workspace`` (conftest.py) calls
:func:`build_workspace` once: two tiny specialists trained on ``tests/data/synthetic``, one
exported ensemble and one fitted head.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
SYNTHETIC = REPO / "tests" / "data" / "synthetic"

#: Settings that keep every stage run tiny: one epoch, small batches, no emissions.
TINY = {
    "trainer.max_epochs": "1",
    "trainer.batch_size": "4",
    "emissions.enabled": "false",
    "model.augment": "false",
    "downstream.dataset": "synthetic_s2",
    "downstream.bands": "[B02, B03, B04, B08]",
}
SPECIALISTS = ("synthetic_rgb", "synthetic_s1")
HEAD_RUN = "synthetic_s2"
#: Files above this size are compared by (size, mtime, inode) instead of their sha256.
HASH_LIMIT = 1 << 20


def tiny_sets(**extra: str) -> list[str]:
    """``--set`` expressions of :data:`TINY` plus ``extra`` (dots spelled ``__``)."""
    values = {**TINY, **{k.replace("__", "."): v for k, v in extra.items()}}
    return [f"{k}={v}" for k, v in values.items()]


def write_tiny_profile(path: Path, **extra: Any) -> Path:
    """A profile that includes the default one with :data:`TINY` settings."""
    import yaml

    data: dict[str, Any] = {"include": str(DEFAULT), "data": {"root": str(SYNTHETIC)}}
    for key, value in {**TINY, **extra}.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value) if isinstance(value, str) else value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m eosfm_cli ARGS`` in a subprocess from the repository root."""
    full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "eosfm_cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        preexec_fn=preexec_fn,
        check=False,
    )


def popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``python -m eosfm_cli ARGS`` without waiting (stdout and stderr piped)."""
    full_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "eosfm_cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def build_workspace(ws: Path) -> Path:
    """Train the tiny specialists, export the ensemble and fit one head, in-process."""
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.export_ensemble import export_ensemble
    from eosfm_cli.stages.fit_head import fit_head
    from eosfm_cli.stages.train_specialist import train_specialist

    for name in SPECIALISTS:
        ctx = resolve(DEFAULT, tiny_sets(), dataset=name, root=SYNTHETIC, workspace=ws)
        train_specialist(ctx)
    ctx = resolve(DEFAULT, tiny_sets(), root=SYNTHETIC, workspace=ws)
    export_ensemble(ctx)
    fit_head(resolve(DEFAULT, tiny_sets(), root=SYNTHETIC, workspace=ws))
    return ws


def link_copy(src: Path, dst: Path) -> Path:
    """Copy a folder tree with hard links (instant; atomic writes replace, never modify)."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every file and folder under ``root`` with what identifies its content.

    Small files (the manifest, JSON records) are hashed; large ones (checkpoints) are compared
    by size, modification time in ns and inode, which catches both in-place writes and atomic
    replacement without hashing hundreds of MB per case.
    """
    out: dict[str, tuple[Any, ...]] = {}
    if not root.exists():
        return out
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if path.is_dir():
            out[rel] = ("dir",)
        elif st.st_size <= HASH_LIMIT:
            out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[rel] = ("file", st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def diff(before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]) -> list[str]:
    """Readable differences between two snapshots."""
    out = [f"new: {k}" for k in after if k not in before]
    out += [f"gone: {k}" for k in before if k not in after]
    out += [f"changed: {k}" for k in before if k in after and before[k] != after[k]]
    return out


def error_lines(stderr: str) -> list[str]:
    """The non-empty lines of stderr."""
    return [line for line in stderr.splitlines() if line.strip()]


def copy_synthetic(dst: Path, splits: Sequence[tuple[str, str]] | None = None) -> Path:
    """A private copy of the synthetic fixture (optionally with new ``(id, split)`` rows)."""
    shutil.copytree(SYNTHETIC, dst)
    if splits is not None:
        lines = (dst / "scenes.csv").read_text().splitlines()
        rows = {line.split(",", 1)[0]: line for line in lines[1:]}
        new = [lines[0]]
        for scene, split in splits:
            _, _, rest = rows[scene].split(",", 2)
            new.append(f"{scene},{split},{rest}")
        (dst / "scenes.csv").write_text("\n".join(new) + "\n")
    return dst
