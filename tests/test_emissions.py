"""Energy tracking (eosfm_cli.emissions), the rank rule, and the emissions-report stage."""

from __future__ import annotations

import csv
import io
import itertools
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from eosfm_cli.context import StageContext
from eosfm_cli.distributed import is_rank_zero
from eosfm_cli.emissions.record import EmissionsRecord
from eosfm_cli.emissions.report import PAPER_EMISSIONS_KG, PAPER_ENERGY_KWH
from eosfm_cli.emissions.tracker import track_emissions
from eosfm_cli.errors import EosfmError, WorkspaceError
from eosfm_cli.io import atomic_write_json
from eosfm_cli.profile_schema import EmissionsConfig, Profile
from eosfm_cli.stages.emissions_report import emissions_report
from eosfm_cli.workspace import Workspace

RANK_VARS = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK", "GROUP_RANK")


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test as a plain (rank 0) process, whatever launched pytest."""
    for name in RANK_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail any attempt to open a network connection; return the attempts."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def _busy(seconds: float) -> None:
    import torch

    a = torch.randn(256, 256)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = torch.tanh(a @ a)


def _emission_csvs(ws: Workspace) -> list[Path]:
    return sorted((ws.root / "emissions").glob("*.csv"))


# Tracking ----------------------------------------------------------------------------------
def test_tracked_stage_writes_csv_and_manifest(
    tmp_path: Path, no_network: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("test-stage", {}, emissions=EmissionsConfig()) as run:
        _busy(1.0)
    assert no_network == []

    files = _emission_csvs(ws)
    assert [f.name for f in files] == [f"test-stage-{run.run_id}.csv"]
    with open(files[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1  # exactly this run's row
    assert float(rows[0]["energy_consumed"]) > 0
    assert rows[0]["country_iso_code"] == "FRA"
    assert rows[0]["experiment_id"] == run.run_id

    entry = ws.runs("test-stage")[-1]
    assert entry["status"] == "ok"
    em = entry["emissions"]
    assert em["status"] == "measured"
    assert em["duration_s"] > 0.5
    assert em["energy_kwh"] > 0
    assert em["emissions_kg"] > 0
    assert em["energy_kwh"] == pytest.approx(float(rows[0]["energy_consumed"]))
    assert em["mode"] and em["mode"].startswith("cpu: ")
    assert em["tracking_mode"] == "machine"
    assert em["csv"] == f"emissions/{files[0].name}"
    # No temporary files left, and CodeCarbon printed nothing; one summary line at most.
    assert not [p for p in (ws.root / "emissions").iterdir() if p.name.startswith(".")]
    out, err = capsys.readouterr()
    assert "codecarbon" not in (out + err).lower()
    assert sum("emissions:" in line for line in out.splitlines()) <= 1


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("test-stage", {}, emissions=EmissionsConfig(enabled=False)):
        pass
    assert _emission_csvs(ws) == []
    em = ws.runs()[-1]["emissions"]
    assert em["status"] == "disabled"
    assert em["energy_kwh"] is None and em["emissions_kg"] is None and em["duration_s"] is None


def test_callers_without_emissions_keep_working(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("test-stage", {"seed": 1}) as run:
        run.outputs.append("x")
    entry = ws.runs()[-1]
    assert entry["status"] == "ok" and "emissions" not in entry
    assert _emission_csvs(ws) == []


def test_failing_body_still_records_emissions(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with (
        pytest.raises(RuntimeError, match="boom"),
        ws.stage_run("test-stage", {}, emissions=EmissionsConfig()),
    ):
        _busy(0.3)
        raise RuntimeError("boom")
    entry = ws.runs()[-1]
    assert entry["status"] == "failed"
    assert entry["emissions"]["status"] == "measured"
    assert entry["emissions"]["energy_kwh"] > 0
    assert len(_emission_csvs(ws)) == 1


def test_tracker_failing_to_start_does_not_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import codecarbon

    def broken_start(self: Any) -> None:
        raise RuntimeError("no power interface")

    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "start", broken_start)
    ws = Workspace(tmp_path / "ws")
    ran = False
    with ws.stage_run("test-stage", {}, emissions=EmissionsConfig()):
        ran = True
    assert ran
    entry = ws.runs()[-1]
    assert entry["status"] == "ok"
    assert entry["emissions"]["status"] == "failed"
    assert entry["emissions"]["energy_kwh"] is None
    assert "no power interface" in entry["emissions"]["note"]
    assert _emission_csvs(ws) == []
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "energy tracking failed" in warnings[0]


def test_tracker_failing_to_stop_does_not_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import codecarbon

    def broken_stop(self: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "stop", broken_stop)
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("test-stage", {}, emissions=EmissionsConfig()):
        pass
    em = ws.runs()[-1]["emissions"]
    assert em["status"] == "failed" and "disk gone" in em["note"]
    assert _emission_csvs(ws) == []
    assert "energy tracking failed" in capsys.readouterr().err


def test_silently_swallowed_start_failure_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CodeCarbon's start() swallows exceptions; a tracker that never started is a failure."""
    import codecarbon

    monkeypatch.setattr(codecarbon.OfflineEmissionsTracker, "start", lambda self: None)
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("test-stage", {}, emissions=EmissionsConfig()):
        pass
    assert ws.runs()[-1]["emissions"]["status"] == "failed"
    assert "energy tracking failed" in capsys.readouterr().err


def test_only_rank_zero_tracks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("test-stage", {}, emissions=EmissionsConfig()):
        pass
    # A non-zero rank leaves the workspace to rank 0: no record, no lock, no manifest entry.
    assert _emission_csvs(ws) == []
    assert not ws.manifest_path.exists()


def test_explicit_non_zero_rank_does_not_track(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ensure()
    with track_emissions(
        ws.emissions_dir, "s", "s-1", EmissionsConfig(), is_rank_zero=False
    ) as record:
        pass
    assert isinstance(record, EmissionsRecord)
    assert record.status == "not-rank-zero" and record.energy_kwh is None
    assert _emission_csvs(ws) == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, True),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3"}, False),
        ({"SLURM_PROCID": "2"}, False),
        ({"SLURM_PROCID": "0"}, True),
        ({"LOCAL_RANK": "1"}, False),
        ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
        ({"RANK": "0", "SLURM_PROCID": "5"}, True),  # torchrun's RANK wins over srun's task
        # Lightning's process for device 1 inside a SLURM allocation inherits srun's task 0.
        ({"SLURM_PROCID": "0", "LOCAL_RANK": "1"}, False),
        ({"SLURM_PROCID": "0", "LOCAL_RANK": "0"}, True),
        ({"GROUP_RANK": "1"}, False),  # torchrun's node rank
        ({"LOCAL_RANK": "0", "GROUP_RANK": "0", "NODE_RANK": "0"}, True),
        ({"RANK": "1", "LOCAL_RANK": "0"}, False),
        ({"RANK": " "}, True),  # an empty RANK is not set
    ],
)
def test_env_rank(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool) -> None:
    """One rank rule (:func:`eosfm_cli.distributed.is_rank_zero`) for lock, manifest, tracker."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_rank_zero() is expected


def test_workspace_import_does_not_load_codecarbon() -> None:
    code = "import sys, eosfm_cli.workspace; assert 'codecarbon' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# Report ------------------------------------------------------------------------------------
try:
    from dataclasses import fields as _fields

    from codecarbon.output_methods.emissions_data import EmissionsData

    CC_COLUMNS = [f.name for f in _fields(EmissionsData)]
except ImportError:  # pragma: no cover - codecarbon is a dependency
    CC_COLUMNS = ["timestamp", "project_name", "run_id", "experiment_id", "duration"]
    CC_COLUMNS += ["emissions", "energy_consumed", "country_iso_code"]


def _cc_row(run_id: str, duration: float, energy: float, kg: float, when: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CC_COLUMNS, "")
    row.update(
        timestamp=when,
        project_name="eosfm",
        run_id="0ce17d31-5ccc-4402-a646-49a02be613a0",
        experiment_id=run_id,
        duration=duration,
        emissions=kg,
        energy_consumed=energy,
        cpu_energy=energy / 2,
        gpu_energy=energy / 2,
        ram_energy=0.0,
        country_name="France",
        country_iso_code="FRA",
        tracking_mode="machine",
    )
    return row


def _write_cc_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


# (stage, run id, specialist, dataset, duration s, kWh, kg, end time)
RUNS = [
    ("train-specialist", "train-specialist-20261125-121500-ab12cd", "eurosat_s2", "eurosat_s2",
     3600.0, 1.25, 0.07, "2026-11-25T13:15:00"),
    ("train-specialist", "train-specialist-20261125-141500-0f0f0f", "ben_s1", "ben_s1",
     1800.0, 0.75, 0.04, "2026-11-25T14:45:00"),
    ("export-ensemble", "export-ensemble-20261125-150000-123abc", None, None,
     12.0, 0.001, 0.00005, "2026-11-25T15:00:12"),
    ("fit-head", "fit-head-20261125-151000-dddddd", None, "eurosat_rgb",
     600.0, 0.2, 0.011, "2026-11-25T15:20:00"),
]  # fmt: skip


def _make_workspace(root: Path, runs: list[tuple[Any, ...]] = RUNS) -> Workspace:
    ws = Workspace(root)
    ws.ensure()
    entries = []
    for stage, run_id, specialist, dataset, duration, energy, kg, when in runs:
        entry: dict[str, Any] = {"run_id": run_id, "stage": stage, "status": "ok"}
        if specialist:
            entry["specialist"] = specialist
        if dataset:
            entry["dataset"] = dataset
        entry["emissions"] = {"status": "measured", "mode": "cpu: RAPL; gpu: pynvml; ram: x"}
        entries.append(entry)
        _write_cc_csv(
            ws.root / "emissions" / f"{stage}-{run_id}.csv",
            [_cc_row(run_id, duration, energy, kg, when)],
        )
    atomic_write_json(ws.manifest_path, {"version": 1, "runs": entries})
    return ws


def _ctx(ws: Workspace) -> StageContext:
    return StageContext(profile=Profile(), workspace=ws)


def test_report_totals_equal_sum_of_rows(tmp_path: Path) -> None:
    ws = _make_workspace(tmp_path / "ws")
    report = emissions_report(_ctx(ws))

    t = report["totals"]
    assert t["runs"] == len(RUNS)
    assert t["energy_kwh"] == pytest.approx(sum(r[5] for r in RUNS))
    assert t["emissions_kg"] == pytest.approx(sum(r[6] for r in RUNS))
    assert t["duration_s"] == pytest.approx(sum(r[4] for r in RUNS))

    by_stage = report["by_stage"]
    assert set(by_stage) == {"train-specialist", "export-ensemble", "fit-head"}
    assert by_stage["train-specialist"]["runs"] == 2
    assert by_stage["train-specialist"]["energy_kwh"] == pytest.approx(2.0)
    assert by_stage["train-specialist"]["emissions_kg"] == pytest.approx(0.11)
    assert by_stage["fit-head"]["energy_kwh"] == pytest.approx(0.2)
    assert report["by_specialist"]["eurosat_s2"]["energy_kwh"] == pytest.approx(1.25)
    assert report["by_specialist"]["(none)"]["runs"] == 2
    assert report["by_dataset"]["eurosat_rgb"]["emissions_kg"] == pytest.approx(0.011)
    # Run ids with hyphens are joined to the right manifest entries.
    assert {r["run_id"] for r in report["runs"]} == {r[1] for r in RUNS}
    assert report["skipped"] == [] and report["untracked_runs"] == []

    # Paper comparison, in the JSON and the Markdown.
    energy = sum(r[5] for r in RUNS)
    assert report["paper"]["energy_kwh"] == PAPER_ENERGY_KWH == 76.05
    assert report["paper"]["emissions_kg"] == PAPER_EMISSIONS_KG == 4.15
    assert report["paper"]["energy_pct"] == pytest.approx(100 * energy / 76.05)
    md = (ws.root / "reports" / "emissions.md").read_text()
    assert "76.05 kWh" in md and "4.15 kg CO2eq" in md
    assert f"{100 * energy / 76.05:.3g}% of the paper's 76.05 kWh" in md
    assert "this workspace:" in md

    on_disk = json.loads((ws.root / "reports" / "emissions.json").read_text())
    assert on_disk["totals"]["energy_kwh"] == pytest.approx(energy)
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in (ws.root / "reports").iterdir()) == [
        "emissions.json",
        "emissions.md",
        "emissions.png",
    ]


def test_report_png_is_a_valid_image(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    ws = _make_workspace(tmp_path / "ws")
    emissions_report(_ctx(ws))
    png = ws.root / "reports" / "emissions.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_corrupt_csvs_are_reported_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _make_workspace(tmp_path / "ws")
    em = ws.root / "emissions"
    good_header = ",".join(CC_COLUMNS)
    good = _cc_row("x", 10.0, 0.5, 0.03, "2026-11-25T16:00:00")
    good_line = ",".join(str(good[c]) for c in CC_COLUMNS)
    bad_energy = dict(good, energy_consumed="lots")
    bad_energy_line = ",".join(str(bad_energy[c]) for c in CC_COLUMNS)
    # A garbage row between two good ones, non-numeric energy, and a file cut mid-row.
    (em / "fit-head-garbage.csv").write_text(
        f"{good_header}\n{good_line}\n%%% not a row %%%\n{bad_energy_line}\n"
    )
    (em / "fit-head-truncated.csv").write_text(f"{good_header}\n{good_line[: len(good_line) // 2]}")
    (em / "fit-head-empty.csv").write_text("")
    (em / "notes.csv").write_text("a,b\n1,2\n")
    (em / "binary.csv").write_bytes(b"\xff\xfe\x00garbage\x81")

    report = emissions_report(_ctx(ws))

    # Only the one good row of the garbage file is added to the four good runs.
    assert report["totals"]["runs"] == len(RUNS) + 1
    assert report["totals"]["energy_kwh"] == pytest.approx(sum(r[5] for r in RUNS) + 0.5)
    reasons = {(s["file"], s["line"]): s["reason"] for s in report["skipped"]}
    assert "garbage row" in reasons[("emissions/fit-head-garbage.csv", 3)]
    assert "non-numeric energy_consumed" in reasons[("emissions/fit-head-garbage.csv", 4)]
    assert ("emissions/fit-head-truncated.csv", 2) in reasons
    assert "empty file" in reasons[("emissions/fit-head-empty.csv", None)]
    assert "missing column" in reasons[("emissions/notes.csv", None)]
    assert ("emissions/binary.csv", None) in reasons
    md = (ws.root / "reports" / "emissions.md").read_text()
    assert "## Skipped rows" in md and "fit-head-truncated.csv" in md
    err = capsys.readouterr().err
    assert "skipped" in err and "not counted" in err


def test_format_json_and_csv_go_to_stdout_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = _make_workspace(tmp_path / "ws")
    emissions_report(_ctx(ws), fmt="json")
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["runs"] == len(RUNS)

    emissions_report(_ctx(ws), fmt="csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(RUNS)
    assert sum(float(r["energy_kwh"]) for r in rows) == pytest.approx(sum(r[5] for r in RUNS))
    assert {r["stage"] for r in rows} == {"train-specialist", "export-ensemble", "fit-head"}

    emissions_report(_ctx(ws), fmt="md")
    assert capsys.readouterr().out.startswith("# Energy and carbon report")
    # Scripting formats write no files.
    assert list((ws.root / "reports").iterdir()) == []


def test_unknown_format_is_a_one_line_error(tmp_path: Path) -> None:
    ws = _make_workspace(tmp_path / "ws")
    with pytest.raises(EosfmError, match=r"unknown format 'xml'.*md, json, csv"):
        emissions_report(_ctx(ws), fmt="xml")


def test_empty_workspace_gives_an_empty_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ensure()
    report = emissions_report(_ctx(ws))
    assert report["totals"]["runs"] == 0 and report["totals"]["energy_kwh"] == 0
    assert any("no emission records" in n for n in report["notes"])
    assert "no emission records" in capsys.readouterr().out
    assert (ws.root / "reports" / "emissions.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_workspace_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no workspace here"):
        emissions_report(_ctx(Workspace(tmp_path / "nope")))


def test_several_workspaces_and_unmatched_files(tmp_path: Path) -> None:
    a = _make_workspace(tmp_path / "a", RUNS[:2])
    b = _make_workspace(tmp_path / "b", RUNS[2:])
    # A CSV whose run is not in the manifest: the stage comes from the file name.
    orphan = "select-encoders-20261126-090000-aaaaaa"
    _write_cc_csv(
        b.root / "emissions" / f"select-encoders-{orphan}.csv",
        [_cc_row("?", 5.0, 0.01, 0.001, "2026-11-26T09:00:05")],
    )
    # A manifest run without a CSV is listed, not counted.
    manifest = b.read_manifest()
    manifest["runs"].append(
        {
            "run_id": "predict-20261126-100000-bbbbbb",
            "stage": "predict",
            "status": "ok",
            "emissions": {"status": "disabled", "note": "emissions.enabled is false"},
        }
    )
    atomic_write_json(b.manifest_path, manifest)

    report = emissions_report(_ctx(a), workspaces=[a.root, b.root])
    assert report["totals"]["runs"] == len(RUNS) + 1
    assert report["by_stage"]["select-encoders"]["energy_kwh"] == pytest.approx(0.01)
    assert set(report["by_workspace"]) == {str(a.root), str(b.root)}
    assert report["by_workspace"][str(a.root)]["energy_kwh"] == pytest.approx(2.0)
    assert [u["run_id"] for u in report["untracked_runs"]] == ["predict-20261126-100000-bbbbbb"]
    assert report["paper"]["line"].startswith("these 2 workspaces:")
    assert (a.root / "reports" / "emissions.md").is_file()
    assert not (b.root / "reports" / "emissions.md").exists()


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = _make_workspace(tmp_path / "ws")
    ctx = _ctx(ws)
    ctx.dry_run = True
    assert emissions_report(ctx) == {}
    out = capsys.readouterr().out.replace("\n", "")
    assert "emissions.md" in out and "*.csv (4 file(s))" in out
    assert list((ws.root / "reports").iterdir()) == []


def test_report_reads_a_really_tracked_run(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("test-stage", {}, emissions=EmissionsConfig()):
        _busy(0.3)
    report = emissions_report(_ctx(ws))
    entry = ws.runs("test-stage")[-1]
    assert report["totals"]["runs"] == 1
    assert report["totals"]["energy_kwh"] == pytest.approx(entry["emissions"]["energy_kwh"])
    assert report["runs"][0]["mode"] == entry["emissions"]["mode"]
    assert report["skipped"] == []


def test_unknown_country_is_measured_with_a_note(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    with ws.stage_run("test-stage", {}, emissions=EmissionsConfig(country_iso_code="XYZ")):
        pass
    em = ws.runs()[-1]["emissions"]
    assert em["status"] == "measured" and em["country"] == "XYZ"
    assert "XYZ" in em["note"]  # CodeCarbon fell back to a world average: say so


def test_cli_emissions_report(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eosfm_cli.cli import app

    ws = _make_workspace(tmp_path / "ws")
    runner = CliRunner()
    res = runner.invoke(app, ["emissions-report", "-w", str(ws.root), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["totals"]["runs"] == len(RUNS)
    res = runner.invoke(app, ["emissions-report", "-w", str(ws.root), "--format", "xml"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["emissions-report", "-w", str(ws.root)])
    assert res.exit_code == 0, res.output
    assert "of the paper's 76.05 kWh" in res.output.replace("\n", " ")
    assert (ws.root / "reports" / "emissions.png").is_file()


@pytest.mark.parametrize(
    ("kwh", "unit"), [(2.5e-5, "mWh"), (3e-4, "mWh"), (0.004, "Wh"), (2.0, "kWh"), (5e3, "MWh")]
)
def test_emissions_figure_picks_a_readable_energy_unit(kwh: float, unit: str) -> None:
    from eosfm_cli.emissions.figure import draw_report

    stages = {
        name: {"energy_kwh": kwh * f, "emissions_kg": 0.0, "runs": 1}
        for name, f in (("train-specialist", 1.0), ("fit-head", 0.37), ("predict", 0.021))
    }
    report = {
        "by_stage": stages,
        "by_specialist": {"eurosat_s2": {"energy_kwh": kwh, "emissions_kg": 0.0, "runs": 1}},
        "runs": [{}],
        "cumulative": [],
        "totals": {"energy_kwh": kwh, "emissions_kg": 0.0, "runs": 3},
        "paper": {"energy_pct": 0.0},
    }
    fig = draw_report(report)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[:2]:
        assert ax.get_xlabel() == unit and f"({unit})" in ax.get_title()
        ticks = [t for t in ax.get_xticklabels() if t.get_text()]
        assert 2 <= len(ticks) <= 6
        boxes = sorted((t.get_window_extent(renderer) for t in ticks), key=lambda b: b.x0)
        assert all(a.x1 < b.x0 for a, b in itertools.pairwise(boxes)), [t.get_text() for t in ticks]
        # The labels are short numbers, not 0.000025-style strings.
        assert all(len(t.get_text()) <= 5 for t in ticks)
