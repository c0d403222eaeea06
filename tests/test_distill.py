"""`eosfm distill`: a student learns the ensemble's features and is usable as an ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from training_helpers import DEFAULT, SYNTHETIC
from typer.testing import CliRunner

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.cli import app
from eosfm_cli.context import resolve
from eosfm_cli.models.ensemble import EosFM
from eosfm_cli.models.native_file import read_metadata, save_ensemble
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.stages.distill import distill
from eosfm_cli.stages.fit_head import fit_head

EPOCHS = 4


def _spec(name: str, bands: list[str]) -> SpecialistSpec:
    n = len(bands)
    return SpecialistSpec(
        name=name,
        backbone="convnextv2_atto",
        bands=bands,
        mean=[1500.0] * n,
        std=[800.0] * n,
        dataset=name,
        task="classification",
        classes=["a", "b"],
        versions={"timm": timm.__version__},
    )


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two specialists (13-band S2 and RGB) with seeded random weights."""
    specs = [_spec("s2", list(BAND_SETS["S2_ALL"])), _spec("rgb", ["B04", "B03", "B02"])]
    states = []
    for i, s in enumerate(specs):
        torch.manual_seed(i)
        net = timm.create_model(s.backbone, features_only=True, in_chans=s.in_chans)
        states.append({k: v.clone() for k, v in net.state_dict().items()})
    return save_ensemble(tmp_path_factory.mktemp("teacher") / "teacher.safetensors", specs, states)


def _ctx(ws: Path, *sets: str, dry_run: bool = False):  # type: ignore[no-untyped-def]
    base = [
        f"trainer.max_epochs={EPOCHS}",
        "trainer.batch_size=4",
        "trainer.lr=0.003",
        "emissions.enabled=false",
    ]
    return resolve(
        DEFAULT,
        [*base, *sets],
        dataset="synthetic_s2",
        root=SYNTHETIC,
        workspace=ws,
        dry_run=dry_run,
    )


@pytest.fixture(scope="module")
def distilled(teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    ws = tmp_path_factory.mktemp("distill") / "ws"
    res = distill(_ctx(ws), ensemble=teacher, name="student")
    assert res is not None
    return ws, res


def test_the_feature_loss_falls(distilled: tuple[Path, object]) -> None:
    _, res = distilled
    losses = res.epoch_losses  # type: ignore[attr-defined]
    assert len(losses) == EPOCHS
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(-1.0 <= c <= 1.0 for c in res.val_cosine)  # type: ignore[attr-defined]


def test_the_student_file_is_a_one_specialist_ensemble(
    distilled: tuple[Path, object], teacher: Path
) -> None:
    ws, res = distilled
    path = ws / "ensembles" / "student.safetensors"
    assert res.output == path  # type: ignore[attr-defined]
    (spec,) = read_metadata(path)
    assert spec.name == "student" and spec.bands == list(BAND_SETS["S2_ALL"])
    assert spec.task == "distillation" and spec.source == "distill"
    enc = EosFM.from_file(path, ["B02", "B03", "B04", "B08"]).eval()
    with torch.no_grad():
        feats = enc(torch.full((1, 4, 32, 32), 1500.0))
    assert [f.shape[1] for f in feats] == enc.out_channels
    record = json.loads((ws / "students" / "student" / "student.json").read_text())
    import hashlib

    assert record["teacher_sha256"] == hashlib.sha256(teacher.read_bytes()).hexdigest()
    assert record["teacher_specialists"] == ["s2", "rgb"]
    assert record["epoch_losses"] == res.epoch_losses  # type: ignore[attr-defined]
    manifest = json.loads((ws / "manifest.json").read_text())
    assert any(r.get("stage") == "distill" and r.get("status") == "ok" for r in manifest["runs"])


def test_a_head_fits_on_the_student(distilled: tuple[Path, object]) -> None:
    ws, res = distilled
    ctx = resolve(
        DEFAULT,
        [
            "trainer.max_epochs=2",
            "trainer.batch_size=4",
            "emissions.enabled=false",
            "downstream.dataset=synthetic_s2",
            f"downstream.root={SYNTHETIC}",
        ],
        workspace=ws,
    )
    head = fit_head(ctx, ensemble=res.output)  # type: ignore[attr-defined]
    assert head is not None
    assert 0.0 <= head.metrics["test"]["accuracy"] <= 1.0


def test_a_second_student_of_the_same_name_is_refused(
    distilled: tuple[Path, object], teacher: Path
) -> None:
    ws, _ = distilled
    res = CliRunner().invoke(
        app,
        [
            "distill",
            "--dataset",
            "synthetic_s2",
            "--root",
            str(SYNTHETIC),
            "--workspace",
            str(ws),
            "--ensemble",
            str(teacher),
            "--name",
            "student",
        ],
    )
    assert res.exit_code == 2, res.output
    assert "already exists" in res.output and "--overwrite" in res.output


def test_dry_run_and_missing_teacher(tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--dataset", "synthetic_s2", "--root", str(SYNTHETIC), "--workspace", str(tmp_path)]
    res = runner.invoke(app, ["distill", *common, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "students/eosfm-student/student.json" in res.output
    assert "ensembles/eosfm-student.safetensors" in res.output
    res = runner.invoke(app, ["distill", *common, "--ensemble", str(tmp_path / "nope.safetensors")])
    assert res.exit_code == 2, res.output
    assert "ensemble file not found" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "students").exists()


def _geotiffs(folder: Path, bands: list[str], n: int = 2, size: int = 80) -> Path:
    """``n`` GeoTIFFs whose band descriptions name ``bands``."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        data = rng.integers(500, 3000, (len(bands), size, size)).astype("uint16")
        with rasterio.open(
            folder / f"scene{i}.tif",
            "w",
            driver="GTiff",
            width=size,
            height=size,
            count=len(bands),
            dtype="uint16",
            crs="EPSG:32631",
            transform=from_origin(500000, 4500000, 10, 10),
        ) as dst:
            dst.write(data)
            dst.descriptions = tuple(bands)
    return folder


def test_cached_and_streamed_teacher_features_give_the_same_first_epoch(
    teacher: Path, tmp_path: Path
) -> None:
    one = "trainer.max_epochs=1"
    cached = distill(_ctx(tmp_path / "a", one), ensemble=teacher, name="cached")
    streamed = distill(
        _ctx(tmp_path / "b", one, "cache.enabled=false"), ensemble=teacher, name="streamed"
    )
    assert cached is not None and streamed is not None
    # The cache holds fp16 features; the loss moves by their rounding only.
    assert cached.epoch_losses[0] == pytest.approx(streamed.epoch_losses[0], rel=1e-3)
    assert cached.val_cosine == pytest.approx(streamed.val_cosine, abs=1e-3)
    entries = list((tmp_path / "a" / "cache" / "features").glob("*/meta.json"))
    assert len(entries) == 2  # train and val
    assert not (tmp_path / "b" / "cache" / "features").exists()
    again = distill(_ctx(tmp_path / "a", one), ensemble=teacher, name="cached", overwrite=True)
    assert again is not None
    assert again.epoch_losses == cached.epoch_losses  # the entries were reused, not rebuilt
    assert sorted((tmp_path / "a" / "cache" / "features").glob("*/meta.json")) == sorted(entries)


def test_two_sources_are_mixed_on_the_bands_they_share(teacher: Path, tmp_path: Path) -> None:
    folder = _geotiffs(tmp_path / "tifs", ["B08", "B04", "B03", "B02"])
    res = distill(
        _ctx(tmp_path / "ws", "trainer.max_epochs=1"),
        ensemble=teacher,
        name="mixed",
        data=["synthetic_s2", str(folder)],
    )
    assert res is not None
    (spec,) = read_metadata(res.output)
    assert spec.bands == ["B02", "B03", "B04", "B08"]  # the first source's order
    sources = res.record["data"]["sources"]
    assert [s["name"] for s in sources] == ["synthetic_s2", str(folder)]
    # 8 windows of 64 px in two 80 px scenes, one held out; plus the synthetic train split
    synthetic_train = res.record["data"]["train"] - 7
    assert synthetic_train > 0
    enc = EosFM.from_file(res.output, ["B02", "B03", "B04", "B08"]).eval()
    with torch.no_grad():
        assert len(enc(torch.full((1, 4, 32, 32), 1500.0))) == 4


def test_source_errors_are_one_line(teacher: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--workspace", str(tmp_path / "ws"), "--ensemble", str(teacher)]
    common += ["--root", str(SYNTHETIC)]
    sar = _geotiffs(tmp_path / "sar", ["VV", "VH"], n=1)
    res = runner.invoke(app, ["distill", *common, "--data", str(sar)])
    assert res.exit_code == 2, res.output
    assert "no overlap between the ensemble's bands and the data's bands" in res.output
    big = _geotiffs(tmp_path / "big", ["B02", "B03", "B04"], n=1)
    res = runner.invoke(app, ["distill", *common, "--data", str(big), "--data", "synthetic_s2"])
    assert res.exit_code == 2, res.output
    assert "smaller than the first source's 64 px" in res.output
    res = runner.invoke(app, ["distill", *common, "--data", "./missing/tifs"])
    assert res.exit_code == 2 and "folder of GeoTIFFs not found" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "ws" / "students").exists()


def test_teacher_channels_fold_the_target_scale_into_the_projections(teacher: Path) -> None:
    from eosfm_cli.models.specialist import build_specialist
    from eosfm_cli.tasks.distill import DistillTask

    bands = list(BAND_SETS["S2_ALL"])
    ens = EosFM.from_file(teacher, bands, freeze=True, fusion="concat")
    torch.manual_seed(0)
    task = DistillTask(ens, ens.out_channels, "convnextv2_atto", bands, [1500.0] * 13, [800.0] * 13)
    for level, c in enumerate(ens.out_channels):
        getattr(task, f"target_mean_{level}").copy_(torch.randn(c))
        getattr(task, f"target_std_{level}").copy_(torch.rand(c) + 0.5)
    spec = _spec("student", bands)
    spec.projections = list(ens.out_channels)
    encoder = build_specialist(spec, task.teacher_scale_state()).eval()
    assert encoder.feature_info.channels() == ens.out_channels
    task.eval()
    x = torch.rand(2, 13, 32, 32) * 3000
    with torch.no_grad():
        want = [
            f * getattr(task, f"target_std_{i}").view(1, -1, 1, 1)
            + getattr(task, f"target_mean_{i}").view(1, -1, 1, 1)
            for i, f in enumerate(task(x))
        ]
        got = encoder(task.norm(x))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def test_a_student_with_the_teachers_channels_is_an_ensemble_of_the_teachers_width(
    teacher: Path, tmp_path: Path
) -> None:
    res = distill(
        _ctx(tmp_path / "ws", "trainer.max_epochs=1"),
        ensemble=teacher,
        name="wide",
        channels="teacher",
    )
    assert res is not None
    bands = list(BAND_SETS["S2_ALL"])
    (spec,) = read_metadata(res.output)
    width = EosFM.from_file(teacher, bands, fusion="concat").out_channels
    assert spec.projections == width and res.record["channels"] == "teacher"
    enc = EosFM.from_file(res.output, ["B02", "B03", "B04", "B08"]).eval()
    assert enc.out_channels == width
    with torch.no_grad():
        feats = enc(torch.full((1, 4, 32, 32), 1500.0))
    assert [f.shape[1] for f in feats] == width
    # The record of a specialist without projections does not name them.
    assert "projections" not in _spec("plain", ["B04"]).to_dict()
    args = ["--root", str(SYNTHETIC), "--workspace", str(tmp_path / "w2"), "--channels", "x"]
    res2 = CliRunner().invoke(app, ["distill", *args])
    assert res2.exit_code == 2 and "unknown --channels 'x'" in res2.output
