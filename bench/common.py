"""Helpers shared by the benchmarks."""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

#: ``EOSFM_BENCH_QUICK=1``: tiny sizes, one or two rounds, to check the plumbing only; the
#: figures it prints mean nothing and ``bench_fidelity`` does not record them.
QUICK = os.environ.get("EOSFM_BENCH_QUICK") == "1"


def best_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Best wall time of ``fn`` over ``repeat`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(
    fns: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times of each of ``fns``, one call each per round, in turn.

    Interleaving makes a load spike on the shared machine hit every side alike; the order
    rotates every round so that no side always runs first (or right after the heaviest).

    Args:
        fns: the sides, by name.
        rounds: timed rounds.
        warmup: untimed rounds first.

    Returns:
        Per side, its ``rounds`` wall times in round order.
    """
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            fns[name]()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    return times


def round_ratios(slow: Sequence[float], fast: Sequence[float]) -> tuple[float, float]:
    """Median and spread of the per-round speed-ups ``slow[i] / fast[i]``.

    Both sides get the same statistic: each round's ratio is of two times measured side by
    side, and the figure is the median of those ratios.

    Returns:
        ``(median, stdev)`` of the per-round ratios (stdev 0 for a single round).
    """
    ratios = [s / f for s, f in zip(slow, fast, strict=True)]
    spread = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
    return statistics.median(ratios), spread


def matmul_gflops(n: int = 2048, repeat: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Matmul GFLOP/s of this machine in ``dtype`` (median of ``repeat``, current threads)."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    t = median_time(lambda: a @ b, repeat=repeat, warmup=2)
    return 2 * n**3 / t / 1e9


#: The real EuroSAT100 patches (``../shared/data/eurosat100``), absent on a user's clone.
EUROSAT100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "eurosat100"

#: Base of the from-scratch EuroSAT100 recipe; its random-resized crops were chosen on val
#: first (the figures: docs/performance.md, "The from-scratch recipe").
BASE_RECIPE = [
    "trainer.max_epochs=60",
    "trainer.lr=0.001",
    "trainer.batch_size=16",
    "model.crop_scale=0.5",
    "emissions.enabled=false",
]


def with_changes(recipe: Sequence[str], changes: Sequence[str]) -> list[str]:
    """Apply ``key=value`` ``changes`` to ``recipe``; a changed key keeps its place."""
    merged = {key: value for key, _, value in (item.partition("=") for item in recipe)}
    merged.update((key, value) for key, _, value in (item.partition("=") for item in changes))
    return [f"{key}={value}" for key, value in merged.items()]


#: The recipe ``make bench`` reports: the base with the change that
#: ``bench/search_scratch_recipe.py`` chose on val over 10 seeds (the candidates and their val
#: scores: docs/performance.md, "The from-scratch recipe"). Precision and compile are left to
#: the profile's defaults (``auto``); :data:`SCRATCH_FP32_EAGER` pins them for comparison.
SCRATCH_RECIPE = with_changes(BASE_RECIPE, ["trainer.max_epochs=120"])

#: The same recipe in 32-bit without ``torch.compile``: what the defaults must not lose to.
SCRATCH_FP32_EAGER = with_changes(
    SCRATCH_RECIPE, ["trainer.precision=32-true", "trainer.compile=false"]
)

#: Training patches of EuroSAT100 (its fixed split: 60 train, 20 val, 20 test).
EUROSAT100_TRAIN = 60

#: Seeds of every from-scratch figure: one val or test patch is worth 0.05, so 10 seeds.
SCRATCH_SEEDS = range(10)

_SCRATCH: dict[tuple[str, tuple[int, ...], tuple[str, ...]], dict[str, Any]] = {}


def eurosat100_scratch(
    root: Path,
    seeds: Sequence[int],
    epochs: int | None = None,
    recipe: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train the from-scratch S2 specialist on EuroSAT100 once per seed (memoised per process).

    ``bench_accuracy`` and ``bench_fidelity`` report the same runs, so ``make bench`` trains them
    once.

    Args:
        root: the EuroSAT100 folder.
        seeds: one run per seed.
        epochs: overrides the recipe's epoch count (a quick plumbing check).
        recipe: profile overrides; :data:`SCRATCH_RECIPE` when omitted.

    Returns:
        ``{"test": [...], "val": [...], "seconds": float, "epochs": int, "settings": str}``,
        ``settings`` saying what the profile's precision and compile resolved to, and why.
    """
    sets = with_changes(
        SCRATCH_RECIPE if recipe is None else recipe,
        [f"trainer.max_epochs={epochs}"] if epochs else [],
    )
    key = (str(root), tuple(seeds), tuple(sets))
    if key in _SCRATCH:
        return _SCRATCH[key]
    from eosfm_cli.context import resolve
    from eosfm_cli.hardware import resolve_compile, resolve_precision
    from eosfm_cli.stages.train_specialist import train_specialist

    test, val = [], []
    settings = ""
    t0 = time.perf_counter()
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = resolve(
                Path(__file__).resolve().parents[1] / "profiles" / "default.yaml",
                [*sets, f"seed={seed}"],
                dataset="eurosat_s2",
                root=root,
                workspace=Path(tmp) / "ws",
            )
            tcfg = ctx.profile.trainer
            precision = resolve_precision(tcfg.precision, tcfg.accelerator)
            steps = math.ceil(EUROSAT100_TRAIN / tcfg.batch_size) * tcfg.max_epochs
            compiled = resolve_compile(tcfg.compile, steps, str(precision.value))
            settings = (
                f"precision {tcfg.precision} -> {precision.value} ({precision.why}), "
                f"compile {tcfg.compile} -> {compiled.value} ({compiled.why})"
            )
            res = train_specialist(ctx)
            assert res is not None
            test.append(round(float(res.metrics["test"]["accuracy"]), 3))
            val.append(round(float(res.metrics["val"]["accuracy"]), 3))
    out: dict[str, Any] = {
        "test": test,
        "val": val,
        "seconds": time.perf_counter() - t0,
        "epochs": int(dict(item.partition("=")[::2] for item in sets)["trainer.max_epochs"]),
        "settings": settings,
    }
    _SCRATCH[key] = out
    return out
