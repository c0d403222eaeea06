"""fit-head and selection figures (issue 6).

- ``fit_head_cached_vs_recompute``: seconds per fit-head epoch after the first, recomputing
  the frozen 6-specialist ensemble every epoch (the reference's way) over reading the feature
  cache; classification on 120 synthetic 13x64x64 scenes.
- ``pruned_k2_vs_full``: inference throughput of a pruned K=2 ensemble file over the full
  6-specialist one, same input.
- ``eurosat100_frozen_ensemble_accuracy``: test accuracy on the real EuroSAT100 split of a
  linear head over a frozen ensemble of the three synthetic-demo specialists (skipped without
  ``../shared``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import EUROSAT100

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "default.yaml"


def _six_specialists(path: Path) -> Path:
    import timm

    from eosfm_cli.bands import BAND_SETS
    from eosfm_cli.models.native_file import save_ensemble
    from eosfm_cli.models.spec import SpecialistSpec

    band_sets = [
        BAND_SETS["S2_ALL"],
        BAND_SETS["S2_ALL"],
        BAND_SETS["S2_RGB"],
        BAND_SETS["RGB"],
        BAND_SETS["S2_IRRG"],
        BAND_SETS["RGBIR"],
    ]
    specs, states = [], []
    for i, bands in enumerate(band_sets):
        torch.manual_seed(i)
        m = timm.create_model("convnextv2_atto", features_only=True, in_chans=len(bands))
        dn = bands[0] in ("R", "G", "B", "NIR")
        specs.append(
            SpecialistSpec(
                f"spec{i}",
                "convnextv2_atto",
                list(bands),
                [100.0 if dn else 1500.0] * len(bands),
                [50.0 if dn else 900.0] * len(bands),
            )
        )
        states.append(m.state_dict())
    save_ensemble(path, specs, states)
    return path


def cached_vs_recompute(tmp: Path) -> dict[str, dict[str, Any]]:
    from eosfm_cli.console import Verbosity
    from eosfm_cli.context import resolve
    from eosfm_cli.data.synthetic import generate
    from eosfm_cli.stages.fit_head import fit_head

    Verbosity.quiet = True
    data = generate(tmp / "syn", n=120, size=64, seed=0)
    ens = _six_specialists(tmp / "six.safetensors")
    sets = [
        "trainer.max_epochs=4",
        "trainer.batch_size=32",
        "emissions.enabled=false",
        "downstream.dataset=synthetic_s2",
        "downstream.bands=[S2_ALL]",
    ]
    out = {}
    for label, extra in (("cached", []), ("recompute", ["cache.enabled=false"])):
        ctx = resolve(PROFILE, [*sets, *extra], root=data, workspace=tmp / f"ws_{label}")
        res = fit_head(ctx, ensemble=ens, run=label)
        assert res is not None
        out[label] = statistics.median(res.epoch_seconds[1:])
    ratio = out["recompute"] / out["cached"]
    return {
        "fit_head_cached_vs_recompute": {
            "value": round(ratio, 1),
            "unit": "x",
            "target": ">= 20",
            "baseline": "recomputing the frozen ensemble every epoch "
            f"({out['recompute']:.2f} s/epoch)",
            "met": ratio >= 20,
            "note": f"cached {out['cached']:.3f} s/epoch; 6 convnextv2_atto specialists, 72 train "
            "scenes 13x64x64, linear head, median of epochs 2-4",
        }
    }


def pruned_vs_full(tmp: Path) -> dict[str, dict[str, Any]]:
    from eosfm_cli.bands import BAND_SETS
    from eosfm_cli.models.ensemble import EosFM
    from eosfm_cli.models.native_file import load_ensemble, save_ensemble

    full_path = tmp / "six.safetensors"
    if not full_path.is_file():
        _six_specialists(full_path)
    entries = load_ensemble(full_path)[:2]
    pruned_path = tmp / "k2.safetensors"
    save_ensemble(pruned_path, [e[0] for e in entries], [e[1] for e in entries])
    bands = list(BAND_SETS["S2_ALL"])
    full = EosFM.from_file(full_path, input_bands=bands)
    pruned = EosFM.from_file(pruned_path, input_bands=bands)
    x = torch.rand(32, 13, 64, 64) * 3000
    times = {"full": [], "pruned": []}
    with torch.inference_mode():
        for _ in range(2):
            full(x)
            pruned(x)
        for _ in range(5):  # interleaved, so noise hits both alike
            for label, model in (("full", full), ("pruned", pruned)):
                t0 = time.perf_counter()
                model(x)
                times[label].append(time.perf_counter() - t0)
    ratio = min(times["full"]) / min(times["pruned"])
    return {
        "pruned_k2_vs_full": {
            "value": round(ratio, 2),
            "unit": "x",
            "target": ">= 2.5",
            "baseline": f"full 6-specialist ensemble ({32 / min(times['full']):.0f} samples/s)",
            "met": ratio >= 2.5,
            "note": f"pruned K=2 file {32 / min(times['pruned']):.0f} samples/s; batch 32, "
            "13x64x64, fp32 eager, best of 5 interleaved",
        }
    }


def frozen_ensemble_accuracy(tmp: Path) -> dict[str, dict[str, Any]]:
    if not EUROSAT100.is_dir():
        print(f"   skipped eurosat100_frozen_ensemble_accuracy: {EUROSAT100} not found")
        return {}
    from eosfm_cli.context import resolve
    from eosfm_cli.data.synthetic import generate
    from eosfm_cli.stages.export_ensemble import export_ensemble
    from eosfm_cli.stages.fit_head import fit_head
    from eosfm_cli.stages.train_specialist import train_specialist

    data = tmp / "syn"
    if not (data / "synthetic.json").is_file():
        generate(data, n=120, size=64, seed=0)
    ws = tmp / "ws_demo"
    for name in ("synthetic_rgb", "synthetic_s2", "synthetic_s1"):
        ctx = resolve(
            PROFILE,
            ["trainer.max_epochs=4", "emissions.enabled=false"],
            dataset=name,
            root=data,
            workspace=ws,
        )
        train_specialist(ctx)
    export_ensemble(resolve(PROFILE, ["emissions.enabled=false"], workspace=ws))
    accs = []
    for seed in range(3):
        ctx = resolve(
            PROFILE,
            [
                "trainer.max_epochs=30",
                "trainer.lr=0.003",
                "trainer.batch_size=16",
                "emissions.enabled=false",
                "downstream.dataset=eurosat_s2",
                f"downstream.root={EUROSAT100}",
                "downstream.bands=[S2_ALL]",
                f"seed={seed}",
            ],
            workspace=ws,
        )
        res = fit_head(ctx, run=f"eurosat100-{seed}")
        assert res is not None
        accs.append(float(res.metrics["test"]["accuracy"]))
    mean = statistics.mean(accs)
    return {
        "eurosat100_frozen_ensemble_accuracy": {
            "value": round(mean, 3),
            "std": round(statistics.pstdev(accs), 3),
            "unit": "accuracy",
            "target": "reported",
            "baseline": "chance 0.10 (20 real test patches)",
            "note": "linear head on the frozen synthetic-demo ensemble (RGB, S2, S1 specialists, "
            "4 epochs each on synthetic data), 60 EuroSAT100 train patches, 3 head seeds",
        }
    }


def run() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out.update(cached_vs_recompute(tmp))
        out.update(pruned_vs_full(tmp))
        out.update(frozen_ensemble_accuracy(tmp))
    return out
