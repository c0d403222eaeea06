"""`eosfm benchmark`: label fractions, per-sample scores, bootstrap intervals, cache, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from typer.testing import CliRunner

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.benchmark_report import aggregate_fraction
from eosfm_cli.benchmark_runs import RunOutcome
from eosfm_cli.benchmark_stats import bootstrap, paired_difference, score, verdict
from eosfm_cli.benchmark_subsets import label_subset, strata
from eosfm_cli.cli import app
from eosfm_cli.context import resolve
from eosfm_cli.errors import ProfileError
from eosfm_cli.models.native_file import save_ensemble
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.stages.benchmark import benchmark

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
SYNTHETIC = REPO / "tests" / "data" / "synthetic"
FAST = ["trainer.max_epochs=1", "trainer.batch_size=4", "emissions.enabled=false"]


def _rows(correct: list[bool]) -> np.ndarray:
    """Classification rows (target, prediction) with the given hits."""
    return np.array([[1, 1] if c else [1, 0] for c in correct])


# --- statistics, by hand ------------------------------------------------------------------


def test_scores_by_hand() -> None:
    assert score("classification", _rows([True, False, True, True])) == 0.75
    # two samples' 2x2 confusions: class 0 IoU 3/(3+1) , class 1 IoU 2/(2+1+0)
    seg = np.array([[3, 1, 0, 0], [0, 0, 0, 2]])
    assert score("segmentation", seg) == pytest.approx((3 / 4 + 2 / 3) / 2)
    # change F1 of class 1: tp 2, fp 0, fn 1 -> 4 / 5
    change = np.array([[5, 0, 1, 2]])
    assert score("change_detection", change) == pytest.approx(0.8)
    # regression: squared errors 1 and 9 over 2 values -> sqrt(5)
    assert score("regression", np.array([[1.0, 1.0], [9.0, 1.0]])) == pytest.approx(5**0.5)
    # one label, scores ranked hit, miss, hit: AP = (1 + 2/3) / 2
    ml = np.array([[0.9, 1.0], [0.8, 0.0], [0.7, 1.0]])
    assert score("multilabel", ml) == pytest.approx((1 + 2 / 3) / 2)


def test_bootstrap_intervals_by_hand() -> None:
    # One seed, two samples, one right: a resample scores 0, 0.5 or 1 with odds 1/4, 1/2, 1/4,
    # so the 2.5th percentile is 0 and the 97.5th is 1; the observed mean is 0.5.
    (iv,) = bootstrap("classification", [[_rows([True, False])]], draws=4000)
    assert (iv.mean, iv.low, iv.high) == (0.5, 0.0, 1.0)
    # A model right everywhere against one wrong everywhere: every paired draw differs by 1.
    good = [_rows([True] * 5), _rows([True] * 5)]
    bad = [_rows([False] * 5), _rows([False] * 5)]
    diff = paired_difference("classification", good, bad, draws=500)
    assert (diff.mean, diff.low, diff.high) == (1.0, 1.0, 1.0)
    assert verdict(diff, True) == "better" and verdict(diff, False) == "worse"
    # The same model against itself: paired draws cancel exactly.
    same = paired_difference("classification", good, good, draws=500)
    assert (same.low, same.high) == (0.0, 0.0)
    assert verdict(same, True) == "not distinguishable at this sample size"
    # Two seeds of 0.2 and 0.8 accuracy (5 samples each): the mean over seeds is 0.5.
    two = [_rows([True] + [False] * 4), _rows([True] * 4 + [False])]
    (iv2,) = bootstrap("classification", [two], draws=2000)
    assert iv2.mean == pytest.approx(0.5) and iv2.low < 0.5 < iv2.high
    assert iv2.low >= 0.0 and iv2.high <= 1.0


def test_choices_are_made_on_val_never_on_test() -> None:
    def run(val: float, hits: list[bool]) -> RunOutcome:
        return RunOutcome(val, _rows(hits), 1.0)

    # rate 0.01 wins on val but loses on test; single:b wins on val, single:a on test
    runs = {
        "ensemble": {
            0.001: [run(0.2, [True] * 4), run(0.2, [True] * 4)],
            0.01: [run(0.9, [False] * 4), run(0.7, [True, False, False, False])],
        },
        "single:a": {0.001: [run(0.1, [True] * 4), run(0.1, [True] * 4)]},
        "single:b": {0.001: [run(0.5, [False] * 4), run(0.5, [False] * 4)]},
    }
    res = aggregate_fraction("classification", runs, draws=200)
    ens = res["models"]["ensemble"]
    assert ens["lr"] == 0.01 and ens["test"] == [0.0, 0.25]
    assert ens["val_by_lr"] == {"0.001": pytest.approx(0.2), "0.01": pytest.approx(0.8)}
    assert res["best_single"] == "single:b"
    diff = res["differences"]["ensemble - best single"]
    assert diff["against"] == "single:b" and diff["mean"] == pytest.approx(0.125)
    # A compared file (a distilled student, say) gets its own paired difference.
    runs["compare:student"] = {0.001: [run(0.3, [True] * 4), run(0.3, [False] * 4)]}
    res = aggregate_fraction("classification", runs, draws=200)
    diff = res["differences"]["ensemble - student"]
    assert diff["against"] == "compare:student" and diff["mean"] == pytest.approx(-0.375)


def test_label_subsets_are_stratified_seeded_and_checked() -> None:
    labels = [0] * 10 + [1] * 4 + [2] * 2
    sub = label_subset(labels, 0.5, seed=3)
    counts = np.bincount(np.asarray(labels)[sub])
    assert counts.tolist() == [5, 2, 1]
    assert sub == sorted(sub) and sub == label_subset(labels, 0.5, seed=3)
    assert sub != label_subset(labels, 0.5, seed=4)
    assert label_subset(labels, 1.0, seed=0) == list(range(16))
    with pytest.raises(ProfileError, match="leaves class 'c' with no training sample"):
        label_subset(labels, 0.2, seed=0, classes=["a", "b", "c"])
    # segmentation strata: the most frequent labelled class, the ignored value left out
    masks = [np.array([[1, 1], [0, 255]]), np.array([[255, 255], [255, 2]])]
    assert strata("segmentation", masks, 255) == [1, 2]
    # dense tasks: a stratum may go while its classes keep pixels in other samples
    dense = [0] * 10 + [1] * 2
    present = [{0, 1}] * 10 + [{1}] * 2
    sub = label_subset(dense, 0.1, seed=0, present=present)
    assert len(sub) == 1 and sub[0] < 10
    with pytest.raises(ProfileError, match="no labelled pixel"):
        label_subset(dense, 0.1, seed=0, classes=["a", "b", "c"], present=[*present[:-1], {2}])


# --- the stage on synthetic data ----------------------------------------------------------


def _weights(in_chans: int, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model("convnextv2_atto", features_only=True, in_chans=in_chans).state_dict()


@pytest.fixture(scope="module")
def ensemble_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ens") / "ensemble.safetensors"
    s2, rgb = list(BAND_SETS["S2_ALL"]), list(BAND_SETS["S2_RGB"])
    specs = [
        SpecialistSpec(
            name="s2", backbone="convnextv2_atto", bands=s2, mean=[1500.0] * 13, std=[1e3] * 13
        ),
        SpecialistSpec(
            name="rgb", backbone="convnextv2_atto", bands=rgb, mean=[1e3] * 3, std=[800.0] * 3
        ),
    ]
    save_ensemble(path, specs, [_weights(13, 0), _weights(3, 1)])
    return path


def _ctx(ws: Path):
    return resolve(DEFAULT, FAST, root=SYNTHETIC, workspace=ws)


def test_benchmark_two_tasks_two_fractions_two_seeds(
    tmp_path: Path, ensemble_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    kw = {
        "ensemble": ensemble_path,
        "fractions": (0.5, 1.0),
        "seeds": 2,
        "baselines": ("singles", "scratch"),
        "head_lrs": (1e-3,),
        "scratch_lrs": (1e-3,),
        "scratch_epochs": 1,
        "draws": 300,
        "name": "synth",
    }
    res = benchmark(_ctx(ws), ["synthetic_s2", "synthetic_seg"], **kw)
    assert res is not None
    # 2 tasks x 2 fractions x 2 seeds x (3 heads + scratch)
    assert res["trained"] == 2 * 2 * 2 * 4
    folder = ws / "benchmarks" / "synth"
    saved = json.loads((folder / "results.json").read_text())
    for task, kind in (("synthetic_s2", "accuracy"), ("synthetic_seg", "miou")):
        tres = saved["tasks"][task]
        assert tres["score"] == kind
        assert set(tres["fractions"]) == {"0.5", "1"}
        half = tres["fractions"]["0.5"]
        assert set(half["models"]) == {"ensemble", "single:s2", "single:rgb", "scratch"}
        assert half["train_samples"] < tres["fractions"]["1"]["train_samples"]
        for m in half["models"].values():
            iv = m["interval"]
            assert iv["low"] <= iv["mean"] <= iv["high"]
            assert iv["mean"] == pytest.approx(np.mean(m["test"]))
            assert m["lr"] == 1e-3 and len(m["val"]) == 2
        assert half["best_single"] in ("single:s2", "single:rgb")
        assert set(half["differences"]) == {"ensemble - best single", "ensemble - scratch"}
        d = half["differences"]["ensemble - scratch"]
        assert d["low"] <= d["mean"] <= d["high"]
        ens, scratch = half["models"]["ensemble"]["interval"], half["models"]["scratch"]["interval"]
        assert d["mean"] == pytest.approx(ens["mean"] - scratch["mean"])
        assert tres["verdict"].startswith(f"**{task}**")
        png = folder / tres["plot"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (folder / "report.md").read_text()
    assert "| **ensemble - scratch** |" in report and "## synthetic_seg (segmentation" in report
    assert not (folder / "tmp").exists()

    # A second call trains nothing: every run is read back from the cache.
    import eosfm_cli.stages.benchmark as stage

    def _no_training(*a: object, **k: object) -> None:
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(stage, "head_run", _no_training)
    monkeypatch.setattr(stage, "scratch_run", _no_training)
    again = benchmark(_ctx(ws), ["synthetic_s2", "synthetic_seg"], **kw)
    assert again is not None and again["trained"] == 0
    assert again["tasks"] == res["tasks"]


def test_selected_baseline_learns_gates(tmp_path: Path, ensemble_path: Path) -> None:
    res = benchmark(
        _ctx(tmp_path / "ws"),
        ["synthetic_s2"],
        ensemble=ensemble_path,
        fractions=(1.0,),
        seeds=1,
        baselines=("selected",),
        k=1,
        head_lrs=(1e-3,),
        draws=200,
    )
    assert res is not None
    assert set(res["tasks"]["synthetic_s2"]["fractions"]["1"]["models"]) == {
        "ensemble",
        "selected-k1",
    }


def test_cli_dry_run_and_one_line_errors(tmp_path: Path, ensemble_path: Path) -> None:
    common = [
        "--workspace",
        str(tmp_path / "ws"),
        "--ensemble",
        str(ensemble_path),
        "--set",
        "emissions.enabled=false",
    ]
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "benchmark",
            "--tasks",
            f"synthetic_s2={SYNTHETIC}",
            "--fractions",
            "0.5,1",
            "--seeds",
            "2",
            "--dry-run",
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    # 2 fractions x 2 seeds x 2 learning rates each
    assert "ensemble: 8 runs" in res.output and "scratch: 8 runs" in res.output
    assert "min here" in res.output
    assert not (tmp_path / "ws" / "benchmarks").exists()

    bad = runner.invoke(
        app,
        ["benchmark", "--tasks", f"synthetic_s2={SYNTHETIC}", "--fractions", "0.01", *common],
    )
    assert bad.exit_code == 2
    assert "leaves class" in bad.output and "Traceback" not in bad.output
    unknown = runner.invoke(
        app, ["benchmark", "--tasks", "synthetic_s2", "--baselines", "linear", *common]
    )
    assert unknown.exit_code == 2 and "unknown baseline 'linear'" in unknown.output
    words = runner.invoke(app, ["benchmark", "--tasks", "synthetic_s2", "--fractions", "half"])
    assert words.exit_code == 2 and "--fractions 'half'" in words.output
