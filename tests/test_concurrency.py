"""Two processes on one workspace: refused with the holder's pid, or waiting with --wait.

A *holder* subprocess takes the workspace lock through a real stage run and keeps it until a
file appears, which makes the overlap certain; the CLI runs against it in other subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import REPO, cli, link_copy, popen, write_tiny_profile

from eosfm_cli.models.native_file import load_ensemble

HOLDER = """
import sys, time
from pathlib import Path
from eosfm_cli.workspace import Workspace
ws, release = Path(sys.argv[1]), Path(sys.argv[2])
with Workspace(ws).stage_run("holder"):
    (ws / "holder.started").write_text("1")
    while not release.exists():
        time.sleep(0.05)
"""


def _holder(ws: Path, release: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws), str(release)], cwd=REPO)
    deadline = time.monotonic() + 60
    while not (ws / "holder.started").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return proc


@pytest.fixture
def ws(tmp_path: Path, prepared_workspace: Path) -> Path:
    return link_copy(prepared_workspace, tmp_path / "ws")


def _export(ws: Path, profile: Path, name: str, *extra: str) -> list[str]:
    return [
        "export-ensemble",
        "-p",
        str(profile),
        "-w",
        str(ws),
        "--quiet",
        "--set",
        f"ensemble.name={name}",
        *extra,
    ]


def test_second_stage_is_refused_then_waits(ws: Path, tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path / "tiny.yaml")
    release = tmp_path / "release"
    holder = _holder(ws, release)
    try:
        refused = cli(*_export(ws, profile, "refused"))
        assert refused.returncode == 2, refused.stderr
        assert f"locked by pid {holder.pid}" in refused.stderr and "--wait" in refused.stderr
        assert not (ws / "ensembles" / "refused.safetensors").exists()
        waiting = popen(*_export(ws, profile, "waited", "--wait"))
        time.sleep(2.0)
        assert waiting.poll() is None, "--wait did not wait"
        release.write_text("go")
        _, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, err
    finally:
        release.write_text("go")
        holder.wait(timeout=60)
    assert len(load_ensemble(ws / "ensembles" / "waited.safetensors")) == 2
    runs = json.loads((ws / "manifest.json").read_text())["runs"]
    assert [(r["stage"], r["status"]) for r in runs[-2:]] == [
        ("holder", "ok"),
        ("export-ensemble", "ok"),
    ]


def test_two_stages_started_together_with_wait(ws: Path, tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path / "tiny.yaml")
    procs = [popen(*_export(ws, profile, name, "--wait")) for name in ("first", "second")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    for name in ("first", "second"):
        assert len(load_ensemble(ws / "ensembles" / f"{name}.safetensors")) == 2
    runs = json.loads((ws / "manifest.json").read_text())["runs"]
    assert sorted(r["status"] for r in runs[-2:]) == ["ok", "ok"]
    assert not (ws / ".lock").exists()


def test_stale_lock_of_killed_holder_is_recovered(ws: Path, tmp_path: Path) -> None:
    profile = write_tiny_profile(tmp_path / "tiny.yaml")
    holder = _holder(ws, tmp_path / "never")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert json.loads((ws / ".lock").read_text())["pid"] == holder.pid  # left behind
    out = cli(*_export(ws, profile, "after"))
    assert out.returncode == 0, out.stderr
    runs = json.loads((ws / "manifest.json").read_text())["runs"]
    assert [(r["stage"], r["status"]) for r in runs[-2:]] == [
        ("holder", "interrupted"),
        ("export-ensemble", "ok"),
    ]
    assert not (ws / ".lock").exists()
