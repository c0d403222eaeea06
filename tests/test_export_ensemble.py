"""export-ensemble: workspace specialists and checkpoint folders → one ensemble file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import timm
import torch

from eosfm_cli.context import resolve
from eosfm_cli.errors import ArtifactError, WorkspaceError
from eosfm_cli.models.checkpoints import find_run_checkpoints
from eosfm_cli.models.ensemble import EosFM
from eosfm_cli.models.ensemble_file import load_any
from eosfm_cli.models.native_file import read_metadata
from eosfm_cli.stages.export_ensemble import export_ensemble
from eosfm_cli.stages.train_specialist import train_specialist

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
SYNTHETIC = REPO / "tests" / "data" / "synthetic"
FAST = ["trainer.max_epochs=1", "trainer.batch_size=4", "emissions.enabled=false"]


@pytest.fixture(scope="module")
def trained_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("exp") / "ws"
    for name in ("synthetic_rgb", "synthetic_s1"):
        ctx = resolve(DEFAULT, FAST, dataset=name, root=SYNTHETIC, workspace=ws)
        train_specialist(ctx)
    return ws


def _ctx(ws: Path, *sets: str):
    return resolve(DEFAULT, [*FAST, *sets], workspace=ws)


def test_export_collects_workspace_specialists(trained_ws: Path) -> None:
    out = export_ensemble(_ctx(trained_ws))
    assert out == trained_ws / "ensembles" / "eosfm.safetensors"
    specs = read_metadata(out)
    assert [s.name for s in specs] == ["synthetic_rgb", "synthetic_s1"]
    assert specs[0].bands == ["R", "G", "B"] and specs[1].bands == ["VV", "VH"]
    assert specs[1].mean[0] < 0  # dB statistics kept
    runs = [r for r in _ctx(trained_ws).workspace.runs() if r["stage"] == "export-ensemble"]
    assert runs[-1]["status"] == "ok" and len(runs[-1]["inputs"]) == 2


def test_exported_features_match_the_trained_encoder(trained_ws: Path, tmp_path: Path) -> None:
    from eosfm_cli.models.checkpoints import encoder_weights, load_checkpoint_file
    from eosfm_cli.tasks import ClassificationTask

    out = export_ensemble(_ctx(trained_ws), only="synthetic_rgb", output=tmp_path / "a.safetensors")
    ckpt = load_checkpoint_file(trained_ws / "specialists" / "synthetic_rgb" / "best.ckpt")
    task = ClassificationTask(**ckpt["hyper_parameters"])
    task.load_state_dict(ckpt["state_dict"])
    task.eval()
    x = torch.rand(2, 3, 64, 64) * 255
    ens = EosFM.from_file(out, input_bands=["B", "G", "R"])  # BGR input order
    with torch.no_grad():
        ref = task.encode(x[:, [2, 1, 0]])
        got = ens(x)
    for a, b in zip(ref, got, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert (
        encoder_weights(ckpt["state_dict"], "x").keys()
        == dict(
            timm.create_model("convnextv2_atto", features_only=True, in_chans=3).state_dict()
        ).keys()
    )


def test_only_unknown_name(trained_ws: Path) -> None:
    with pytest.raises(WorkspaceError, match="nope"):
        export_ensemble(_ctx(trained_ws), only="nope")


def test_no_specialists(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no specialists to export"):
        export_ensemble(_ctx(tmp_path / "empty"))
    assert not list((tmp_path / "empty" / "ensembles").glob("*"))


def test_reference_format_round_trip(trained_ws: Path, tmp_path: Path) -> None:
    out = export_ensemble(_ctx(trained_ws), fmt="pth", output=tmp_path / "ref.pth")
    raw = torch.load(out, weights_only=True)
    assert (
        isinstance(raw, list) and raw[0][0] == 3 and raw[0][2]["backbone"] == "timm_convnextv2_atto"
    )
    entries, _ = load_any(out)
    assert [e[0].name for e in entries] == ["synthetic_rgb", "synthetic_s1"]


def test_encoders_folder_like_the_reference(trained_ws: Path, tmp_path: Path) -> None:
    src = trained_ws / "specialists" / "synthetic_rgb" / "best.ckpt"
    runs = tmp_path / "runs"
    # terratorch-style run: lightning_logs-like versions, keys under model.encoder.
    from eosfm_cli.models.checkpoints import load_checkpoint_file

    ckpt = load_checkpoint_file(src)
    tt = {
        "state_dict": {
            "model." + k: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")
        },
        "hyper_parameters": {"model_args": {"backbone": "convnextv2_atto", "backbone_in_chans": 3}},
    }
    for version in (0, 3):
        d = runs / "rgb_run" / f"version_{version}" / "checkpoints"
        d.mkdir(parents=True)
        torch.save(tt, d / "epoch=1-step=9.ckpt")
    # a run with no hyper-parameters at all: backbone from weight shapes
    bare = runs / "bare" / "version_0" / "checkpoints"
    bare.mkdir(parents=True)
    torch.save({"state_dict": tt["state_dict"]}, bare / "last.ckpt")
    found = find_run_checkpoints(runs)
    assert len(found) == 2 and any("version_3" in str(p) for p in found)
    out = export_ensemble(
        _ctx(trained_ws),
        encoders_folder=runs,
        output=tmp_path / "folder.safetensors",
        bands=["rgb_run=B04,B03,B02", "bare=R,G,B"],
    )
    specs = read_metadata(out)
    assert {s.name for s in specs} == {"rgb_run", "bare"}
    bare_spec = next(s for s in specs if s.name == "bare")
    assert bare_spec.backbone == "convnextv2_atto" and bare_spec.bands == ["R", "G", "B"]
    assert any("detected" in a for a in bare_spec.assumed)


def test_mismatched_in_chans_is_refused(tmp_path: Path, trained_ws: Path) -> None:
    from eosfm_cli.models.checkpoints import load_checkpoint_file

    ckpt = load_checkpoint_file(trained_ws / "specialists" / "synthetic_rgb" / "best.ckpt")
    d = tmp_path / "runs" / "bad"
    d.mkdir(parents=True)
    torch.save(
        {
            "state_dict": ckpt["state_dict"],
            "hyper_parameters": {
                "model_args": {"backbone": "convnextv2_atto", "backbone_in_chans": 13}
            },
        },
        d / "x.ckpt",
    )
    with pytest.raises(ArtifactError, match="13 input channels"):
        export_ensemble(
            _ctx(trained_ws), encoders_folder=tmp_path / "runs", output=tmp_path / "o.safetensors"
        )
    assert not (tmp_path / "o.safetensors").exists()


def test_inspect_prints_plans(trained_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = export_ensemble(_ctx(trained_ws))
    assert out is not None
    export_ensemble(_ctx(trained_ws), inspect=out, input_bands="B02,B03,B04")
    text = capsys.readouterr().out
    assert "R ← input[2] B04" in text and "inactive" in text


def test_cli_export_and_inspect(trained_ws: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eosfm_cli.cli import app

    ws = tmp_path / "ws"
    shutil.copytree(trained_ws / "specialists", ws / "specialists")
    res = CliRunner().invoke(
        app, ["export-ensemble", "-w", str(ws), "--set", "emissions.enabled=false"]
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        app,
        [
            "export-ensemble",
            "--inspect",
            str(ws / "ensembles" / "eosfm.safetensors"),
            "--input-bands",
            "VV,VH",
        ],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0 and "synthetic_s1" in res.output
