import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eosfm_cli.errors import WorkspaceError
from eosfm_cli.io import atomic_path, atomic_write_json
from eosfm_cli.workspace import Workspace
from eosfm_cli.workspace_lock import WorkspaceLock


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_exception_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


_CRASH_WRITER = """
import os, sys
from eosfm_cli.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as fh:
        fh.write(b"x" * 1000)
        fh.flush()
        os.kill(os.getpid(), 9)
"""


def test_killed_writer_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "ensemble.safetensors"
    proc = subprocess.run([sys.executable, "-c", _CRASH_WRITER, str(target)], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    # The staging file is cleaned by the next stage run.
    ws = Workspace(tmp_path)
    with ws.stage_run("test"):
        pass
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ensemble")]


def test_manifest_records_runs(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("train-specialist", {"seed": 1}) as run:
        run.outputs.append("specialists/a/best.ckpt")
        run.extra["metrics"] = {"val": {"accuracy": 0.5}}
    with pytest.raises(ValueError), ws.stage_run("export-ensemble"):
        raise ValueError("boom")
    runs = ws.runs()
    assert [r["status"] for r in runs] == ["ok", "failed"]
    first = runs[0]
    assert first["stage"] == "train-specialist" and first["profile"] == {"seed": 1}
    assert first["outputs"] == ["specialists/a/best.ckpt"] and first["start"] and first["end"]
    assert "torch" in first["versions"] or "eosfm" in first["versions"]
    assert runs[1]["error"] == "boom"


def test_lock_refuses_second_writer_naming_pid(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.ensure()
    lock = WorkspaceLock(tmp_path / ".lock", "fit-head")
    lock.acquire()
    try:
        with pytest.raises(WorkspaceError, match=f"pid {os.getpid()}"), ws.stage_run("x"):
            pass
    finally:
        lock.release()
    with ws.stage_run("x"):
        pass


def _hold(path: str, ready: "mp.synchronize.Event") -> None:  # type: ignore[name-defined]
    WorkspaceLock(Path(path), "holder").acquire()
    ready.set()
    time.sleep(60)


def test_stale_lock_of_dead_process_is_recovered(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path / ".lock"), ready))
    proc.start()
    assert ready.wait(10)
    with pytest.raises(WorkspaceError, match="locked"):
        WorkspaceLock(tmp_path / ".lock").acquire()
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    lock = WorkspaceLock(tmp_path / ".lock")
    lock.acquire()
    lock.release()
    assert not (tmp_path / ".lock").exists()


def test_wait_for_lock(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path / ".lock"), ready))
    proc.start()
    assert ready.wait(10)
    lock = WorkspaceLock(tmp_path / ".lock")
    t0 = time.monotonic()
    import threading

    threading.Timer(0.5, lambda: os.kill(proc.pid, signal.SIGKILL)).start()
    lock.acquire(wait=True, timeout=20)
    assert time.monotonic() - t0 >= 0.4
    lock.release()
    proc.join()


def test_interrupted_run_is_marked(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    ws.ensure()
    data = {"version": 1, "runs": [{"run_id": "r1", "stage": "train", "status": "running"}]}
    atomic_write_json(ws.manifest_path, data)
    with ws.stage_run("next"):
        pass
    assert ws.runs()[0]["status"] == "interrupted"


def test_paths_cannot_escape(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    with pytest.raises(WorkspaceError, match="escapes"):
        ws.path("specialists", "../../etc")
    assert ws.path("specialists", "a") == (tmp_path / "specialists" / "a").resolve()


def test_read_only_workspace(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(WorkspaceError, match="not writable"):
        Workspace(ro).ensure()


def test_lock_is_taken_only_outside_the_folder_guard(tmp_path: Path) -> None:
    # Another process checking or writing the lock holds the folder guard: acquiring waits
    # for it, so a half-written lock file is never read as a stale one.
    import threading

    from eosfm_cli.workspace_lock import WorkspaceLock, folder_guard

    lock = WorkspaceLock(tmp_path / ".lock", "stage")
    done = threading.Event()
    with folder_guard(tmp_path):
        thread = threading.Thread(target=lambda: (lock.acquire(), done.set()))
        thread.start()
        assert not done.wait(0.3)
    assert done.wait(5)
    thread.join()
    assert lock.held and json.loads((tmp_path / ".lock").read_text())["stage"] == "stage"
    lock.release()


def test_a_failed_final_manifest_write_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from eosfm_cli.errors import WorkspaceError
    from eosfm_cli.io import disk_error

    ws = Workspace(tmp_path / "ws")
    real = Workspace._update_manifest
    calls = []

    def full_disk_at_the_end(self: Workspace, fn: object) -> None:
        calls.append(fn)
        if len(calls) == 2:  # the entry that marks the run finished
            raise disk_error(OSError(errno.ENOSPC, "full"), self.manifest_path)
        real(self, fn)  # type: ignore[arg-type]

    monkeypatch.setattr(Workspace, "_update_manifest", full_disk_at_the_end)
    with (
        pytest.raises(WorkspaceError, match=r"manifest\.json could not be updated"),
        ws.stage_run("export-ensemble") as run,
    ):
        run.outputs.append("ensembles/e.safetensors")
    monkeypatch.setattr(Workspace, "_update_manifest", real)
    # Still "running" on file: once this process is gone it reads as interrupted.
    assert [r["status"] for r in ws.read_manifest()["runs"]] == ["running"]
    assert not (ws.root / ".lock").exists()


def test_a_failed_manifest_write_after_a_failed_body_keeps_the_body_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from eosfm_cli.io import disk_error

    ws = Workspace(tmp_path / "ws")
    real = Workspace._update_manifest
    calls = []

    def full_disk_at_the_end(self: Workspace, fn: object) -> None:
        calls.append(fn)
        if len(calls) == 2:
            raise disk_error(OSError(errno.ENOSPC, "full"), self.manifest_path)
        real(self, fn)  # type: ignore[arg-type]

    monkeypatch.setattr(Workspace, "_update_manifest", full_disk_at_the_end)
    with pytest.raises(ValueError, match="boom"), ws.stage_run("export-ensemble"):
        raise ValueError("boom")
