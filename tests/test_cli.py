import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eosfm_cli.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_help_lists_subcommands_without_torch() -> None:
    code = (
        "import sys, io, contextlib\n"
        "from eosfm_cli.cli import app\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        app(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')\n"
        "print(buf.getvalue())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={"COLUMNS": "120", "PATH": "/usr/bin"},
    ).stdout
    assert out.startswith("NOTORCH")
    for cmd in (
        "train-specialist",
        "export-ensemble",
        "fit-head",
        "select-encoders",
        "evaluate",
        "emissions-report",
    ):
        assert cmd in out


def test_python_m_and_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "eosfm_cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert out.strip().startswith("eosfm ")


def test_dry_run_prints_resolved_experiment_profile(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        ["train-specialist", "--dataset", "eurosat_s2", "--dry-run", "-w", str(tmp_path / "ws")],
    )
    assert res.exit_code == 0, res.output
    assert "name: eurosat_s2" in res.output
    assert "B8A" in res.output and "specialists/eurosat_s2/best.ckpt" in res.output
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "trainer.max_epochz=3"], "did you mean 'trainer.max_epochs'"),
        (["--set", "trainer.max_epochs=abc"], "trainer.max_epochs"),
        (["--set", "oops"], "KEY=VALUE"),
        (["--dataset", "eurosat_s3"], "did you mean 'eurosat_s2'"),
        (["--profile", "missing.yaml"], "profile file not found"),
    ],
)
def test_user_errors_exit_2_with_one_line(args: list[str], needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "eosfm_cli", "train-specialist", "--dry-run", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"COLUMNS": "400", "PATH": "/usr/bin"},
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert needle in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_verbose_shows_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eosfm_cli",
            "profile",
            "show",
            "--set",
            "trainer.max_epochz=3",
            "--verbose",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_profile_show_and_validate() -> None:
    res = runner.invoke(app, ["profile", "show", "--set", "trainer.max_epochs=9"])
    assert res.exit_code == 0 and "max_epochs: 9" in res.output
    res = runner.invoke(
        app, ["profile", "validate", str(REPO / "profiles" / "datasets" / "potsdam.yaml")]
    )
    assert res.exit_code == 0 and "ok" in res.output


def test_datasets_list_shows_every_experiment() -> None:
    res = runner.invoke(app, ["datasets", "list"], env={"COLUMNS": "250"})
    assert res.exit_code == 0
    from eosfm_cli.data.registry import EXPERIMENTS

    for name in EXPERIMENTS:
        assert name in res.output


def test_unbuilt_stage_says_so(tmp_path: Path) -> None:
    """A stage whose input was never built names the missing file and the stage to run."""
    res = runner.invoke(app, ["select-encoders", "--k", "1", "-w", str(tmp_path)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "eosfm.safetensors" in lines[0] and "eosfm export-ensemble" in lines[0]
    assert "Traceback" not in res.output


def test_manifest_unaffected_by_dry_run(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "manifest.json").write_text(json.dumps({"version": 1, "runs": []}))
    before = (ws / "manifest.json").read_bytes()
    res = runner.invoke(app, ["train-specialist", "--dry-run", "-w", str(ws)])
    assert res.exit_code == 0
    assert (ws / "manifest.json").read_bytes() == before


def test_library_arguments_are_printed_as_flags() -> None:
    from eosfm_cli.cli_common import as_flags

    text = "`bands=` applies to reference files only — drop `bands=`; see `encoders_folder=`"
    assert as_flags(text) == (
        "--bands applies to reference files only — drop --bands; see --encoders-folder"
    )
    assert as_flags("in_chans=3 stays") == "in_chans=3 stays"


def test_choices_are_listed_and_checked_by_typer() -> None:
    res = runner.invoke(app, ["datasets", "generate", "bogus"])
    assert res.exit_code == 2
    assert "synthetic" in res.output
    res = runner.invoke(app, ["export-ensemble", "--format", "onnx", "--dry-run"])
    assert res.exit_code == 2 and "safetensors" in res.output


def test_datasets_list_as_json_lists_every_experiment() -> None:
    from eosfm_cli.data.registry import EXPERIMENTS

    res = runner.invoke(app, ["datasets", "list", "--format", "json"])
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert [r["experiment"] for r in records] == list(EXPERIMENTS)
    eurosat = next(r for r in records if r["experiment"] == "eurosat_s2")
    assert eurosat["classes"][0] == "AnnualCrop" and len(eurosat["bands"]) == 13


def test_piped_tables_never_wrap_names() -> None:
    # CliRunner's stdout is not a terminal, as in `eosfm datasets list | grep eurosat_rgb`.
    from eosfm_cli.data.registry import EXPERIMENTS

    res = runner.invoke(app, ["datasets", "list"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    for name in EXPERIMENTS:
        assert any(f" {name} " in line for line in lines), name


def test_datasets_csv_outputs_parse() -> None:
    import csv
    import io

    res = runner.invoke(app, ["datasets", "bands", "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    b8a = next(r for r in rows if r["band"] == "B8A")
    assert "S2_ALL" in b8a["sets"].split(";") and float(b8a["centre_nm"]) > 860
    res = runner.invoke(app, ["datasets", "list", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {r["experiment"] for r in rows} >= {"eurosat_rgb", "oscd", "folder"}


def test_export_inspect_prints_json_and_csv(tmp_path: Path) -> None:
    import timm

    from eosfm_cli.models import SpecialistSpec
    from eosfm_cli.models.native_file import save_ensemble

    spec = SpecialistSpec(
        name="rgb", backbone="convnextv2_atto", bands=["B04", "B03", "B02"],
        mean=[0.0] * 3, std=[1.0] * 3,
    )  # fmt: skip
    model = timm.create_model("convnextv2_atto", features_only=True, in_chans=3)
    path = save_ensemble(tmp_path / "e.safetensors", [spec], [model.state_dict()])
    args = ["export-ensemble", "--inspect", str(path), "-w", str(tmp_path / "ws")]
    res = runner.invoke(app, [*args, "--format", "json", "--input-bands", "B02,B03,B04,B08"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["specialists"][0]["name"] == "rgb" and data["specialists"][0]["in_chans"] == 3
    assert [c["input_band"] for c in data["plans"][0]["channels"]] == ["B04", "B03", "B02"]
    res = runner.invoke(app, [*args, "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.splitlines()[0].startswith("index,name,backbone")
    res = runner.invoke(app, [*args, "--format", "pth"])
    assert res.exit_code == 2 and "--inspect prints a listing" in res.output
