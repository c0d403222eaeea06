"""The machine's fp32 matmul throughput: the yardstick for every other figure."""

from __future__ import annotations

from typing import Any

import torch
from common import matmul_gflops


def run() -> dict[str, dict[str, Any]]:
    """Measure fp32 matmul GFLOP/s."""
    gflops = matmul_gflops()
    return {
        "machine_matmul_gflops_fp32": {
            "value": round(gflops, 1),
            "unit": "GFLOP/s",
            "baseline": "none (absolute)",
            "target": "reference figure",
            "note": f"2048x2048 fp32 matmul, best of 5, {torch.get_num_threads()} threads",
        }
    }
