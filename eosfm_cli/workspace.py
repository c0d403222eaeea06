"""Workspace: folder layout, paths, ``manifest.json`` and the recorder of stage runs.

Layout::

    <workspace>/
      manifest.json            every stage run: stage, times, profile, inputs (sha256), outputs
      .lock                    pid of the process that writes (exclusive)
      specialists/<name>/      last.ckpt, best.ckpt, metrics.json, specialist.json, logs/
      ensembles/<name>.safetensors
      cache/                   frozen-feature cache
      heads/<run>/             head checkpoint, metrics.json, gates.json
      selection/<run>.json     learned gates, ranking, ablation
      eval/<run>/              metrics.json, confusion.png, predictions
      predictions/             predicted GeoTIFFs
      emissions/<stage>-<run_id>.csv
      reports/                 emissions.{md,json,png}
      tmp/                     staging area for atomic writes

Every artifact is written atomically through :mod:`eosfm_cli.io` (temporary file, ``fsync``,
rename), so a crash never leaves a half-written file under a real name. The lock lives in
:mod:`eosfm_cli.workspace_lock`; the energy tracker (:mod:`eosfm_cli.emissions.tracker`) is
imported only when a stage run asks for it, and never imports this module.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.console import warn
from eosfm_cli.distributed import is_rank_zero
from eosfm_cli.errors import WorkspaceError
from eosfm_cli.faults import crash_point
from eosfm_cli.io import atomic_write_json, disk_error, now_iso
from eosfm_cli.workspace_lock import WorkspaceLock, pid_alive

if TYPE_CHECKING:
    from eosfm_cli.profile_schema import EmissionsConfig

SUBDIRS = (
    "specialists",
    "ensembles",
    "cache",
    "heads",
    "selection",
    "eval",
    "predictions",
    "emissions",
    "reports",
)

#: The tail of every run id, ``<stage>-YYYYmmdd-HHMMSS-<6 hex>`` (see :func:`new_run_id`), as a
#: regular expression: readers use it to find a run id inside a file name.
RUN_ID_TAIL_PATTERN = r"\d{8}-\d{6}-[0-9a-f]{6}"


def new_run_id(stage: str) -> str:
    """Return a new, unique id for a run of ``stage``: ``<stage>-YYYYmmdd-HHMMSS-<6 hex>``.

    Args:
        stage: the stage name.
    """
    return f"{stage}-{_dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def package_versions() -> dict[str, str]:
    """Return the versions of eosfm and its main dependencies that are installed."""
    from importlib import metadata

    out: dict[str, str] = {}
    for dist in ("eosfm", "torch", "lightning", "timm", "torchgeo", "rasterio", "codecarbon"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


@dataclass
class StageRun:
    """A stage run being recorded in the manifest.

    Attributes:
        run_id: unique id of the run.
        stage: the stage name.
        inputs: input artifacts (path → sha256).
        outputs: output artifacts (workspace-relative paths).
        extra: additional fields merged into the manifest entry (metrics, emissions, ...).
    """

    run_id: str
    stage: str
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class Workspace:
    """A workspace folder.

    Args:
        root: the workspace folder (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().absolute()

    # Paths ----------------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        """The manifest file."""
        return self.root / "manifest.json"

    @property
    def emissions_dir(self) -> Path:
        """The folder of the CodeCarbon CSVs, one ``<stage>-<run_id>.csv`` per tracked run."""
        return self.root / "emissions"

    @property
    def reports_dir(self) -> Path:
        """The folder of the reports (``emissions.{md,json,png}``)."""
        return self.root / "reports"

    def path(self, *parts: str) -> Path:
        """Return a path inside the workspace, refusing any that would escape it.

        Args:
            parts: path components relative to the workspace root.

        Raises:
            WorkspaceError: if the result lies outside the workspace (e.g. ``../../etc``).
        """
        target = self.root.joinpath(*parts).resolve()
        root = self.root.resolve()
        if target != root and root not in target.parents:
            raise WorkspaceError(
                f"path {'/'.join(parts)!r} escapes the workspace",
                where=str(self.root),
                hint="use a plain name without '..' or an absolute path",
            )
        return target

    def specialist_dir(self, name: str) -> Path:
        """The folder of one specialist."""
        return self.path("specialists", name)

    def ensemble_path(self, name: str, fmt: str = "safetensors") -> Path:
        """The path of an exported ensemble."""
        return self.path("ensembles", f"{name}.{fmt}")

    def list_specialists(self) -> list[str]:
        """Names of the specialists with a ``specialist.json`` in the workspace."""
        base = self.root / "specialists"
        if not base.is_dir():
            return []
        return sorted(p.parent.name for p in base.glob("*/specialist.json"))

    def ensure(self) -> None:
        """Create the workspace folders."""
        try:
            for sub in SUBDIRS:
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise disk_error(err, self.root) from None
        if not os.access(self.root, os.W_OK):
            raise disk_error(OSError(errno.EACCES, "read-only"), self.root)

    # Manifest -------------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        """Read ``manifest.json`` (an empty manifest when absent)."""
        if not self.manifest_path.is_file():
            return {"version": 1, "runs": []}
        try:
            data = json.loads(self.manifest_path.read_text())
        except ValueError:
            raise WorkspaceError(
                "manifest.json is not valid JSON",
                where=str(self.manifest_path),
                hint="restore it from a backup or move it away",
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
            raise WorkspaceError("manifest.json has no `runs` list", where=str(self.manifest_path))
        return data

    def _update_manifest(self, fn: Callable[[dict[str, Any]], None]) -> None:
        data = self.read_manifest()
        fn(data)
        atomic_write_json(self.manifest_path, data)

    def runs(self, stage: str | None = None) -> list[dict[str, Any]]:
        """Return the recorded runs, optionally of one stage.

        A run recorded as ``running`` whose process is gone (killed with SIGKILL, or the
        machine went down) is reported as ``interrupted``; the file itself is corrected by the
        next stage run, which holds the lock.
        """
        runs = self.read_manifest()["runs"]
        out = []
        for r in runs:
            if stage is None or r.get("stage") == stage:
                out.append({**r, "status": run_status(r)})
        return out

    @contextlib.contextmanager
    def stage_run(
        self,
        stage: str,
        profile: dict[str, Any] | None = None,
        wait: bool = False,
        *,
        emissions: EmissionsConfig | None = None,
    ) -> Iterator[StageRun]:
        """Hold the lock and record one stage run in the manifest.

        The entry is written as ``running`` first, so a run killed with SIGKILL is visible;
        the next stage run marks such entries ``interrupted``. On success the entry becomes
        ``ok`` with its inputs, outputs and extra fields; on an exception, ``failed``.

        With ``emissions``, the body runs inside :func:`eosfm_cli.emissions.tracker.track_emissions`
        and the entry gets an ``emissions`` field (also when the body fails).

        Args:
            stage: the stage name.
            profile: the resolved profile, recorded in the entry.
            wait: wait for a busy workspace instead of refusing.
            emissions: the profile's ``emissions`` section; ``None`` tracks nothing.

        In a distributed run, only global rank 0 locks, records and tracks; the other ranks
        get a run record that is never written (see :mod:`eosfm_cli.distributed`).

        Yields:
            The run record to fill in.
        """
        if not is_rank_zero():
            yield StageRun(run_id=f"{stage}-rank", stage=stage)
            return
        self.ensure()
        lock = WorkspaceLock(self.root / ".lock", stage)
        lock.acquire(wait=wait)
        run = StageRun(run_id=new_run_id(stage), stage=stage)
        entry: dict[str, Any] = {
            "run_id": run.run_id,
            "stage": stage,
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start": now_iso(),
            "end": None,
            "profile": profile,
            "versions": package_versions(),
        }
        try:

            def _start(data: dict[str, Any]) -> None:
                for old in data["runs"]:
                    if old.get("status") == "running":
                        old["status"] = "interrupted"
                data["runs"].append(entry)

            self._update_manifest(_start)
            crash_point(f"{stage}:start")
            try:
                with self._track(run, emissions):
                    yield run
            except BaseException as exc:
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                self._finish(
                    entry,
                    run,
                    status,
                    error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                )
                raise
            crash_point(f"{stage}:finish")
            self._finish(entry, run, "ok")
        finally:
            lock.release()
            self._clean_tmp()

    @contextlib.contextmanager
    def _track(self, run: StageRun, emissions: EmissionsConfig | None) -> Iterator[None]:
        """Track the body's energy when asked; the record lands in ``run.extra``."""
        if emissions is None:
            yield
            return
        # Imported here: codecarbon stays out of the import of this module.
        from eosfm_cli.emissions.tracker import track_emissions

        record = None
        try:
            with track_emissions(self.emissions_dir, run.stage, run.run_id, emissions) as record:
                yield
        finally:
            # Filled when the tracker stops, so also when the body failed.
            if record is not None:
                if record.csv is not None:
                    # The manifest names its files relative to the workspace.
                    record.csv = self.relative(record.csv)
                run.extra["emissions"] = record.to_dict()

    def _finish(
        self, entry: dict[str, Any], run: StageRun, status: str, error: str | None = None
    ) -> None:
        entry.update(
            status=status,
            end=now_iso(),
            inputs=run.inputs,
            outputs=run.outputs,
            **run.extra,
        )
        if error:
            entry["error"] = error

        def _set(data: dict[str, Any]) -> None:
            for i, old in enumerate(data["runs"]):
                if old.get("run_id") == entry["run_id"]:
                    data["runs"][i] = entry
                    return
            data["runs"].append(entry)

        try:
            self._update_manifest(_set)
        except WorkspaceError as err:
            if status != "ok":
                # The body's own exception is what the user must see; say the rest in a line.
                warn(
                    f"the manifest entry of this {status} run could not be written ({err.message})"
                )
                return
            raise WorkspaceError(
                f"{run.stage} finished and wrote its outputs, but manifest.json could not be "
                f"updated ({err.message}); the run shows as interrupted",
                where=str(self.manifest_path),
                hint=err.hint or "fix the workspace and run the stage again",
            ) from err

    def _clean_tmp(self) -> None:
        """Remove temporary files that a killed writer left behind."""
        for tmp in self.root.rglob(".*.tmp*"):
            with contextlib.suppress(OSError):
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()

    def relative(self, path: str | Path) -> str:
        """Return a path relative to the workspace root when it lies inside it."""
        p = Path(path).absolute()
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)


def run_status(entry: dict[str, Any]) -> str:
    """The status of a manifest entry, with ``running`` runs of dead processes ``interrupted``.

    Args:
        entry: one element of the manifest's ``runs``.
    """
    status = str(entry.get("status", "unknown"))
    if status != "running":
        return status
    same_host = entry.get("host", socket.gethostname()) == socket.gethostname()
    pid = entry.get("pid")
    if same_host and isinstance(pid, int) and not pid_alive(pid):
        return "interrupted"
    return status


def make_tempdir(prefix: str = "eosfm-") -> Path:
    """Create a temporary directory (for staging outside a workspace)."""
    return Path(tempfile.mkdtemp(prefix=prefix))
