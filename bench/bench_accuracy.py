"""Accuracy of the default settings: EuroSAT100 from scratch, defaults against fp32 eager.

- ``eurosat100_s2_specialist_accuracy``: test accuracy of an S2 specialist trained from scratch
  by ``train_specialist`` on the 60 real EuroSAT100 training patches, with the profile's
  default precision and compile (``auto``), mean of 10 seeds (skipped without ``../shared``).
- ``eurosat100_s2_specialist_accuracy_fp32_eager``: the same 10 seeds in ``32-true`` without
  ``torch.compile``; ``eurosat100_defaults_minus_fp32_eager_accuracy`` is the mean of the
  per-seed differences: the defaults must lose no accuracy.

Split from ``bench_train`` so that the speed figures (minutes) can be measured without these
twenty 120-epoch runs (``python bench/run.py bench_accuracy`` runs them alone).
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import EUROSAT100, QUICK, SCRATCH_RECIPE

MEASURES = [
    "eosfm_cli/tasks",
    "eosfm_cli/training",
    "eosfm_cli/models",
    "eosfm_cli/hardware.py",
    "eosfm_cli/data/eurosat.py",
    "eosfm_cli/stages/train_specialist.py",
    "profiles/default.yaml",
]


def _accuracy_figure(
    runs: dict[str, Any], target: str, met: bool | None, label: str
) -> dict[str, Any]:
    test = list(runs["test"])
    val = list(runs["val"])
    fig: dict[str, Any] = {
        "value": round(statistics.mean(test), 3),
        "std": round(statistics.pstdev(test), 3),
        "unit": "accuracy",
        "target": target,
        "baseline": "chance 0.10 (20 real test patches)",
        "note": f"{label}; convnextv2_atto from scratch, 60 train patches, mean of {len(test)} "
        f"seeds (test {test}, val {val}; val mean {statistics.mean(val):.3f}), "
        f"{runs['seconds']:.0f} s in all; {runs['settings']}; recipe from "
        f"bench/search_scratch_recipe.py's search on val (docs/performance.md): "
        f"{' '.join(x for x in SCRATCH_RECIPE if not x.startswith('emissions'))}",
    }
    if met is not None:
        fig["met"] = met
    return fig


def eurosat_accuracy() -> dict[str, dict[str, Any]]:
    """The from-scratch accuracy with the defaults and in fp32 eager, same seeds."""
    if not EUROSAT100.is_dir():
        print(f"   skipped: {EUROSAT100} not found")
        return {}
    from bench.common import SCRATCH_FP32_EAGER, SCRATCH_SEEDS, eurosat100_scratch

    seeds = range(1) if QUICK else SCRATCH_SEEDS
    epochs = 1 if QUICK else None
    auto = eurosat100_scratch(EUROSAT100, seeds, epochs)
    fp32 = eurosat100_scratch(EUROSAT100, seeds, epochs, recipe=SCRATCH_FP32_EAGER)
    auto_test = list(auto["test"])
    fp32_test = list(fp32["test"])
    diffs = [a - b for a, b in zip(auto_test, fp32_test, strict=True)]
    mean_diff = statistics.mean(diffs)
    # One test patch is worth 0.05: the defaults may not cost as much as one patch on average.
    tolerance = 0.05
    pinned = [x for x in SCRATCH_FP32_EAGER if x not in SCRATCH_RECIPE]
    return {
        "eurosat100_s2_specialist_accuracy": _accuracy_figure(
            auto, ">= 0.5", statistics.mean(auto_test) >= 0.5, "profile defaults"
        ),
        "eurosat100_s2_specialist_accuracy_fp32_eager": _accuracy_figure(
            fp32, "reported", None, " ".join(pinned)
        ),
        "eurosat100_defaults_minus_fp32_eager_accuracy": {
            "value": round(mean_diff, 3),
            "std": round(statistics.pstdev(diffs), 3),
            "unit": "accuracy",
            "target": f">= -{tolerance} (one test patch)",
            "baseline": f"fp32 eager, mean {statistics.mean(fp32_test):.3f}",
            "met": mean_diff >= -tolerance,
            "note": f"mean of per-seed differences (defaults - fp32 eager) over the same "
            f"{len(diffs)} seeds: {[round(d, 3) for d in diffs]}; defaults "
            f"{auto['seconds']:.0f} s, fp32 eager {fp32['seconds']:.0f} s in all; "
            f"{auto['settings']}",
        },
    }


def run() -> dict[str, dict[str, Any]]:
    return eurosat_accuracy()
