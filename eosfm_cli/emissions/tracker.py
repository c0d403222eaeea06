"""Energy and carbon tracking of stage runs with CodeCarbon.

Every tracked stage run writes one CodeCarbon CSV, ``<folder>/<stage>-<run_id>.csv`` (the
workspace passes its ``emissions/``), that holds exactly that run's row, and returns an
:class:`~eosfm_cli.emissions.record.EmissionsRecord` that
:meth:`eosfm_cli.workspace.Workspace.stage_run` stores in the manifest entry. The
``emissions-report`` stage aggregates those CSVs. This module knows nothing of workspaces:
the folder comes in as a plain path, so the workspace can call it without a cycle.

Design decisions:

- **Offline by default.** ``OfflineEmissionsTracker`` with the profile's country code reads
  CodeCarbon's bundled energy-mix tables and never opens a connection. Every network output
  (CodeCarbon API, HTTP endpoint, Prometheus, Logfire, Electricity Maps) is switched off
  explicitly, so a ``~/.codecarbon.config`` or a ``CODECARBON_*`` variable cannot turn one
  on behind our back. ``emissions.online: true`` uses ``EmissionsTracker``, which looks the
  location up on the internet (still without sending any data anywhere).
- **Machine tracking mode.** CodeCarbon measures the whole machine (``tracking_mode=
  "machine"``). Under DDP only rank 0 tracks, so machine mode is what covers the other ranks
  of its node; GPU counters are per device anyway; and the paper's totals, which the report
  compares against, come from CodeCarbon's default (machine) mode. The price: on a shared
  machine, other users' load is counted too. Pass ``tracking_mode="process"`` to
  :func:`track_emissions` to count only this process and its children.
- **Short sampling interval.** Power is sampled every :data:`MEASURE_POWER_SECS` seconds and
  once more at stop, so even a stage of a few seconds gets a figure.
- **Honest quality.** The record carries the measurement ``mode`` of CPU, GPU and RAM
  (e.g. ``cpu: RAPL; gpu: pynvml (1 x NVIDIA H100); ram: model estimate``), read from the
  tracker's hardware objects after start (see :mod:`eosfm_cli.emissions.measurement_mode`).
- **Rank 0 only.** Under DDP (torchrun, SLURM, Lightning's launcher) only global rank 0
  (:func:`eosfm_cli.distributed.is_rank_zero`) tracks, so no figure is counted twice.
  Multi-node jobs therefore report node 0 only.
- **Never breaks a stage.** Any failure to build, start or stop the tracker (including the
  ones CodeCarbon swallows and only logs) becomes a single warning line; the stage goes on.
- **Quiet.** CodeCarbon's own log lines are captured, never printed; a stage prints at most
  one line about emissions: the figures (unless ``--quiet``), or the warning.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from eosfm_cli import distributed
from eosfm_cli.console import info, warn
from eosfm_cli.emissions.measurement_mode import describe_mode
from eosfm_cli.emissions.record import EmissionsRecord

if TYPE_CHECKING:
    from eosfm_cli.profile_schema import EmissionsConfig

MEASURE_POWER_SECS = 2.0
"""Seconds between two power samples (CodeCarbon's default of 15 s is too coarse)."""

TRACKING_MODE = "machine"
"""CodeCarbon's tracking mode used by stages (see the module docstring for why)."""

CODECARBON_LOGGER = "codecarbon"


# CodeCarbon's logging ----------------------------------------------------------------------
class _CodeCarbonLogCapture(logging.Filter):
    """Swallow CodeCarbon's log records, keeping the problems to report in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or record.exc_info:
            message = record.getMessage().strip().splitlines()
            text = message[0] if message else ""
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if text and text not in self.problems:
                self.problems.append(text)
        return False


@contextlib.contextmanager
def _quiet_codecarbon() -> Iterator[_CodeCarbonLogCapture]:
    """Silence the ``codecarbon`` logger and Python warnings from it, capturing problems.

    The filter sits on the logger itself, so it also holds after CodeCarbon replaces the
    logger's handlers (which each tracker constructor does).
    """
    cc_logger = logging.getLogger(CODECARBON_LOGGER)
    capture = _CodeCarbonLogCapture()
    cc_logger.addFilter(capture)
    try:
        yield capture
    finally:
        cc_logger.removeFilter(capture)
        # CodeCarbon leaves its logger at INFO; keep it at ERROR once we have used it.
        cc_logger.setLevel(logging.ERROR)


def _build_tracker(
    cfg: EmissionsConfig, output_dir: Path, output_file: str, run_id: str, tracking_mode: str
) -> Any:
    """Construct (without starting) the CodeCarbon tracker for one run."""
    import codecarbon
    from codecarbon.output_methods.base_output import OutputMethod

    common: dict[str, Any] = {
        "project_name": "eosfm",
        "experiment_id": run_id,
        "output_dir": str(output_dir),
        "output_file": output_file,
        # CSV only: the deprecated save_to_* switches and every network output stay off.
        "output_methods": [OutputMethod.CSV],
        "emissions_endpoint": None,
        "api_call_interval": -1,
        "measure_power_secs": MEASURE_POWER_SECS,
        "tracking_mode": tracking_mode,
        # WARNING, not ERROR: the failures CodeCarbon swallows are logged at WARNING, and
        # our filter needs to see them to say why tracking failed. Nothing is printed.
        "log_level": "warning",
        "on_csv_write": "append",
        # Rank 0 is the only tracker; CodeCarbon's cross-process lock would only make a
        # second eosfm process on the same machine lose its figures silently.
        "allow_multiple_runs": True,
    }
    if cfg.online:
        return codecarbon.EmissionsTracker(**common)
    # An empty token (not None) keeps a configured Electricity Maps token from being used.
    return codecarbon.OfflineEmissionsTracker(
        country_iso_code=cfg.country_iso_code, electricitymaps_api_token="", **common
    )


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass
class _TrackerState:
    tracker: Any = None
    started: bool = False
    problems: list[str] = field(default_factory=list)


# Public API --------------------------------------------------------------------------------
@contextlib.contextmanager
def track_emissions(
    folder: Path,
    stage: str,
    run_id: str,
    cfg: EmissionsConfig,
    *,
    is_rank_zero: bool | None = None,
    tracking_mode: str = TRACKING_MODE,
) -> Iterator[EmissionsRecord]:
    """Run the body inside a CodeCarbon tracker and fill an :class:`EmissionsRecord`.

    The record is filled when the body ends, also when it raises or is interrupted (what
    was measured until then is kept, and the exception goes on). The CSV is written under a
    temporary name and renamed to ``<folder>/<stage>-<run_id>.csv`` once complete; the
    record's ``csv`` is that path.

    Tracking failures never reach the body: they become one warning line and a record with
    ``status="failed"``.

    Args:
        folder: the folder the CSV goes into (created when needed; a workspace's
            ``emissions/``).
        stage: the stage name.
        run_id: the stage run's id (unique, so the CSV holds this run's row only).
        cfg: the profile's ``emissions`` section.
        is_rank_zero: whether this process is the DDP rank that tracks. ``None`` (default)
            reads it from the environment (see :func:`eosfm_cli.distributed.is_rank_zero`);
            ``False`` never tracks; ``True`` always does.
        tracking_mode: CodeCarbon's ``machine`` (default) or ``process``.

    Yields:
        The record, filled in after the body.
    """
    record = EmissionsRecord(stage=stage, run_id=run_id)
    if not cfg.enabled:
        record.note = "emissions.enabled is false"
        yield record
        return
    rank_zero = distributed.is_rank_zero() if is_rank_zero is None else is_rank_zero
    if not rank_zero:
        record.status = "not-rank-zero"
        record.note = "only DDP rank 0 tracks"
        yield record
        return

    record.tracking_mode = tracking_mode
    record.online = bool(cfg.online)
    final = Path(folder) / f"{stage}-{run_id}.csv"
    partial = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp.csv")
    state = _TrackerState()
    t0 = time.perf_counter()
    with _quiet_codecarbon() as capture:
        _start(state, cfg, final.parent, partial.name, run_id, tracking_mode)
        try:
            yield record
        finally:
            elapsed = time.perf_counter() - t0
            _stop(state, record, partial, final, elapsed)
            state.problems.extend(p for p in capture.problems if p not in state.problems)
            if record.status == "measured" and state.problems:
                # Measured, but CodeCarbon complained (e.g. an unknown country code makes
                # it fall back to the world-average carbon intensity): keep it visible.
                record.note = "CodeCarbon: " + "; ".join(state.problems)
    if state.started and record.status == "measured":
        line = record.summary()
        if record.note:
            line += f" — {record.note[:120]}"
        info(f"[dim]{escape(line)}[/dim]")
    else:
        reason = "; ".join(state.problems[:2]) or record.note or "unknown reason"
        warn(escape(f"energy tracking failed, this run's emissions are not recorded ({reason})"))


def _start(
    state: _TrackerState,
    cfg: EmissionsConfig,
    out_dir: Path,
    out_file: str,
    run_id: str,
    tracking_mode: str,
) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracker = _build_tracker(cfg, out_dir, out_file, run_id, tracking_mode)
            tracker.start()
        # CodeCarbon's start() swallows its own exceptions: check that it really started.
        if getattr(tracker, "_start_time", None) is None:
            state.problems.append("the tracker did not start")
            _quiet_stop(tracker)
            _halt_threads(tracker)
            return
        state.tracker = tracker
        state.started = True
    except Exception as exc:
        state.problems.append(f"cannot start: {type(exc).__name__}: {exc}".splitlines()[0])


def _quiet_stop(tracker: Any) -> None:
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker.stop()


def _stop(
    state: _TrackerState,
    record: EmissionsRecord,
    partial: Path,
    final: Path,
    elapsed: float,
) -> None:
    """Stop the tracker, move its CSV into place and fill the record; never raises."""
    record.duration_s = elapsed
    if not state.started:
        record.status = "failed"
        record.note = "; ".join(state.problems) or "the tracker did not start"
        _remove(partial)
        return
    tracker = state.tracker
    try:
        mode = describe_mode(tracker)
    except Exception:
        mode = "unknown"
    record.mode = mode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracker.stop()
        data = getattr(tracker, "final_emissions_data", None)
        if data is None:
            raise RuntimeError("the tracker did not stop cleanly")
        record.duration_s = _finite(getattr(data, "duration", None)) or elapsed
        record.energy_kwh = _finite(getattr(data, "energy_consumed", None))
        record.emissions_kg = _finite(getattr(data, "emissions", None))
        record.cpu_energy_kwh = _finite(getattr(data, "cpu_energy", None))
        record.gpu_energy_kwh = _finite(getattr(data, "gpu_energy", None))
        record.ram_energy_kwh = _finite(getattr(data, "ram_energy", None))
        record.country = getattr(data, "country_iso_code", None) or None
        if record.energy_kwh is None or record.emissions_kg is None:
            raise RuntimeError("CodeCarbon returned no energy or emissions figure")
        if not partial.is_file():
            raise RuntimeError("CodeCarbon wrote no CSV")
        os.replace(partial, final)
        record.csv = str(final)
        record.status = "measured"
    except Exception as exc:
        state.problems.append(f"cannot stop: {type(exc).__name__}: {exc}".splitlines()[0])
        record.status = "failed"
        record.note = "; ".join(state.problems)
        _halt_threads(tracker)
        _remove(partial)


def _halt_threads(tracker: Any) -> None:
    """Stop the sampling threads of a tracker whose stop() failed, so none outlives the run."""
    for name in ("_scheduler", "_scheduler_monitor_power"):
        scheduler = getattr(tracker, name, None)
        if scheduler is not None and callable(getattr(scheduler, "stop", None)):
            with contextlib.suppress(Exception):
                scheduler.stop()


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
