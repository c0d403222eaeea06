"""train-specialist: one short epoch per task on the committed fixtures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from training_helpers import DEFAULT, REPO, SYNTHETIC, check_specialist, run_training

from eosfm_cli.errors import DataError, WorkspaceError
from eosfm_cli.models.checkpoints import load_checkpoint_file


@pytest.mark.parametrize(
    ("dataset", "task"),
    [
        ("synthetic_s2", "classification"),
        ("synthetic_rgb", "classification"),
        ("synthetic_s1", "classification"),
        ("synthetic_ml", "multilabel"),
        ("synthetic_seg", "segmentation"),
        ("synthetic_cd", "change_detection"),
    ],
)
def test_one_epoch_on_synthetic(tmp_path: Path, dataset: str, task: str) -> None:
    _, res = run_training(tmp_path, dataset, SYNTHETIC)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / dataset, task)
    assert spec["task"] == task and spec["dataset"] == dataset
    runs = json.loads((tmp_path / "ws" / "manifest.json").read_text())["runs"]
    assert runs[-1]["status"] == "ok" and runs[-1]["stage"] == "train-specialist"


def test_checkpoint_encoder_loads_into_plain_timm_strict(tmp_path: Path) -> None:
    import timm

    run_training(tmp_path, "synthetic_rgb", SYNTHETIC, name="rgb_a")
    folder = tmp_path / "ws" / "specialists" / "rgb_a"
    ckpt = load_checkpoint_file(folder / "best.ckpt")
    prefix = "encoder."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    spec = json.loads((folder / "specialist.json").read_text())
    model = timm.create_model(
        spec["backbone"], features_only=True, in_chans=spec["in_chans"], pretrained=False
    )
    model.load_state_dict(state, strict=True)
    assert spec["bands"] == ["R", "G", "B"]
    hp = ckpt["hyper_parameters"]
    assert hp["backbone"] == spec["backbone"] and list(hp["bands"]) == spec["bands"]


def test_statistics_are_computed_once_and_cached(tmp_path: Path) -> None:
    run_training(tmp_path, "synthetic_s1", SYNTHETIC)
    cached = list((tmp_path / "ws" / "cache" / "stats").glob("*.json"))
    assert len(cached) == 1
    stats = json.loads(cached[0].read_text())
    assert stats["bands"] == ["VV", "VH"]
    assert -40 < stats["mean"][0] < 10  # dB
    spec = json.loads(
        (tmp_path / "ws" / "specialists" / "synthetic_s1" / "specialist.json").read_text()
    )
    assert spec["mean"] == stats["mean"]


def test_finished_specialist_is_not_overwritten(tmp_path: Path) -> None:
    run_training(tmp_path, "synthetic_s1", SYNTHETIC)
    with pytest.raises(WorkspaceError, match="already trained"):
        run_training(tmp_path, "synthetic_s1", SYNTHETIC)
    run_training(tmp_path, "synthetic_s1", SYNTHETIC, overwrite=True)


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        run_training(tmp_path, "synthetic_s2", tmp_path / "nowhere")
    assert not (tmp_path / "ws" / "manifest.json").exists()


def test_resume_without_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="nothing to resume"):
        run_training(tmp_path, "synthetic_s2", SYNTHETIC, resume=True)


def _cli(ws: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "eosfm_cli",
        "train-specialist",
        "--dataset",
        "synthetic_rgb",
        "--root",
        str(SYNTHETIC),
        "-w",
        str(ws),
        "-p",
        str(DEFAULT),
        "--quiet",
        "--set",
        "trainer.max_epochs=4",
        "--set",
        "trainer.batch_size=2",
        "--set",
        "emissions.enabled=false",
        *extra,
    ]


def test_kill9_then_resume_reaches_the_same_epoch_count(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    folder = ws / "specialists" / "synthetic_rgb"
    proc = subprocess.Popen(
        _cli(ws), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (folder / "last.ckpt").is_file():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    epoch_at_kill = load_checkpoint_file(folder / "last.ckpt")["epoch"]
    assert not (folder / "specialist.json").exists()
    assert epoch_at_kill < 3
    manifest = json.loads((ws / "manifest.json").read_text())
    assert manifest["runs"][-1]["status"] == "running"

    out = subprocess.run(_cli(ws, "--resume"), cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    spec = json.loads((folder / "specialist.json").read_text())
    assert spec["epochs"] == 4
    last = load_checkpoint_file(folder / "last.ckpt")
    # 8 training scenes, batch 2: 4 steps per epoch, 4 epochs, no step lost or repeated.
    assert last["global_step"] == 16
    runs = json.loads((ws / "manifest.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["interrupted", "ok"]
    assert not list(folder.glob(".*tmp*"))


def test_sigint_stops_cleanly_and_keeps_last(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    folder = ws / "specialists" / "synthetic_rgb"
    proc = subprocess.Popen(
        _cli(ws, "--set", "trainer.max_epochs=50"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (folder / "last.ckpt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert (folder / "last.ckpt").is_file() and not (folder / "specialist.json").exists()
    torch.load(folder / "last.ckpt", weights_only=True)
    runs = json.loads((ws / "manifest.json").read_text())["runs"]
    assert runs[-1]["status"] == "interrupted"


FIXTURES = REPO / "tests" / "data"


@pytest.mark.parametrize(
    ("dataset", "root", "task"),
    [
        ("eurosat_rgb", FIXTURES / "eurosat", "classification"),
        ("eurosat_s2", FIXTURES / "eurosat", "classification"),
        ("ben_rgb", FIXTURES / "bigearthnet" / "v1", "multilabel"),
        ("ben_s1", FIXTURES / "bigearthnet" / "v1", "multilabel"),
        ("ben_all", FIXTURES / "bigearthnet" / "v2", "multilabel"),
        ("sen12ms_rgb", FIXTURES / "sen12ms", "segmentation"),
        ("sen12ms_s1", FIXTURES / "sen12ms", "segmentation"),
        ("sen12ms_s2", FIXTURES / "sen12ms", "segmentation"),
        ("sen12ms_all", FIXTURES / "sen12ms", "segmentation"),
    ],
)
def test_one_epoch_on_release_layout_fixture(
    tmp_path: Path, dataset: str, root: Path, task: str
) -> None:
    if dataset == "ben_all":
        pytest.importorskip("pyarrow", reason="BigEarthNet v2 metadata is parquet")
    _, res = run_training(tmp_path, dataset, root)
    assert res is not None and res.epochs == 1
    spec = check_specialist(tmp_path / "ws" / "specialists" / dataset, task)
    from eosfm_cli.data.registry import EXPERIMENTS

    assert tuple(spec["bands"]) == EXPERIMENTS[dataset].bands


def test_ema_weights_are_what_best_ckpt_and_the_specialist_hold(tmp_path: Path) -> None:
    _, res = run_training(
        tmp_path, "synthetic_s2", SYNTHETIC, ["trainer.max_epochs=2", "trainer.ema_decay=0.5"]
    )
    assert res is not None and res.epochs == 2
    folder = tmp_path / "ws" / "specialists" / "synthetic_s2"
    check_specialist(folder, "classification")
    ckpt = load_checkpoint_file(folder / "best.ckpt")
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert set(averaged) <= set(raw)
    # The averaged weights lag the raw ones: at least one tensor differs.
    assert any(
        not torch.equal(averaged[k], raw[k]) for k in averaged if averaged[k].is_floating_point()
    )
