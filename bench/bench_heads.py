"""fit-head and selection figures (issue 6).

- ``fit_head_cached_end_to_end_vs_recompute``: wall time of a whole 20-epoch ``fit_head`` run
  (model build, feature-cache build, training, evaluation) that recomputes the frozen
  6-specialist ensemble every epoch (the reference's way) over one that reads the feature
  cache it builds first; classification on 120 synthetic 13x64x64 scenes.
- ``fit_head_cached_vs_recompute``: from the same runs, seconds per epoch after the first.
  Both: interleaved rounds (a fresh workspace each, so every cached run builds its cache),
  median of the per-round ratios; the profile's default precision and compile.
- ``pruned_k2_vs_full``: the real ``select-encoders --k 2`` stage on the 6-specialist bench
  ensemble, then inference throughput of the file it wrote over the full file, same input,
  fp32 eager, interleaved rounds, median of the per-round ratios.
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

from bench.common import EUROSAT100, QUICK, interleaved, round_ratios

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "default.yaml"
MEASURES = [
    "eosfm_cli/stages/fit_head.py",
    "eosfm_cli/stages/select_encoders.py",
    "eosfm_cli/head_training.py",
    "eosfm_cli/downstream.py",
    "eosfm_cli/features.py",
    "eosfm_cli/head_features.py",
    "eosfm_cli/models",
    "eosfm_cli/tasks",
    "eosfm_cli/hardware.py",
    "profiles/default.yaml",
]
EPOCHS = 2 if QUICK else 20
ROUNDS = 1 if QUICK else 3
GATE_EPOCHS = 1 if QUICK else 4
PRUNED_ROUNDS = 2 if QUICK else 7


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


HEAD_SETS = [
    "trainer.batch_size=32",
    "emissions.enabled=false",
    "downstream.dataset=synthetic_s2",
    "downstream.bands=[S2_ALL]",
]


def _settings(ctx: Any, samples: int) -> str:
    """What the frozen ensemble's ``auto`` precision and compile resolve to for a job."""
    from eosfm_cli.hardware import resolve_ensemble_compile, resolve_ensemble_precision

    e, accelerator = ctx.profile.ensemble, ctx.profile.trainer.accelerator
    precision = resolve_ensemble_precision(e.precision, accelerator)
    compiled = resolve_ensemble_compile(e.compile, samples)
    return (
        f"ensemble precision {e.precision} -> {precision.value} ({precision.why}), "
        f"compile {e.compile} -> {compiled.value} ({compiled.why})"
    )


def cached_vs_recompute(tmp: Path) -> dict[str, dict[str, Any]]:
    from eosfm_cli.console import Verbosity
    from eosfm_cli.context import resolve
    from eosfm_cli.data.synthetic import generate
    from eosfm_cli.stages.fit_head import fit_head

    Verbosity.quiet = True
    data = generate(tmp / "syn", n=120, size=64, seed=0)
    ens = _six_specialists(tmp / "six.safetensors")
    sets = [f"trainer.max_epochs={EPOCHS}", *HEAD_SETS]
    sides = {"cached": [], "recompute": ["cache.enabled=false"]}
    wall: dict[str, list[float]] = {label: [] for label in sides}
    epoch: dict[str, list[float]] = {label: [] for label in sides}
    settings: dict[str, str] = {}
    for r in range(ROUNDS):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for label in order:
            ctx = resolve(PROFILE, [*sets, *sides[label]], root=data, workspace=tmp / f"ws{r}")
            t0 = time.perf_counter()
            res = fit_head(ctx, ensemble=ens, run=label)
            wall[label].append(time.perf_counter() - t0)
            assert res is not None
            epoch[label].append(statistics.median(res.epoch_seconds[1:]))
            # fit-head encodes train, val and test once with the cache, every epoch without.
            samples = 120 if label == "cached" else 120 * EPOCHS
            settings[label] = _settings(ctx, samples)
    e2e, e2e_std = round_ratios(wall["recompute"], wall["cached"])
    per_epoch, per_epoch_std = round_ratios(epoch["recompute"], epoch["cached"])
    how = (
        f"6 convnextv2_atto specialists, 72 train scenes 13x64x64, linear head, {EPOCHS} "
        f"epochs, {ROUNDS} interleaved rounds, median of per-round ratios (std: their spread); "
        f"cached run: {settings['cached']}; recompute run: {settings['recompute']}"
    )
    return {
        "fit_head_cached_end_to_end_vs_recompute": {
            "value": round(e2e, 2),
            "std": round(e2e_std, 2),
            "unit": "x",
            "target": ">= 5",
            "baseline": "a whole fit-head run recomputing the frozen ensemble every epoch "
            f"(median {statistics.median(wall['recompute']):.1f} s)",
            "met": e2e >= 5,
            "note": f"whole cached run, feature-cache build included, median "
            f"{statistics.median(wall['cached']):.1f} s; {how}",
        },
        "fit_head_cached_vs_recompute": {
            "value": round(per_epoch, 1),
            "std": round(per_epoch_std, 1),
            "unit": "x",
            "target": ">= 20",
            "baseline": "recomputing the frozen ensemble every epoch "
            f"(median {statistics.median(epoch['recompute']):.2f} s/epoch)",
            "met": per_epoch >= 20,
            "note": f"cached median {statistics.median(epoch['cached']):.3f} s/epoch; median "
            f"epoch after the first of each run; {how}",
        },
    }


def pruned_vs_full(tmp: Path) -> dict[str, dict[str, Any]]:
    from eosfm_cli.bands import BAND_SETS
    from eosfm_cli.console import Verbosity
    from eosfm_cli.context import resolve
    from eosfm_cli.data.synthetic import generate
    from eosfm_cli.models.ensemble import EosFM
    from eosfm_cli.stages.select_encoders import select_encoders

    Verbosity.quiet = True
    data = tmp / "syn"
    if not (data / "synthetic.json").is_file():
        generate(data, n=120, size=64, seed=0)
    full_path = tmp / "six.safetensors"
    if not full_path.is_file():
        _six_specialists(full_path)
    ws = tmp / "ws_select"
    ctx = resolve(
        PROFILE, [f"trainer.max_epochs={GATE_EPOCHS}", *HEAD_SETS], root=data, workspace=ws
    )
    selection = select_encoders(ctx, k=2, ensemble=full_path)
    assert selection is not None
    pruned_path = ws / selection["pruned_ensemble"]
    bands = list(BAND_SETS["S2_ALL"])
    full = EosFM.from_file(full_path, input_bands=bands)
    pruned = EosFM.from_file(pruned_path, input_bands=bands)
    assert len(pruned.active_names) == 2, pruned.explain()
    x = torch.rand(32, 13, 64, 64) * 3000
    with torch.inference_mode():
        times = interleaved(
            {"full": lambda: full(x), "pruned": lambda: pruned(x)}, PRUNED_ROUNDS, 2
        )
    ratio, spread = round_ratios(times["full"], times["pruned"])
    return {
        "pruned_k2_vs_full": {
            "value": round(ratio, 2),
            "std": round(spread, 2),
            "unit": "x",
            "target": ">= 2.5",
            "baseline": "full 6-specialist ensemble "
            f"({32 / statistics.median(times['full']):.0f} samples/s)",
            "met": ratio >= 2.5,
            "note": f"the file select-encoders --k 2 wrote ({pruned_path.name}: "
            f"{', '.join(selection['selected'])}; gates fitted {GATE_EPOCHS} epochs on 72 "
            f"synthetic S2 scenes) {32 / statistics.median(times['pruned']):.0f} samples/s; "
            f"batch 32, 13x64x64, fp32 eager, {PRUNED_ROUNDS} interleaved rounds, median of "
            "per-round ratios",
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
