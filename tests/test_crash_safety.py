"""SIGKILL at named points of train-specialist, fit-head and export-ensemble, then recover.

The crash points are those of :mod:`eosfm_cli.faults` (``EOSFM_TEST_CRASH_AT``): the process
kills itself with SIGKILL, so no cleanup code runs. Afterwards no artifact exists half-written
under its real name, manifest.json parses and reports the run ``interrupted``, and a re-run
(``--resume`` for training) completes. The time-based kill of a real training run is in
``test_train_specialist.py``.
"""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest
from reliability_helpers import HEAD_RUN, SYNTHETIC, cli, link_copy, write_tiny_profile

from eosfm_cli.faults import CRASH_ENV
from eosfm_cli.models.native_file import load_ensemble
from eosfm_cli.workspace import Workspace


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _args(ws: Path, profile: Path, stage: str, *extra: str) -> list[str]:
    return [stage, "-p", str(profile), "-w", str(ws), "--quiet", *extra]


def _crash(ws: Path, profile: Path, point: str, stage: str, *extra: str) -> None:
    out = cli(*_args(ws, profile, stage, *extra), env={CRASH_ENV: point})
    assert out.returncode == -signal.SIGKILL, (point, out.returncode, out.stderr[-2000:])


def _check_interrupted(ws: Path, stage: str) -> None:
    raw = json.loads((ws / "manifest.json").read_text())  # parses
    assert raw["runs"][-1]["stage"] == stage
    assert raw["runs"][-1]["status"] == "running"  # nobody could correct it yet
    assert Workspace(ws).runs()[-1]["status"] == "interrupted"  # its pid is dead


def _check_recovered(ws: Path, stage: str) -> None:
    runs = json.loads((ws / "manifest.json").read_text())["runs"]
    assert [r["status"] for r in runs[-2:]] == ["interrupted", "ok"]
    assert runs[-1]["stage"] == stage
    assert not list(ws.rglob(".*.tmp*")), "temporary files left behind"
    assert not (ws / ".lock").exists()


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    return write_tiny_profile(tmp_path / "tiny.yaml")


@pytest.fixture
def ws(tmp_path: Path, prepared_workspace: Path) -> Path:
    return link_copy(prepared_workspace, tmp_path / "ws")


@pytest.mark.parametrize(
    "point",
    ["rename:eosfm.safetensors", pytest.param("export-ensemble:start", marks=pytest.mark.slow)],
)
def test_export_killed_keeps_the_old_ensemble(ws: Path, profile: Path, point: str) -> None:
    ens = ws / "ensembles" / "eosfm.safetensors"
    before = _sha(ens)
    _crash(ws, profile, point, "export-ensemble")
    assert _sha(ens) == before  # the complete old file, never a partial new one
    load_ensemble(ens)
    _check_interrupted(ws, "export-ensemble")
    out = cli(*_args(ws, profile, "export-ensemble"))
    assert out.returncode == 0, out.stderr
    assert len(load_ensemble(ens)) == 2
    _check_recovered(ws, "export-ensemble")


@pytest.mark.slow
def test_export_killed_after_writing_is_reported(ws: Path, profile: Path) -> None:
    _crash(ws, profile, "export-ensemble:finish", "export-ensemble", "--set", "ensemble.name=new")
    load_ensemble(ws / "ensembles" / "new.safetensors")  # complete: written before the kill
    _check_interrupted(ws, "export-ensemble")


@pytest.mark.parametrize(
    "point",
    [
        "rename:head.json",
        pytest.param("fit-head:start", marks=pytest.mark.slow),
        pytest.param("train:epoch1", marks=pytest.mark.slow),
    ],
)
def test_fit_head_killed_leaves_no_run(ws: Path, profile: Path, point: str) -> None:
    folder = ws / "heads" / "again"
    extra = ["--run", "again", "--set", "trainer.max_epochs=2"]
    _crash(ws, profile, point, "fit-head", *extra)
    assert not (folder / "head.json").exists()  # head.json marks a finished run
    _check_interrupted(ws, "fit-head")
    evaluated = cli(*_args(ws, profile, "evaluate", "again"))
    assert evaluated.returncode == 2 and "no head run named again" in evaluated.stderr
    out = cli(*_args(ws, profile, "fit-head", *extra))
    assert out.returncode == 0, out.stderr
    for name in ("head.safetensors", "head.json", "metrics.json", "gates.json"):
        assert (folder / name).is_file(), name
    _check_recovered(ws, "fit-head")
    reference = json.loads((ws / "heads" / HEAD_RUN / "head.json").read_text())
    assert json.loads((folder / "head.json").read_text())["config"] == reference["config"]


@pytest.mark.parametrize(
    "point",
    [
        "train:epoch1",
        pytest.param("rename:specialist.json", marks=pytest.mark.slow),
        pytest.param("rename:best.ckpt", marks=pytest.mark.slow),
    ],
)
def test_train_specialist_killed_then_resumed(ws: Path, profile: Path, point: str) -> None:
    folder = ws / "specialists" / "synthetic_s2"
    extra = ["--dataset", "synthetic_s2", "--root", str(SYNTHETIC), "--set", "trainer.max_epochs=2"]
    _crash(ws, profile, point, "train-specialist", *extra)
    assert not (folder / "specialist.json").exists()
    _check_interrupted(ws, "train-specialist")
    resume = ["--resume"] if (folder / "last.ckpt").is_file() else []
    out = cli(*_args(ws, profile, "train-specialist", *extra, *resume))
    assert out.returncode == 0, out.stderr
    spec = json.loads((folder / "specialist.json").read_text())
    assert spec["epochs"] == 2
    _check_recovered(ws, "train-specialist")


def test_train_specialist_on_a_full_disk_says_so(ws: Path, profile: Path) -> None:
    """A checkpoint write that fails (here: past ``ulimit -f``) is one line, not a traceback."""
    import resource

    def limit() -> None:  # the checkpoints are ~40 MB; everything else is far smaller
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))

    folder = ws / "specialists" / "synthetic_s2"
    extra = ["--dataset", "synthetic_s2", "--root", str(SYNTHETIC), "--set", "trainer.max_epochs=1"]
    out = cli(*_args(ws, profile, "train-specialist", *extra), preexec_fn=limit)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert ".ckpt" in lines[0] and "file size limit" in lines[0] and " — " in lines[0]
    assert not (folder / "specialist.json").exists()
    assert not list(ws.rglob(".*.tmp*")), "temporary files left behind"
    assert Workspace(ws).runs()[-1]["status"] == "failed"
    assert not (ws / ".lock").exists()
