"""Ensemble feature extraction: EosFM's frozen forward against the reference's naive loop.

Six random-weight ``convnextv2_atto`` specialists with mixed band sets (S2_ALL twice, S2_RGB,
an 8-bit aerial RGB, S2_IRRG and a 4-band aerial RGBIR) encode raw 13x64x64 Sentinel-2
batches of 64 on the CPU. The baseline runs in the same process: the reference's way, a
Python loop over the specialists that calls ``.eval()`` and ``.to(device)`` on each one for
every batch, selects its channels with a list index, builds and applies its normalisation
(and the unit rescale of a cross-scale substitute, so that it computes the same function), and
runs a grad-enabled forward (parameters frozen with ``requires_grad=False`` as the
reference's ``freeze=True`` does, but no ``no_grad``/``inference_mode``), then concatenates
the pyramids level by level.

Figures:

- ``ensemble_features_fp32_vs_naive``: ``EosFM(compile=True)`` throughput over the naive
  loop; the features must match the naive ones to 1e-4 (max abs) or the figure is not met.
- ``ensemble_features_bf16_vs_naive``: ``EosFM(compile=True, precision="bf16")``.
- ``ensemble_features_10k_end_to_end_vs_naive``: both sides built fresh and run on the same
  10,000 samples, batch by batch in turn (naive, then a fresh bf16 ensemble that compiles on
  its first batch with a cold inductor cache), each side's total wall time, construction
  included. If that would overrun the bench's time budget, both sides' remaining batches are
  projected at their own median batch time and the note says so.
- ``ensemble_features_gflops``: achieved GFLOP/s of the faster compiled path (FLOPs counted
  with ``FlopCounterMode`` on the unpadded specialists), beside this run's matmul rates.
- ``ensemble_features_bf16_fraction_of_ceiling`` / ``ensemble_features_fp32_fraction_of_ceiling``:
  achieved samples/s over the samples/s that this run's measured bf16 (fp32) matmul rate would
  allow for the ensemble's FLOPs: how close the path gets to the machine's physical limit.

Speed ratios are medians of per-round ratios over interleaved rounds (naive, fp32, bf16 in
turn, order rotating), so the shared machine's load hits every path alike; ``std`` is the
spread of the per-round ratios. Matmul rates are medians too.

Threads: all the machine's cores by default (torch's own default, as a user's run gets;
``EOSFM_BENCH_THREADS`` overrides). Compiled kernels bake the thread count in, so one run
measures one setting. Findings of earlier runs (profiles, what was tried) are in
docs/performance.md, dated, with the machine they were measured on.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from typing import Any

import timm
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bench.common import QUICK, interleaved, matmul_gflops, round_ratios
from eosfm_cli.bands import BAND_SETS, expand_bands, get_band
from eosfm_cli.hardware import bf16_native, machine
from eosfm_cli.models import EosFM
from eosfm_cli.models.spec import SpecialistSpec

BACKBONE = "convnextv2_atto"
SPECIALISTS = (
    ("s2_all_a", "S2_ALL"),
    ("s2_all_b", "S2_ALL"),
    ("s2_rgb", "S2_RGB"),
    ("aerial_rgb", "RGB"),
    ("s2_irrg", "S2_IRRG"),
    ("aerial_rgbir", "RGBIR"),
)
INPUT_BANDS = list(BAND_SETS["S2_ALL"])
MEASURES = ["eosfm_cli/models", "eosfm_cli/bands.py", "eosfm_cli/hardware.py"]
BATCH = 64
SIZE = 64
SAMPLES = 3 * BATCH + 16 if QUICK else 10_000
ROUNDS = 2 if QUICK else 20
E2E_BUDGET_S = 300.0  # beyond this, the rest of the 10k run is projected, on both sides


def _specialists() -> tuple[list[SpecialistSpec], list[dict[str, torch.Tensor]]]:
    """Random specialists: timm's init, perturbed so that no layer sits at a trivial value."""
    specs, states = [], []
    for seed, (name, band_set) in enumerate(SPECIALISTS):
        bands = expand_bands(band_set)
        g = torch.Generator().manual_seed(seed)
        n = len(bands)
        dn8 = get_band(bands[0]).unit.startswith("DN")  # aerial 8-bit statistics
        mean = (torch.rand(n, generator=g) * (80 if dn8 else 2000) + (60 if dn8 else 500)).tolist()
        std = (torch.rand(n, generator=g) * (30 if dn8 else 800) + (20 if dn8 else 200)).tolist()
        specs.append(SpecialistSpec(name, BACKBONE, bands, mean, std, source="bench"))
        torch.manual_seed(seed)
        model = timm.create_model(BACKBONE, pretrained=False, features_only=True, in_chans=n)
        states.append(
            {
                k: v + 0.02 * torch.randn_like(v) if v.is_floating_point() else v
                for k, v in model.state_dict().items()
            }
        )
    return specs, states


def _batches(n: int, batch: int) -> list[torch.Tensor]:
    """Raw S2-like reflectance x 1e4, one tensor per batch."""
    g = torch.Generator().manual_seed(1234)
    return [
        (torch.randn(batch, len(INPUT_BANDS), SIZE, SIZE, generator=g) * 700 + 1800).clamp_(0)
        for _ in range(n)
    ]


class NaiveEnsemble:
    """The reference's way: a Python loop over specialists, redoing everything per batch."""

    def __init__(
        self,
        specs: list[SpecialistSpec],
        states: list[dict[str, torch.Tensor]],
        channels: list[list[int]],
        scales: list[list[float]],
    ) -> None:
        self.specs = specs
        self.channels = channels
        self.scales = scales
        self.models: list[nn.Module] = []
        for spec, state in zip(specs, states, strict=True):
            model = timm.create_model(BACKBONE, features_only=True, in_chans=spec.in_chans)
            model.load_state_dict(state)
            model.requires_grad_(False)  # the reference's freeze=True, without no_grad
            self.models.append(model)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        pyramids = []
        for model, spec, channels, scales in zip(
            self.models, self.specs, self.channels, self.scales, strict=True
        ):
            model.eval()
            model.to(x.device)
            scale = torch.tensor(scales, device=x.device).view(1, -1, 1, 1)
            mean = torch.tensor(spec.mean, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(spec.std, device=x.device).view(1, -1, 1, 1)
            pyramids.append(model((x[:, channels] * scale - mean) / std))
        return [torch.cat([p[level] for p in pyramids], dim=1) for level in range(4)]


def _max_abs(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((p.float() - q).abs().max().item() for p, q in zip(a, b, strict=True))


def _max_rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(
        ((p.float() - q).abs().max() / q.abs().max()).item() for p, q in zip(a, b, strict=True)
    )


def _timed(fn: Any, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def _flops_per_batch(naive: NaiveEnsemble, x: torch.Tensor) -> float:
    """FLOPs of one batch through the specialists as trained (unpadded stems)."""
    small = x[:4]
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        naive(small)
    return counter.get_total_flops() * x.shape[0] / small.shape[0]


def ceiling_samples_per_s(matmul_gflops: float, flops_per_sample: float) -> float:
    """The samples/s a matmul rate would allow if every FLOP of a sample ran at it."""
    return matmul_gflops * 1e9 / flops_per_sample


def _graphs() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def run() -> dict[str, dict[str, Any]]:
    """Measure the four ensemble figures."""
    saved_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    saved_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # cold compile, as a first run pays
        torch.set_num_threads(int(os.environ.get("EOSFM_BENCH_THREADS", saved_threads)))
        torch._dynamo.reset()
        try:
            return _measure()
        finally:
            torch.set_num_threads(saved_threads)
            torch._dynamo.reset()  # the graphs were built for this thread count
            if saved_cache is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = saved_cache


def _end_to_end(
    specs: list[SpecialistSpec],
    states: list[dict[str, torch.Tensor]],
    naive_args: tuple[list[list[int]], list[list[float]]],
    pool: list[torch.Tensor],
    progress: Any,
) -> dict[str, Any]:
    """Both sides built fresh and run on the same ``SAMPLES`` inputs, batch by batch in turn."""
    batches = math.ceil(SAMPLES / BATCH)
    sizes = [min(BATCH, SAMPLES - i * BATCH) for i in range(batches)]
    times: dict[str, list[float]] = {"naive": [], "bf16": []}
    t0 = time.perf_counter()
    naive = NaiveEnsemble(specs, states, *naive_args)
    build = {"naive": time.perf_counter() - t0}
    t0 = time.perf_counter()
    bf16 = EosFM(specs, states, INPUT_BANDS, compile=True, precision="bf16")
    build["bf16"] = time.perf_counter() - t0
    start = time.perf_counter()
    graphs_before_last = 0
    for i, n in enumerate(sizes):
        if time.perf_counter() - start > E2E_BUDGET_S and i < len(sizes) - 1:
            break
        if i == len(sizes) - 1:
            graphs_before_last = _graphs()
        x = pool[i % len(pool)][:n]
        times["naive"].append(_timed(naive, x))
        times["bf16"].append(_timed(bf16, x))
        if i % 20 == 0:
            progress(f"end to end: batch {i + 1} of {batches}")
    timed = len(times["naive"])
    if timed < batches:  # the budget ran out: time the last (partial) batch anyway
        graphs_before_last = _graphs()
        x = pool[0][: sizes[-1]]
        times["naive"].append(_timed(naive, x))
        times["bf16"].append(_timed(bf16, x))
    new_graphs = _graphs() - graphs_before_last
    # The first bf16 batch compiles; the steady batches are the full ones after it.
    steady = {
        "naive": statistics.median(times["naive"][:-1] or times["naive"]),
        "bf16": statistics.median(times["bf16"][1:-1] or times["bf16"]),
    }
    projected = batches - len(times["naive"])
    total = {side: build[side] + sum(ts) + projected * steady[side] for side, ts in times.items()}
    return {
        "total": total,
        "build": build,
        "batches": batches,
        "projected": projected,
        "compile_s": times["bf16"][0] - steady["bf16"],
        "partial": sizes[-1],
        "partial_s": times["bf16"][-1],
        "partial_graphs": new_graphs,
        "model": bf16,
    }


def _measure() -> dict[str, dict[str, Any]]:
    t_start = time.perf_counter()

    def progress(what: str) -> None:
        print(f"   [{time.perf_counter() - t_start:5.0f} s] {what}", flush=True)

    specs, states = _specialists()
    pool = _batches(2, BATCH)
    x = pool[0]

    # fp32: construction plus compilation (cold inductor cache), as a first run pays.
    progress("compiling fp32")
    t0 = time.perf_counter()
    fp32 = EosFM(specs, states, INPUT_BANDS, compile=True)
    fp32(x)
    fp32_first = time.perf_counter() - t0
    assert fp32.active_names == [name for name, _ in SPECIALISTS], fp32.explain()
    assert all(plan.n_fill == 0 for plan in fp32.plans)
    naive_args = (
        [list(plan.index) for plan in fp32.plans],
        [[c.scale for c in plan.channels] for plan in fp32.plans],
    )
    naive = NaiveEnsemble(specs, states, *naive_args)
    graphs = [line.strip() for line in fp32.explain().splitlines() if line.startswith("  graph")]

    progress(f"{SAMPLES} samples end to end, naive and a fresh bf16 ensemble in turn")
    e2e = _end_to_end(specs, states, naive_args, pool, progress)
    bf16 = e2e["model"]

    progress("checking features")
    want = naive(x)
    fp32_err = _max_abs(fp32(x), want)
    bf16_err = _max_rel(bf16(x), want)

    progress(f"{ROUNDS} interleaved rounds")
    times = interleaved(
        {"naive": lambda: naive(x), "fp32": lambda: fp32(x), "bf16": lambda: bf16(x)},
        ROUNDS,
        warmup=1,
    )
    median = {name: statistics.median(ts) for name, ts in times.items()}
    sps = {name: BATCH / t for name, t in median.items()}
    fp32_compile_s = fp32_first - median["fp32"]
    fp32_ratio, fp32_std = round_ratios(times["naive"], times["fp32"])
    bf16_ratio, bf16_std = round_ratios(times["naive"], times["bf16"])
    e2e_ratio = e2e["total"]["naive"] / e2e["total"]["bf16"]

    progress("counting FLOPs and matmul rates")
    flops = _flops_per_batch(naive, x)
    per_sample = flops / BATCH
    fastest = min(("fp32", "bf16"), key=lambda name: median[name])
    gflops = flops / median[fastest] / 1e9
    mm_fp32 = matmul_gflops()
    mm_bf16 = matmul_gflops(dtype=torch.bfloat16)
    # The samples/s this run's matmul rates would allow if every FLOP ran at them.
    ceiling_sps = {
        "fp32": ceiling_samples_per_s(mm_fp32, per_sample),
        "bf16": ceiling_samples_per_s(mm_bf16, per_sample),
    }
    fraction = {name: sps[name] / ceiling_sps[name] for name in ("fp32", "bf16")}
    # The most any path could gain over the naive loop at those rates.
    ceiling_ratio = {name: ceiling_sps[name] / sps["naive"] for name in ("fp32", "bf16")}
    progress("done")

    native, native_why = bf16_native("cpu")
    capability = torch.backends.cpu.get_cpu_capability()
    setting = (
        f"6 {BACKBONE} specialists (S2_ALL x2, S2_RGB, aerial RGB, S2_IRRG, aerial RGBIR), "
        f"13x{SIZE}x{SIZE} raw S2 input, batch {BATCH}, torch CPU capability {capability}, "
        f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}; "
        f"{machine().describe()}"
    )
    shared = f"{len(graphs)} shared graph(s): {'; '.join(graphs)}"
    naive_desc = (
        f"reference-style loop: per-batch .eval()/.to(), list-index channel selection and "
        f"normalisation, grad-enabled fp32 forward ({sps['naive']:.1f} samples/s)"
    )
    fp32_ok = fp32_err <= 1e-4
    rounds = (
        f"median of {ROUNDS} interleaved rounds' ratios (std: their spread), medians of the "
        "same rounds for samples/s"
    )
    e2e_how = (
        f"{e2e['batches'] - e2e['projected']} batches timed on each side, the other "
        f"{e2e['projected']} projected at each side's own median batch time (the bench's "
        f"{E2E_BUDGET_S:.0f} s budget ran out)"
        if e2e["projected"]
        else f"all {e2e['batches']} batches timed on each side"
    )
    partial = (
        "no new graph compiled for it"
        if e2e["partial_graphs"] == 0
        else f"{e2e['partial_graphs']} new graph(s) compiled for it"
    )
    bf16_kind = "native" if native else "not native"
    return {
        "ensemble_features_fp32_vs_naive": {
            "value": round(fp32_ratio, 2),
            "std": round(fp32_std, 2),
            "unit": "x",
            "baseline": naive_desc,
            "target": ">= 3 and max abs error <= 1e-4",
            "met": fp32_ratio >= 3 and fp32_ok,
            "note": f"EosFM(compile=True), fp32: {sps['fp32']:.1f} samples/s; max abs feature "
            f"error vs naive {fp32_err:.2e} ({'ok' if fp32_ok else 'TOO LARGE'}); compile "
            f"{fp32_compile_s:.1f} s (cold cache), {shared}; {rounds}; with every FLOP at this "
            f"run's fp32 matmul rate the ratio would be {ceiling_ratio['fp32']:.1f}x; "
            f"{setting}",
        },
        "ensemble_features_bf16_vs_naive": {
            "value": round(bf16_ratio, 2),
            "std": round(bf16_std, 2),
            "unit": "x",
            "baseline": naive_desc,
            "target": ">= 5",
            "met": bf16_ratio >= 5,
            "note": f"EosFM(compile=True, precision='bf16'): {sps['bf16']:.1f} samples/s; max "
            f"relative feature error vs the fp32 naive features {bf16_err:.2e} (max abs error "
            f"/ max abs value, worst level); bf16 weights and activations, features returned "
            f"in fp32; bf16 {bf16_kind} here ({native_why}); compile {e2e['compile_s']:.1f} s "
            f"(cold cache); {rounds}; with every FLOP at this run's bf16 matmul rate the "
            f"ratio would be {ceiling_ratio['bf16']:.1f}x; {setting}",
        },
        "ensemble_features_10k_end_to_end_vs_naive": {
            "value": round(e2e_ratio, 2),
            "unit": "x",
            "baseline": f"naive loop built and run on {SAMPLES} samples: "
            f"{e2e['total']['naive']:.0f} s",
            "target": ">= 3 (compilation included)",
            "met": e2e_ratio >= 3,
            "note": f"fresh EosFM(compile=True, precision='bf16') built, compiled and run on "
            f"the same {SAMPLES} samples, batch by batch in turn with the naive loop: "
            f"{e2e['total']['bf16']:.0f} s = {SAMPLES / e2e['total']['bf16']:.1f} samples/s "
            f"({e2e_how}); construction {e2e['build']['bf16']:.1f} s (naive "
            f"{e2e['build']['naive']:.1f} s); compile ~{e2e['compile_s']:.1f} s (cold inductor "
            f"cache: first batch minus the median batch); the last batch of {e2e['partial']} "
            f"samples took {e2e['partial_s']:.2f} s, {partial}; {setting}",
        },
        "ensemble_features_gflops": {
            "value": round(gflops, 1),
            "unit": "GFLOP/s",
            "baseline": f"fp32 matmul {mm_fp32:.1f} GFLOP/s in this run, same threads",
            "target": "reported",
            "note": f"{fastest} compiled path (the faster by median), {per_sample / 1e9:.3f} "
            f"GFLOP per sample for the 6 specialists (FlopCounterMode, unpadded stems); "
            f"{100 * gflops / mm_fp32:.0f}% of this run's fp32 matmul rate; bf16 matmul "
            f"{mm_bf16:.1f} GFLOP/s; naive loop {flops / median['naive'] / 1e9:.1f} GFLOP/s, "
            f"fp32 compiled {flops / median['fp32'] / 1e9:.1f} GFLOP/s, bf16 compiled "
            f"{flops / median['bf16'] / 1e9:.1f} GFLOP/s; matmul rates: 2048x2048, median of "
            "5",
        },
        "ensemble_features_bf16_fraction_of_ceiling": {
            "value": round(fraction["bf16"], 3),
            "unit": "fraction",
            "baseline": f"{ceiling_sps['bf16']:.0f} samples/s: this run's bf16 matmul rate "
            f"({mm_bf16:.1f} GFLOP/s) over {per_sample / 1e9:.3f} GFLOP per sample",
            "target": "reported",
            "note": f"EosFM(compile=True, precision='bf16') {sps['bf16']:.1f} samples/s "
            f"(median of {ROUNDS} rounds); bf16 {bf16_kind} here ({native_why}); {setting}",
        },
        "ensemble_features_fp32_fraction_of_ceiling": {
            "value": round(fraction["fp32"], 3),
            "unit": "fraction",
            "baseline": f"{ceiling_sps['fp32']:.0f} samples/s: this run's fp32 matmul rate "
            f"({mm_fp32:.1f} GFLOP/s) over {per_sample / 1e9:.3f} GFLOP per sample",
            "target": "reported",
            "note": f"EosFM(compile=True) fp32 {sps['fp32']:.1f} samples/s (median of "
            f"{ROUNDS} rounds); {setting}",
        },
    }
