"""export-model and predict --runtime: exported graphs match the PyTorch path.

A synthetic two-specialist ensemble of timm's ``test_convnext`` (random weights, one
specialist filling a band by substitution) and heads fitted on nothing (random weights, the
last layer scaled so the class map has no near-ties) are written as a real workspace's head
runs; the exports must give the PyTorch path's outputs within 1e-4 relative (fp32).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import timm
import torch
from rasterio.transform import Affine
from typer.testing import CliRunner

from eosfm_cli.cli import app
from eosfm_cli.context import StageContext, resolve
from eosfm_cli.errors import ArtifactError, ProfileError
from eosfm_cli.head_exports import cached_head_export, export_features
from eosfm_cli.inference import graph_export, runtimes
from eosfm_cli.inference.graph_export import read_graph_metadata
from eosfm_cli.inference.runtimes import load_graph, resolve_runtime
from eosfm_cli.io import sha256_file
from eosfm_cli.models.deployable import DeployableModel
from eosfm_cli.models.ensemble import EosFM
from eosfm_cli.models.generalist import Generalist, HeadConfig, build_generalist
from eosfm_cli.models.head_file import load_generalist, save_head_run
from eosfm_cli.models.native_file import save_ensemble
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.stages.export_model import export_model
from eosfm_cli.stages.predict import predict

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
BANDS = ["B02", "B03", "B04", "B08"]
CLASSES = ["water", "field", "forest"]
BACKBONE = "test_convnext"
TILE = 64


def _ctx(ws: Path) -> StageContext:
    return resolve(DEFAULT, ["emissions.enabled=false"], workspace=ws)


def _close(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any], rel: float = 1e-4) -> None:
    """``got`` equals ``want`` within ``rel`` of ``want``'s largest magnitude."""
    assert got.shape == want.shape
    scale = float(np.abs(want).max()) or 1.0
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= rel * scale, f"max error {err:.3g} > {rel} x {scale:.3g}"


def _spec(name: str, bands: list[str]) -> tuple[SpecialistSpec, dict[str, torch.Tensor]]:
    n = len(bands)
    spec = SpecialistSpec(
        name=name,
        backbone=BACKBONE,
        bands=bands,
        mean=[900.0 + 50 * i for i in range(n)],
        std=[400.0 + 20 * i for i in range(n)],
    )
    model = timm.create_model(BACKBONE, features_only=True, in_chans=n, pretrained=False)
    return spec, model.state_dict()


def _head(ws: Path, ensemble: Path, name: str, cfg: HeadConfig, seed: int) -> Generalist:
    torch.manual_seed(seed)
    model = build_generalist(ensemble, cfg).eval()
    with torch.no_grad():
        last = getattr(model.head, "out", None) or model.head.net[-1]  # type: ignore[union-attr]
        last.weight.mul_(40.0)
    folder = ws / "heads" / name
    folder.mkdir(parents=True)
    save_head_run(folder, model, ensemble, sha256_file(ensemble), {"dataset": "synthetic_seg"})
    return model


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a 2-specialist ensemble and seg (gated), cls and regression heads."""
    root = tmp_path_factory.mktemp("export") / "ws"
    torch.manual_seed(0)
    entries = [_spec("s2", BANDS), _spec("rgbn", ["B04", "B03", "B02", "B8A"])]
    ensemble = root / "ensembles" / "ensemble.safetensors"
    ensemble.parent.mkdir(parents=True)
    save_ensemble(ensemble, [s for s, _ in entries], [w for _, w in entries])
    seg = HeadConfig("segmentation", CLASSES, BANDS, decoder_channels=32, k=1)
    _head(root, ensemble, "seg", seg, 1)
    _head(root, ensemble, "cls", HeadConfig("classification", CLASSES, BANDS, head="mlp"), 2)
    _head(root, ensemble, "reg", HeadConfig("regression", [], BANDS, decoder_channels=16), 3)
    _ctx(root).workspace.path("heads")  # the workspace's layout
    return root


def _batch(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, len(BANDS), h, w, generator=gen) * 3000.0


def _torch_outputs(ws: Path, run: str, x: torch.Tensor) -> list[np.ndarray[Any, Any]]:
    if (ws, run) not in _MODELS:
        _MODELS[ws, run] = load_generalist(ws / "heads" / run)[0]
    model = _MODELS[ws, run]
    with torch.inference_mode():
        logits = model(x)
    if model.cfg.task == "regression":
        return [logits.numpy()]
    probs = torch.softmax(logits, 1)
    return [probs.numpy(), probs.argmax(1).numpy()]


@pytest.fixture(scope="module")
def exports(ws: Path) -> dict[str, Path]:
    """Every export the tests read, written once through the stage."""
    pytest.importorskip("onnxscript", reason="the onnx extra (onnx, onnxscript) is not installed")
    ctx = _ctx(ws)
    out: dict[str, Path] = {}
    for run, fmt in (("seg", "pt2"), ("cls", "onnx")):
        path = export_model(ctx, head=run, fmt=fmt, tile=TILE)
        assert path is not None
        out[f"{run}.{fmt}"] = path
    # The export predict --runtime makes and reuses, written by the same code as the stage's.
    out["seg.onnx"] = cached_head_export(ctx, ws / "heads" / "seg", None, TILE)
    return out


_MODELS: dict[tuple[Path, str], Generalist] = {}


@pytest.mark.parametrize("run", ["seg", pytest.param("reg", marks=pytest.mark.slow)])
def test_pt2_matches_pytorch_at_traced_and_other_sizes(
    ws: Path, exports: dict[str, Path], tmp_path: Path, run: str
) -> None:
    path = exports.get(f"{run}.pt2") or export_model(_ctx(ws), run, "pt2", tmp_path, tile=TILE)
    assert path is not None
    runner = load_graph(path, "torch")
    assert runner.metadata["dynamic_spatial"] is True
    for x in (_batch(2, TILE, TILE), _batch(3, 96, 128, seed=1)):
        got = runner(x.numpy())
        want = _torch_outputs(ws, run, x)
        assert len(got) == len(want)
        _close(got[0], want[0])
        if len(got) > 1:
            np.testing.assert_array_equal(got[1], want[1])


def test_onnx_dense_head_matches_pytorch_and_keeps_its_tile_fixed(
    ws: Path, exports: dict[str, Path]
) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")
    runner = load_graph(exports["seg.onnx"], "onnxruntime")
    meta = runner.metadata
    # UPerNet's pyramid pooling does not keep a dynamic size in ONNX (see graph_export).
    assert meta["dynamic_spatial"] is False
    assert meta["input_shape"] == ["batch", 4, TILE, TILE]
    x = _batch(3, TILE, TILE, seed=2)
    got, want = runner(x.numpy()), _torch_outputs(ws, "seg", x)
    _close(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_onnx_pooled_head_is_dynamic_and_matches_pytorch(
    ws: Path, exports: dict[str, Path]
) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")
    runner = load_graph(exports["cls.onnx"], "onnxruntime")
    assert runner.metadata["dynamic_spatial"] is True
    for x in (_batch(2, TILE, TILE), _batch(5, 96, 160, seed=3)):
        got, want = runner(x.numpy()), _torch_outputs(ws, "cls", x)
        _close(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_openvino_runs_the_onnx_export_like_pytorch(ws: Path, exports: dict[str, Path]) -> None:
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    runner = load_graph(exports["seg.onnx"], "openvino")
    x = _batch(2, TILE, TILE, seed=4)
    got, want = runner(x.numpy()), _torch_outputs(ws, "seg", x)
    _close(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_metadata_names_bands_classes_tile_and_source_hashes(
    ws: Path, exports: dict[str, Path]
) -> None:
    for key in ("seg.onnx", "seg.pt2"):
        meta = read_graph_metadata(exports[key])
        assert meta["input_bands"] == BANDS
        assert meta["classes"] == CLASSES
        assert meta["tile"] == TILE
        assert meta["task"] == "segmentation"
        assert meta["output_names"] == ["probabilities", "classes"]
        sources = meta["sources"]
        assert sources["ensemble"]["sha256"] == sha256_file(ws / "ensembles/ensemble.safetensors")
        assert sources["head.safetensors"]["sha256"] == sha256_file(
            ws / "heads/seg/head.safetensors"
        )
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
    props = {p.key: p.value for p in onnx.load(str(exports["seg.onnx"])).metadata_props}
    assert props["input_bands"] == ",".join(BANDS)
    assert props["classes"] == ",".join(CLASSES)
    assert props["tile"] == str(TILE)
    # One file: weights inside, nothing beside it.
    assert not list(exports["seg.onnx"].parent.glob("*.data"))


def test_features_only_export_matches_the_ensemble(ws: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript", reason="the onnx extra (onnx, onnxscript) is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra (onnxruntime) is not installed")
    ensemble = ws / "ensembles" / "ensemble.safetensors"
    path = tmp_path / "features.onnx"
    meta = export_features(ensemble, BANDS, "onnx", path, tile=TILE)
    assert meta["outputs"] == ["level0", "level1", "level2", "level3"]
    runner = load_graph(path, "onnxruntime")
    encoder = EosFM.from_file(ensemble, BANDS)
    x = _batch(2, 96, 64, seed=5)
    with torch.inference_mode():
        want = [f.numpy() for f in encoder(x)]
    got = runner(x.numpy())
    for level, (g, w) in enumerate(zip(got, want, strict=True)):
        _close(g, w)
        # embed's per-tile function over the same export gives the same level.
        np.testing.assert_array_equal(
            runtimes.features_graph_tile_fn(runner, level)(x), g.astype(np.float32)
        )


def _raster(path: Path, h: int, w: int) -> Path:
    data = _batch(1, h, w, seed=6)[0].numpy()
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": len(BANDS),
        "dtype": "float32",
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 500000, 0, -10, 5000000),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = tuple(BANDS)
    return path


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_predict_on_a_runtime_writes_pytorchs_class_map(
    ws: Path, tmp_path: Path, runtime: str
) -> None:
    pytest.importorskip("onnxscript", reason="the onnx extra (onnx, onnxscript) is not installed")
    pytest.importorskip(runtime, reason=f"the {runtimes.EXTRAS[runtime]} extra is not installed")
    ctx = _ctx(ws)
    scene = _raster(tmp_path / "scene.tif", 150, 170)
    ref = predict(ctx, scene, "seg", tmp_path / "torch.tif", tile=TILE, overlap=16)
    got = predict(
        ctx, scene, "seg", tmp_path / f"{runtime}.tif", tile=TILE, overlap=16, runtime=runtime
    )
    assert ref is not None and got is not None
    with rasterio.open(ref) as a, rasterio.open(got) as b:
        want, have = a.read(1), b.read(1)
    assert len(np.unique(want)) > 1
    np.testing.assert_array_equal(have, want)
    manifest = json.loads((ws / "manifest.json").read_text())
    last = [r for r in manifest["runs"] if r["stage"] == "predict"][-1]
    assert last["runtime"] == runtime
    # The export is cached by its sources' sha256 and tile, and reused.
    assert len(list((ws / "cache" / "exports").glob("seg-*.onnx"))) == 1


def test_a_missing_runtime_extra_is_one_line_naming_the_extra(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.pt2"
    path.write_bytes(b"")  # never read: the extra check comes first for an unknown file
    monkeypatch.setattr(runtimes, "runtime_installed", lambda r: r == "torch")
    monkeypatch.setattr(runtimes, "read_graph_metadata", lambda p: {"format": "onnx"})
    with pytest.raises(ArtifactError) as err:
        load_graph(path, "onnxruntime")
    assert "pip install 'eosfm[onnx]'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ArtifactError, match=r"eosfm\[openvino\]"):
        load_graph(path, "openvino")
    # auto falls back to torch when neither extra is installed, and on a GPU.
    assert resolve_runtime("auto", "cpu") == "torch"
    monkeypatch.setattr(runtimes, "runtime_installed", lambda r: True)
    assert resolve_runtime("auto", "cpu") == runtimes.CPU_PREFERENCE[0]
    assert resolve_runtime("auto", "cuda") == "torch"
    with pytest.raises(ProfileError, match="--runtime"):
        resolve_runtime("tensorrt")


def test_a_missing_exporter_extra_is_one_line(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import now raises ImportError
    with pytest.raises(ArtifactError) as err:
        graph_export._require_onnx_exporter()
    assert "pip install 'eosfm[onnx]'" in str(err.value)


def test_cli_refuses_a_detection_like_head_and_a_wrong_suffix(ws: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    args = ["export-model", "--head", "seg", "--format", "pt2", "--workspace", str(ws)]
    result = cli.invoke(app, [*args, "--output", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert "--output" in result.output and ".pt2" in result.output
    model, _ = load_generalist(ws / "heads" / "seg")
    model.cfg.task = "change_detection"
    with pytest.raises(ArtifactError, match="PyTorch only"):
        DeployableModel(model)


STANDALONE = """
import sys, numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
assert meta["input_bands"].split(",") == sys.argv[3].split(","), meta["input_bands"]
x = np.load(sys.argv[2])
probabilities, classes = session.run(None, {"x": x})
np.save(sys.argv[4], classes)
print("torch" in sys.modules)
"""


@pytest.mark.slow
def test_the_onnx_export_runs_with_only_onnxruntime_and_numpy(
    ws: Path, exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A fresh venv with onnxruntime and numpy only (no torch, no eosfm) maps a test tile."""
    env_dir = tmp_path_factory.mktemp("bare") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "onnxruntime", "numpy"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode:
        pytest.skip(f"pip cannot install onnxruntime and numpy here: {pip.stderr[-300:]}")
    work = env_dir.parent
    x = _batch(2, TILE, TILE, seed=7)
    np.save(work / "tile.npy", x.numpy())
    (work / "apply.py").write_text(STANDALONE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [
            str(python),
            str(work / "apply.py"),
            str(exports["seg.onnx"]),
            str(work / "tile.npy"),
            ",".join(BANDS),
            str(work / "classes.npy"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"  # torch was never imported
    no_torch = subprocess.run(
        [str(python), "-c", "import torch"], capture_output=True, env=env, cwd=work
    )
    assert no_torch.returncode != 0
    np.testing.assert_array_equal(np.load(work / "classes.npy"), _torch_outputs(ws, "seg", x)[1])
