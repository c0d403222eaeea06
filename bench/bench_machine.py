"""The machine's matmul throughput, fp32 and bf16: the yardstick for every other figure."""

from __future__ import annotations

from typing import Any

import torch

from bench.common import matmul_gflops

MEASURES: list[str] = []  # the machine and torch only


def run() -> dict[str, dict[str, Any]]:
    """Measure fp32 and bf16 matmul GFLOP/s."""
    from eosfm_cli.hardware import bf16_native, machine

    native, why = bf16_native("cpu")
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        gflops = matmul_gflops(dtype=dtype)
        note = f"2048x2048 {name} matmul, median of 5, {torch.get_num_threads()} threads"
        if name == "bf16":
            note += f"; bf16 {'native' if native else 'not native'} here ({why})"
        out[f"machine_matmul_gflops_{name}"] = {
            "value": round(gflops, 1),
            "unit": "GFLOP/s",
            "baseline": "none (absolute)",
            "target": "reference figure",
            "note": f"{note}; {machine().describe()}",
        }
    return out
