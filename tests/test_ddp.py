"""Lightning DDP on the CPU (gloo): two processes give what one process gives.

The data is split 8/2/2, so one DDP step (2 ranks x batch 4) sees exactly what one
single-process step (batch 8) sees: the averaged gradients are the full-batch gradient, and the
weights and metrics must agree up to float rounding. The DDP runs go through the real CLI
(Lightning's launcher re-runs the command for rank 1); only rank 0 may write the manifest,
artifacts and emissions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from reliability_helpers import DEFAULT, SYNTHETIC, cli, copy_synthetic, tiny_sets
from safetensors.torch import load_file

from eosfm_cli.context import resolve
from eosfm_cli.models.checkpoints import load_checkpoint_file
from eosfm_cli.stages.export_ensemble import export_ensemble
from eosfm_cli.stages.fit_head import fit_head
from eosfm_cli.stages.train_specialist import train_specialist

pytestmark = pytest.mark.slow

DDP = ["trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]
SETTINGS = ["trainer.max_epochs=2", "cache.enabled=false", "ensemble.max_encoders=1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [line.split(",")[0] for line in (SYNTHETIC / "scenes.csv").read_text().splitlines()]
    splits = ["train"] * 8 + ["val"] * 2 + ["test"] * 2
    return copy_synthetic(
        tmp_path_factory.mktemp("ddp") / "data", list(zip(rows[1:], splits, strict=True))
    )


def _sets(*extra: str) -> list[str]:
    return [*tiny_sets(), *SETTINGS, *extra]


def _cli_sets(*extra: str) -> list[str]:
    return [arg for s in _sets(*extra) for arg in ("--set", s)]


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, msg=key)


def _metrics_close(a: dict[str, dict[str, object]], b: dict[str, dict[str, object]]) -> None:
    for split in ("val", "test"):
        for key, value in a[split].items():
            if isinstance(value, float):
                assert value == pytest.approx(b[split][key], abs=1e-4), (split, key)


def _only_rank0_wrote(ws: Path, stage: str, runs_before: int = 0) -> None:
    """One manifest entry and one emissions record for the DDP run, no lock, no temp file."""
    runs = json.loads((ws / "manifest.json").read_text())["runs"]
    mine = [r["status"] for r in runs if r["stage"] == stage][runs_before:]
    assert mine == ["ok"]
    assert len(list((ws / "emissions").glob(f"{stage}-*.csv"))) == 1
    assert not (ws / ".lock").exists()
    assert not list(ws.rglob(".*.tmp*"))


def test_train_specialist_ddp_matches_one_process(tmp_path: Path, data: Path) -> None:
    single = tmp_path / "single"
    ctx = resolve(
        DEFAULT, _sets("trainer.batch_size=8"), dataset="synthetic_rgb", root=data, workspace=single
    )
    train_specialist(ctx)

    ddp = tmp_path / "ddp"
    out = cli(
        "train-specialist",
        "--dataset",
        "synthetic_rgb",
        "--root",
        str(data),
        "-p",
        str(DEFAULT),
        "-w",
        str(ddp),
        "--quiet",
        *_cli_sets("trainer.batch_size=4", "emissions.enabled=true", *DDP),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = (w / "specialists" / "synthetic_rgb" for w in (single, ddp))
    _close(
        load_checkpoint_file(a / "last.ckpt")["state_dict"],
        load_checkpoint_file(b / "last.ckpt")["state_dict"],
    )
    _metrics_close(
        json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    )
    _only_rank0_wrote(ddp, "train-specialist")


def test_fit_head_ddp_matches_one_process(tmp_path: Path, data: Path) -> None:
    """Features stream through the frozen specialists: DDP must not see them as unused."""
    ws = tmp_path / "ws"
    for name in ("synthetic_rgb", "synthetic_s1"):
        train_specialist(resolve(DEFAULT, _sets(), dataset=name, root=data, workspace=ws))
    export_ensemble(resolve(DEFAULT, _sets(), root=data, workspace=ws))
    fit_head(resolve(DEFAULT, _sets("trainer.batch_size=8"), root=data, workspace=ws), run="one")
    out = cli(
        "fit-head",
        "--run",
        "two",
        "--root",
        str(data),
        "-p",
        str(DEFAULT),
        "-w",
        str(ws),
        "--quiet",
        *_cli_sets("trainer.batch_size=4", "emissions.enabled=true", *DDP),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    one, two = ws / "heads" / "one", ws / "heads" / "two"
    _close(load_file(one / "head.safetensors"), load_file(two / "head.safetensors"))
    _metrics_close(
        json.loads((one / "metrics.json").read_text()),
        json.loads((two / "metrics.json").read_text()),
    )
    assert json.loads((two / "gates.json").read_text())["selected"]
    _only_rank0_wrote(ws, "fit-head", runs_before=1)
