"""Runtimes for the frozen ensemble's features: which CPU path is fastest here.

The 6-specialist ensemble of ``bench_ensemble`` (random-weight ``convnextv2_atto``, mixed band
sets, raw 13x64x64 Sentinel-2 batches of 64) runs on seven paths, in interleaved rounds (order
rotating, the same statistic on every side):

- ``eager``: ``EosFM`` in fp32 under ``inference_mode`` (the library default);
- ``compiled_fp32`` / ``compiled_bf16``: ``EosFM(compile=True)``, and with ``precision="bf16"``;
- ``onnxruntime`` / ``openvino``: the ``--features-only`` ONNX export
  (:func:`eosfm_cli.head_exports.export_features`) on onnxruntime's CPU provider and on
  OpenVINO's CPU plugin (fp32 inference precision hint), through
  :class:`eosfm_cli.inference.runtimes.GraphRunner`, the code ``predict --runtime`` uses;
- ``int8``: that export quantized (:func:`eosfm_cli.inference.quantize.quantize_int8`, QDQ,
  calibrated on a seeded sample drawn apart from the timed batch) on onnxruntime.

Figures: each path's samples/s as a ratio to eager (``ensemble_features_<path>_vs_eager``,
median of per-round ratios); ``ensemble_features_int8_relative_error`` (the int8 features'
relative L2 error against fp32 on the timed batch: its accuracy loss on the encoder's output);
and ``ensemble_features_best_fraction_of_ceiling``: the fastest path's samples/s over the
samples/s this run's bf16 matmul rate allows for the ensemble's FLOPs
(:func:`bench.bench_ensemble.ceiling_samples_per_s`, FLOPs counted as ``bench_ensemble``
counts them). The ONNX paths' features must match eager to 1e-4 relative, or their figures are
not met. Threads: torch's (all cores unless ``EOSFM_BENCH_THREADS``), given to every runtime.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.bench_ensemble import (
    BACKBONE,
    BATCH,
    INPUT_BANDS,
    SIZE,
    SPECIALISTS,
    NaiveEnsemble,
    _batches,
    _flops_per_batch,
    _specialists,
    ceiling_samples_per_s,
)
from bench.common import QUICK, interleaved, matmul_gflops, round_ratios
from eosfm_cli.hardware import bf16_native, machine
from eosfm_cli.head_exports import export_features
from eosfm_cli.inference.quantize import quantize_int8, relative_error
from eosfm_cli.inference.runtimes import CPU_PREFERENCE, load_graph, runtime_installed
from eosfm_cli.models import EosFM
from eosfm_cli.models.native_file import save_ensemble

MEASURES = [
    "eosfm_cli/models",
    "eosfm_cli/head_exports.py",
    "eosfm_cli/inference/graph_export.py",
    "eosfm_cli/inference/runtimes.py",
    "eosfm_cli/inference/quantize.py",
    "eosfm_cli/hardware.py",
    "bench/bench_ensemble.py",
]
ROUNDS = 2 if QUICK else 10
CALIBRATION_BATCHES = 2 if QUICK else 8
CALIBRATION_BATCH = 8
PARITY = 1e-4
PATHS = ("compiled_fp32", "compiled_bf16", "onnxruntime", "openvino", "int8")


def _calibration() -> list[np.ndarray[Any, Any]]:
    """A seeded sample like the timed batches (raw S2-like values), drawn from another seed."""
    g = torch.Generator().manual_seed(4321)
    shape = (CALIBRATION_BATCH, len(INPUT_BANDS), SIZE, SIZE)
    return [
        (torch.randn(*shape, generator=g) * 700 + 1800).clamp_(0).numpy()
        for _ in range(CALIBRATION_BATCHES)
    ]


def _max_rel(got: list[np.ndarray[Any, Any]], want: list[np.ndarray[Any, Any]]) -> float:
    return max(
        float(np.abs(g.astype(np.float64) - w).max() / (np.abs(w).max() or 1.0))
        for g, w in zip(got, want, strict=True)
    )


def _openvino_profile(graph: Path, batch: np.ndarray[Any, Any], threads: int) -> str:
    """Where OpenVINO spends a batch, by layer type, under the f32 and the bf16 hint.

    One profiled batch per hint (``PERF_COUNT``) after two warm-up batches: the shares of the
    layer types that take most of the time, and that batch's samples/s.
    """
    import collections

    import openvino as ov

    core = ov.Core()
    parts = []
    for hint in ("f32", "bf16"):
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERF_COUNT": "YES"}
        config["INFERENCE_NUM_THREADS"] = threads
        request = core.compile_model(str(graph), "CPU", config).create_infer_request()
        for _ in range(2):
            request.infer({0: batch})
        t0 = time.perf_counter()
        request.infer({0: batch})
        seconds = time.perf_counter() - t0
        by_type: collections.Counter[str] = collections.Counter()
        for layer in request.profiling_info:
            by_type[layer.node_type] += layer.real_time.total_seconds()
        total = sum(by_type.values()) or 1.0
        top = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in by_type.most_common(5))
        parts.append(f"{hint} hint {len(batch) / seconds:.1f} samples/s: {top}")
    return "OpenVINO profile of one batch by layer type: " + "; ".join(parts)


def _bound(runner: Callable[[Any], object], batch: np.ndarray[Any, Any]) -> Callable[[], object]:
    return lambda: runner(batch)


def run() -> dict[str, dict[str, Any]]:
    """Measure every runtime path's figures."""
    saved_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    saved_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(scratch) / "inductor")
        torch.set_num_threads(int(os.environ.get("EOSFM_BENCH_THREADS", saved_threads)))
        torch._dynamo.reset()
        try:
            return _measure(Path(scratch))
        finally:
            torch.set_num_threads(saved_threads)
            torch._dynamo.reset()
            if saved_cache is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved_cache


def _measure(scratch: Path) -> dict[str, dict[str, Any]]:
    t_start = time.perf_counter()

    def progress(what: str) -> None:
        print(f"   [{time.perf_counter() - t_start:5.0f} s] {what}", flush=True)

    threads = torch.get_num_threads()
    specs, states = _specialists()
    x = _batches(1, BATCH)[0]
    x_np = x.numpy()
    ensemble = scratch / "ensemble.safetensors"
    save_ensemble(ensemble, specs, states)

    eager = EosFM(specs, states, INPUT_BANDS)
    fp32 = EosFM(specs, states, INPUT_BANDS, compile=True)
    bf16 = EosFM(specs, states, INPUT_BANDS, compile=True, precision="bf16")

    def features(model: EosFM) -> Callable[[], list[torch.Tensor]]:
        def call() -> list[torch.Tensor]:
            with torch.inference_mode():
                return model(x)  # type: ignore[no-any-return]

        return call

    sides: dict[str, Callable[[], object]] = {
        "eager": features(eager),
        "compiled_fp32": features(fp32),
        "compiled_bf16": features(bf16),
    }
    progress("compiling fp32 and bf16")
    want = [f.numpy() for f in features(eager)()]
    sides["compiled_fp32"]()
    sides["compiled_bf16"]()

    progress("exporting the features-only ONNX graph")
    t0 = time.perf_counter()
    graph = scratch / "features.onnx"
    export_features(ensemble, INPUT_BANDS, "onnx", graph, tile=SIZE)
    export_s = time.perf_counter() - t0
    progress("quantizing to int8")
    t0 = time.perf_counter()
    int8_graph = quantize_int8(graph, scratch / "features-int8.onnx", _calibration())
    quantize_s = time.perf_counter() - t0

    parity: dict[str, float] = {}
    outputs: dict[str, list[np.ndarray[Any, Any]]] = {}
    missing: list[str] = []
    for name, path, runtime in (
        ("onnxruntime", graph, "onnxruntime"),
        ("openvino", graph, "openvino"),
        ("int8", int8_graph, "onnxruntime"),
    ):
        if not runtime_installed(runtime):
            missing.append(name)
            continue
        runner = load_graph(path, runtime, threads)  # type: ignore[arg-type]
        outputs[name] = runner(x_np)
        sides[name] = _bound(runner, x_np)
        parity[name] = _max_rel(outputs[name], want)
    int8_error = relative_error(outputs["int8"], want) if "int8" in outputs else float("nan")

    progress(f"{ROUNDS} interleaved rounds over {len(sides)} paths")
    times = interleaved(sides, ROUNDS, warmup=1)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    sps = {name: BATCH / t for name, t in median.items()}
    ratios = {name: round_ratios(times["eager"], times[name]) for name in sides if name != "eager"}

    progress("counting FLOPs and matmul rates")
    naive = NaiveEnsemble(
        specs,
        states,
        [list(plan.index) for plan in eager.plans],
        [[c.scale for c in plan.channels] for plan in eager.plans],
    )
    per_sample = _flops_per_batch(naive, x) / BATCH
    mm_fp32 = matmul_gflops()
    mm_bf16 = matmul_gflops(dtype=torch.bfloat16)
    ceiling = {
        "fp32": ceiling_samples_per_s(mm_fp32, per_sample),
        "bf16": ceiling_samples_per_s(mm_bf16, per_sample),
    }
    best = max(sps, key=lambda name: sps[name])
    profile = ""
    if runtime_installed("openvino"):
        progress("profiling OpenVINO by layer type")
        profile = _openvino_profile(graph, x_np, threads) + "; "
    progress("done")

    native, native_why = bf16_native("cpu")
    setting = (
        f"6 {BACKBONE} specialists ({', '.join(b for _, b in SPECIALISTS)}), 13x{SIZE}x{SIZE} "
        f"raw S2 input, batch {BATCH}, {threads} thread(s) on every runtime, torch "
        f"{torch.__version__}, load average {os.getloadavg()[0]:.1f}; {machine().describe()}"
    )
    rounds = f"median of {ROUNDS} interleaved rounds' per-round ratios (std: their spread)"
    ranking = ", ".join(f"{n} {sps[n]:.1f}" for n in sorted(sps, key=lambda n: -sps[n]))
    figures: dict[str, dict[str, Any]] = {}
    for name in PATHS:
        if name not in ratios:
            continue
        ratio, std = ratios[name]
        fig: dict[str, Any] = {
            "value": round(ratio, 3),
            "unit": "x",
            "std": round(std, 3),
            "baseline": f"eager fp32 EosFM, {sps['eager']:.1f} samples/s",
            "target": "reported",
            "note": f"{name} {sps[name]:.1f} samples/s; {rounds}; samples/s by path: "
            f"{ranking}; {setting}",
        }
        if name in ("onnxruntime", "openvino"):
            fig["target"] = f"features within {PARITY} relative of eager"
            fig["met"] = parity[name] <= PARITY
            fig["note"] += f"; features' max relative error {parity[name]:.2e}"
        if name == "int8":
            fig["note"] += f"; features' relative L2 error {int8_error:.3f}"
        if name in ("onnxruntime", "openvino", "int8"):
            fig["note"] += f"; ONNX export {export_s:.0f} s, int8 quantization {quantize_s:.0f} s"
        figures[f"ensemble_features_{name}_vs_eager"] = fig
    if "int8" in sides:
        figures["ensemble_features_int8_relative_error"] = {
            "value": round(int8_error, 4),
            "unit": "relative L2",
            "baseline": "fp32 eager features of the timed batch",
            "target": "reported",
            "note": f"static QDQ int8 (per-channel int8 weights, uint8 activations, min-max "
            f"calibration on {CALIBRATION_BATCHES} seeded batches of {CALIBRATION_BATCH} drawn "
            f"apart from the timed batch), largest over the 4 pyramid levels of "
            f"||int8 - fp32|| / ||fp32||; random-weight specialists, so no task accuracy; "
            f"max relative error {parity['int8']:.2e}",
        }
    fraction = sps[best] / ceiling["bf16"]
    fp32_fraction = sps[best] / ceiling["fp32"]
    figures["ensemble_features_best_fraction_of_ceiling"] = {
        "value": round(fraction, 3),
        "unit": "fraction",
        "baseline": f"{ceiling['bf16']:.0f} samples/s: this run's bf16 matmul rate "
        f"({mm_bf16:.1f} GFLOP/s) over {per_sample / 1e9:.3f} GFLOP per sample",
        "target": ">= 0.6",
        "met": fraction >= 0.6,
        "note": f"fastest path {best}, {sps[best]:.1f} samples/s = "
        f"{sps[best] * per_sample / 1e9:.1f} GFLOP/s; the same path is {fp32_fraction:.3f} of "
        f"the fp32 ceiling ({ceiling['fp32']:.0f} samples/s at {mm_fp32:.1f} GFLOP/s fp32 "
        f"matmul); bf16 {'native' if native else 'not native'} here ({native_why}); "
        f"auto's CPU order is {', '.join(CPU_PREFERENCE)}; "
        + (f"not installed: {', '.join(missing)}; " if missing else "")
        + profile
        + "the ceiling counts every FLOP at the rate of one large matmul, while at this tile "
        "size the late stages are small GEMMs and the layout reorders and elementwise layers "
        "(normalisation, GELU, GRN) are memory-bound; " + setting,
    }
    return figures
