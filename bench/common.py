"""Helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


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


def matmul_gflops(n: int = 2048, repeat: int = 5) -> float:
    """fp32 matmul GFLOP/s of this machine (best of ``repeat``)."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    t = best_time(lambda: a @ b, repeat=repeat, warmup=2)
    return 2 * n**3 / t / 1e9
