"""Seeded outputs do not change when code moves: a snapshot taken before a redesign.

The snapshot in ``tests/snapshots/behaviour.json`` records, for fixed seeds and settings:

- ``data``: for every experiment on its release-layout fixture, the size of each split and a
  sha256 of its first samples (image, masks, labels, boxes: every tensor's dtype, shape and
  bytes), so the splits and the seeded crops are pinned;
- ``ensemble``: the bytes of an ensemble file written from two seeded, randomly initialised
  specialists, and the sums of its features on a seeded input;
- ``pipeline``: a one-epoch specialist's metrics, the head fitted on its ensemble, and the
  class map ``predict`` writes with that head over a synthetic scene.

Data and the ensemble file are the same on every machine. Trained weights are not: float
reductions differ in their last bits between CPUs (AVX2, AVX-512). So the pipeline part is
compared exactly (sha256) on the machine that wrote the snapshot, and within a tolerance
elsewhere. Run ``python tests/test_behaviour_snapshot.py --write`` only when a change of
behaviour is intended, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
DATA = REPO / "tests" / "data"
SNAPSHOT = REPO / "tests" / "snapshots" / "behaviour.json"
#: Samples hashed per split (the first ones, in dataset order).
SAMPLES = 6
#: Settings pinned here so that changes of the profile defaults do not move the snapshot.
PINNED = [
    "emissions.enabled=false",
    "trainer.max_epochs=1",
    "trainer.batch_size=4",
    "trainer.precision=32-true",
    "trainer.compile=false",
    "trainer.channels_last=false",
    "ensemble.precision=fp32",
    "ensemble.compile=false",
    "trainer.num_workers=0",
    "model.augment=false",
]

#: Fixture roots of the experiments whose family folder is not the dataset name.
ROOTS = {
    "ben_rgb": "bigearthnet/v1",
    "ben_s1": "bigearthnet/v1",
    "ben_all": "bigearthnet/v1",
}


def machine_signature() -> str:
    """What decides the last bits of a float result: CPU model and flags, library versions."""
    import timm
    import torch

    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model.strip():
                model = line.split(":", 1)[1].strip()
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma")
                flags = ",".join(f for f in line.split(":", 1)[1].split() if f in wanted)
                break
    except OSError:
        pass
    return f"{model}|{flags}|torch {torch.__version__}|timm {timm.__version__}"


def _hash_value(h: Any, value: Any) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    elif isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for key in sorted(value):
            h.update(str(key).encode())
            _hash_value(h, value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            _hash_value(h, item)
    else:
        h.update(repr(value).encode())


def sample_hash(ds: Any, n: int = SAMPLES) -> str:
    """sha256 of the first ``n`` samples of a dataset."""
    h = hashlib.sha256()
    for i in range(min(n, len(ds))):
        _hash_value(h, ds[i])
    return h.hexdigest()


def data_snapshot() -> dict[str, Any]:
    """Every experiment's splits on its fixture: sizes and sample hashes."""
    from eosfm_cli.context import resolve
    from eosfm_cli.data.registry import EXPERIMENTS
    from eosfm_cli.data.splits import build_splits

    out: dict[str, Any] = {}
    for name, spec in sorted(EXPERIMENTS.items()):
        if spec.dataset == "folder":
            continue
        root = DATA / ROOTS.get(name, spec.dataset)
        ctx = resolve(DEFAULT, PINNED, dataset=name, root=root, workspace="/nonexistent-ws")
        _, splits, _ = build_splits(ctx.profile, ctx.source)
        out[name] = {s: {"n": len(ds), "sha256": sample_hash(ds)} for s, ds in splits.items()}
    return out


def ensemble_snapshot(tmp: Path) -> dict[str, Any]:
    """An ensemble file from two seeded random specialists: its bytes and its features."""
    import timm
    import torch

    from eosfm_cli.models import EosFM, SpecialistSpec
    from eosfm_cli.models.native_file import save_ensemble

    specs, states = [], []
    for i, (name, bands) in enumerate((("rgb", ["B04", "B03", "B02"]), ("s1", ["VV", "VH"]))):
        torch.manual_seed(i)
        model = timm.create_model(
            "convnextv2_atto", pretrained=False, features_only=True, in_chans=len(bands)
        )
        specs.append(
            SpecialistSpec(
                name=name,
                backbone="convnextv2_atto",
                bands=bands,
                mean=[100.0 * (k + 1) for k in range(len(bands))],
                std=[50.0 + k for k in range(len(bands))],
                dataset=f"snapshot_{name}",
                task="classification",
                classes=["a", "b"],
            )
        )
        states.append(model.state_dict())
    path = save_ensemble(tmp / "snapshot.safetensors", specs, states)
    encoder = EosFM.from_file(path, input_bands=["B02", "B03", "B04", "B08", "VV", "VH"])
    torch.manual_seed(7)
    x = torch.rand(2, 6, 64, 64) * 3000
    with torch.inference_mode():
        feats = encoder(x)
    return {
        "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "out_channels": list(encoder.out_channels),
        "feature_sums": [float(f.double().sum()) for f in feats],
        "feature_abs_sums": [float(f.double().abs().sum()) for f in feats],
    }


def pipeline_snapshot(tmp: Path) -> dict[str, Any]:
    """train-specialist, export-ensemble, fit-head and predict, one epoch each, seeded."""
    import rasterio

    from eosfm_cli.context import resolve
    from eosfm_cli.data.synthetic import generate, large_scene_path
    from eosfm_cli.stages.export_ensemble import export_ensemble
    from eosfm_cli.stages.fit_head import fit_head
    from eosfm_cli.stages.predict import predict
    from eosfm_cli.stages.train_specialist import train_specialist

    synthetic = DATA / "synthetic"
    ws = tmp / "ws"
    head = [
        f"downstream.root={synthetic}",
        "downstream.dataset=synthetic_seg",
        "downstream.bands=[B02, B03, B04, B08]",
        "model.decoder_channels=32",
    ]
    train_specialist(resolve(DEFAULT, PINNED, dataset="synthetic_s2", root=synthetic, workspace=ws))
    export_ensemble(resolve(DEFAULT, PINNED, workspace=ws))
    fit_head(resolve(DEFAULT, [*PINNED, *head], workspace=ws))
    scene_root = generate(tmp / "scene", n=1, size=8, seed=5, large=160)
    src = large_scene_path(scene_root)
    scene = tmp / "scene4.tif"
    with rasterio.open(src) as ds:
        names = [d for d in ds.descriptions]
        idx = [names.index(b) + 1 for b in ("B02", "B03", "B04", "B08")]
        profile = ds.profile.copy()
        profile.update(count=4)
        data = ds.read(idx)
    with rasterio.open(scene, "w", **profile) as dst:
        dst.write(data)
        for i, b in enumerate(("B02", "B03", "B04", "B08"), start=1):
            dst.set_band_description(i, b)
    out = tmp / "map.tif"
    predict(
        resolve(DEFAULT, [*PINNED, *head], workspace=ws),
        raster=scene,
        run="synthetic_seg",
        output=out,
        tile=64,
        overlap=16,
        batch_size=4,
    )
    with rasterio.open(out) as ds:
        classes = ds.read(1)
    specialist = json.loads((ws / "specialists" / "synthetic_s2" / "metrics.json").read_text())
    head_metrics = json.loads((ws / "heads" / "synthetic_seg" / "metrics.json").read_text())
    hist = np.bincount(classes.reshape(-1).astype(np.int64), minlength=8)
    return {
        "specialist_metrics": specialist,
        "head_metrics": head_metrics,
        "map_shape": list(classes.shape),
        "map_histogram": [int(v) for v in hist],
        "map_sha256": hashlib.sha256(np.ascontiguousarray(classes).tobytes()).hexdigest(),
    }


def take_snapshot(tmp: Path) -> dict[str, Any]:
    """The whole snapshot (about a minute on two cores)."""
    tmp.mkdir(parents=True, exist_ok=True)
    return {
        "machine": machine_signature(),
        "data": data_snapshot(),
        "ensemble": ensemble_snapshot(tmp),
        "pipeline": pipeline_snapshot(tmp),
    }


def _close(a: Any, b: Any, rel: float, path: str, problems: list[str]) -> None:
    """Compare nested numbers within ``rel`` (relative, with an absolute floor of ``rel``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            problems.append(f"{path}: keys {sorted(a)} != {sorted(b)}")
            return
        for k in a:
            _close(a[k], b[k], rel, f"{path}.{k}", problems)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append(f"{path}: length {len(a)} != {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, rel, f"{path}[{i}]", problems)
    elif isinstance(a, int | float) and isinstance(b, int | float):
        if not math.isclose(float(a), float(b), rel_tol=rel, abs_tol=rel):
            problems.append(f"{path}: {a} != {b}")
    elif a != b:
        problems.append(f"{path}: {a!r} != {b!r}")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    if not SNAPSHOT.is_file():
        pytest.fail(f"{SNAPSHOT} is missing: run python {Path(__file__).name} --write")
    recorded = json.loads(SNAPSHOT.read_text())
    return recorded, take_snapshot(tmp_path_factory.mktemp("snapshot"))


def test_splits_and_crops_are_unchanged(snapshots: tuple[dict[str, Any], dict[str, Any]]) -> None:
    recorded, now = snapshots
    assert sorted(now["data"]) == sorted(recorded["data"])
    changed = [k for k in recorded["data"] if recorded["data"][k] != now["data"][k]]
    assert not changed, f"splits or samples changed for {changed}"


def test_ensemble_file_bytes_and_features_are_unchanged(
    snapshots: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    recorded, now = snapshots
    assert now["ensemble"]["file_sha256"] == recorded["ensemble"]["file_sha256"]
    assert now["ensemble"]["out_channels"] == recorded["ensemble"]["out_channels"]
    problems: list[str] = []
    same_machine = now["machine"] == recorded["machine"]
    for key in ("feature_sums", "feature_abs_sums"):
        _close(now["ensemble"][key], recorded["ensemble"][key], 0 if same_machine else 1e-4,
               key, problems)  # fmt: skip
    assert not problems, problems


def test_training_head_and_predict_are_unchanged(
    snapshots: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    recorded, now = snapshots
    old, new = recorded["pipeline"], now["pipeline"]
    assert new["map_shape"] == old["map_shape"]
    if now["machine"] == recorded["machine"]:
        # The machine that wrote the snapshot: bit for bit.
        assert new == old
        return
    # Another CPU: one epoch of training amplifies last-bit differences a little. The
    # specialist's metrics count a handful of scenes (one flip moves them by 0.5), so only
    # their keys are compared; the head's count thousands of pixels.
    problems: list[str] = []
    assert new["specialist_metrics"].keys() == old["specialist_metrics"].keys()
    _close(new["head_metrics"], old["head_metrics"], 0.05, "head", problems)
    assert not problems, problems
    pixels = float(np.prod(old["map_shape"]))
    moved = sum(abs(a - b) for a, b in zip(new["map_histogram"], old["map_histogram"], strict=True))
    assert moved / pixels < 0.05, (new["map_histogram"], old["map_histogram"])


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python tests/test_behaviour_snapshot.py --write")
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        snap = take_snapshot(Path(folder))
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(json.dumps(snap, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")
