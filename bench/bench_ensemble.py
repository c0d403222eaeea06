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
- ``ensemble_features_10k_end_to_end_vs_naive``: a fresh bf16 ensemble built, compiled (cold
  inductor cache) and run on 10,000 samples, timed for real (if it would overrun the bench's
  time budget, the remaining batches are projected at the measured median batch time and the
  note says so), against the naive loop's median batch time times the same batch count.
- ``ensemble_features_gflops``: achieved GFLOP/s of the fastest path (FLOPs counted with
  ``FlopCounterMode`` on the unpadded specialists), beside this run's fp32 matmul GFLOP/s.

Speed ratios are best-of over interleaved rounds (naive, fp32, bf16 in turn), so the shared
machine's load hits every path alike; ``std`` is the spread of the per-round ratios.

Threads: all the machine's cores by default (torch's own default, as a user's run gets;
``EOSFM_BENCH_THREADS`` overrides). Compiled kernels bake the thread count in, so one run
measures one setting. On this 2-core machine the second thread does not help the compiled
paths more than the eager baseline (naive 51 -> 62-114 samples/s, fp32 compiled 104 -> 184-196),
so the ratios at two threads are no better than at one (fp32 2.0x, bf16 2.9x at one thread).
The naive loop's speed swings by up to 2x from round to round on this shared machine while the
compiled paths hold steady, hence 20 rounds: the best of each path is its undisturbed speed.
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
from common import best_time, matmul_gflops
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from eosfm_cli.bands import BAND_SETS, expand_bands, get_band
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
BATCH = 64
SIZE = 64
SAMPLES = 10_000
ROUNDS = 20
E2E_BUDGET_S = 150.0  # beyond this, the rest of the 10k run is projected


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


def _bf16_matmul_gflops(n: int = 2048) -> float:
    a = torch.randn(n, n, dtype=torch.bfloat16)
    b = torch.randn(n, n, dtype=torch.bfloat16)
    return 2 * n**3 / best_time(lambda: a @ b, repeat=5, warmup=2) / 1e9


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
    naive = NaiveEnsemble(
        specs,
        states,
        [list(plan.index) for plan in fp32.plans],
        [[c.scale for c in plan.channels] for plan in fp32.plans],
    )
    graphs = [line.strip() for line in fp32.explain().splitlines() if line.startswith("  graph")]

    # bf16, end to end: a fresh ensemble built, compiled and run on 10,000 samples.
    progress("10k samples through a fresh bf16 ensemble (compiles first)")
    t0 = time.perf_counter()
    bf16 = EosFM(specs, states, INPUT_BANDS, compile=True, precision="bf16")
    batch_times: list[float] = []
    done = 0
    while done < SAMPLES and time.perf_counter() - t0 < E2E_BUDGET_S:
        n = min(BATCH, SAMPLES - done)  # the last batch (16) is padded to the compiled 64
        batch_times.append(_timed(bf16, pool[len(batch_times) % len(pool)][:n]))
        done += n
    e2e_s = time.perf_counter() - t0
    batches = math.ceil(SAMPLES / BATCH)
    steady_batch = statistics.median(batch_times[1:])
    projected = batches - len(batch_times)
    e2e_s += projected * steady_batch
    if projected:  # not reached: check the partial batch anyway
        partial_s = _timed(bf16, x[: SAMPLES % BATCH or BATCH])
    else:
        partial_s = batch_times[-1]
    bf16_compile_s = batch_times[0] - steady_batch

    progress("checking features")
    want = naive(x)
    fp32_err = _max_abs(fp32(x), want)
    bf16_err = _max_rel(bf16(x), want)

    # Interleaved rounds: naive, fp32, bf16 on the same batch.
    times: dict[str, list[float]] = {"naive": [], "fp32": [], "bf16": []}
    for r in range(ROUNDS):
        progress(f"round {r + 1} of {ROUNDS}")
        for name, fn in (("naive", naive), ("fp32", fp32), ("bf16", bf16)):
            times[name].append(_timed(fn, x))
    best = {name: min(ts) for name, ts in times.items()}
    sps = {name: BATCH / t for name, t in best.items()}
    fp32_compile_s = fp32_first - statistics.median(times["fp32"])

    def ratio(name: str) -> tuple[float, float]:
        per_round = [n / t for n, t in zip(times["naive"], times[name], strict=True)]
        return best["naive"] / best[name], statistics.stdev(per_round)

    fp32_ratio, fp32_std = ratio("fp32")
    bf16_ratio, bf16_std = ratio("bf16")
    naive_10k_s = batches * statistics.median(times["naive"])
    e2e_ratio = naive_10k_s / e2e_s

    progress("counting FLOPs and matmul rates")
    flops = _flops_per_batch(naive, x)
    fastest = min(("fp32", "bf16"), key=lambda name: best[name])
    gflops = flops / best[fastest] / 1e9
    mm_fp32 = matmul_gflops()
    mm_bf16 = _bf16_matmul_gflops()
    # The most any path could gain if every FLOP ran at this run's matmul rate.
    ceiling_fp32 = best["naive"] / (flops / (mm_fp32 * 1e9))
    ceiling_bf16 = best["naive"] / (flops / (mm_bf16 * 1e9))
    progress("done")

    capability = torch.backends.cpu.get_cpu_capability()
    setting = (
        f"6 {BACKBONE} specialists (S2_ALL x2, S2_RGB, aerial RGB, S2_IRRG, aerial RGBIR), "
        f"13x{SIZE}x{SIZE} raw S2 input, batch {BATCH}, CPU {capability}, "
        f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}"
    )
    shared = f"{len(graphs)} shared graph(s): {'; '.join(graphs)}"
    naive_desc = (
        f"reference-style loop: per-batch .eval()/.to(), list-index channel selection and "
        f"normalisation, grad-enabled fp32 forward ({sps['naive']:.1f} samples/s)"
    )
    fp32_ok = fp32_err <= 1e-4
    e2e_how = (
        f"{len(batch_times)} batches timed, the other {projected} projected at the median batch "
        f"time (the bench's {E2E_BUDGET_S:.0f} s budget ran out)"
        if projected
        else f"all {batches} batches timed"
    )
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
            f"{fp32_compile_s:.1f} s (cold cache), {shared}; best of {ROUNDS} interleaved "
            f"rounds (std: spread of per-round ratios); "
            f"{'' if fp32_ratio >= 3 else 'target missed: '}profiled at 2 threads on one "
            f"specialist, batch 64: the convolutions (stem, depthwise and the MLP's 1x1 "
            f"convolutions) take two thirds of the compiled fp32 forward, and stage 3's 1x1 "
            f"convolutions already run at the fp32 matmul rate; with every FLOP at this run's "
            f"fp32 matmul rate the ratio would be {ceiling_fp32:.1f}x, so 3x needs LayerNorm, "
            f"GRN and GELU too at matmul speed (tried: inductor freezing, weights as "
            f"constants with fused conv post-ops, "
            f"one compile per specialist, 10-25% faster for one specialist alone but only a few "
            f"percent faster in the six-specialist loop; channels_last: no change; "
            f"horizontal fusion, all six specialists as one grouped network (one stem conv, "
            f"grouped 1x1 convs, per-group LayerNorm/GRN) compiled as one graph: 0.80-0.97x "
            f"of the six compiled calls, so not used; bf16, next figure); "
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
            f"in fp32; CPU capability {capability} with avx512_bf16 (no AMX on this CPU); "
            f"compile {bf16_compile_s:.1f} s; "
            f"{'' if bf16_ratio >= 5 else 'target missed: '}with every FLOP at this run's bf16 "
            f"matmul rate the ratio would be {ceiling_bf16:.1f}x; about half of the bf16 "
            f"forward is "
            f"convolutions near the bf16 matmul rate and half the fused LayerNorm/GELU/GRN "
            f"kernels; tried: bf16 autocast inside the graph (slower than bf16 weights), "
            f"inductor freezing (one compile per specialist: 10-25% faster for one specialist "
            f"alone, a few percent in the six-specialist loop, not worth six compiles), "
            f"max-autotune "
            f"with and without freezing (no gain); the input gather was moved out of the graph "
            f"(compiled, it was a per-pixel loop taking ~17% of the time); "
            f"{setting}",
        },
        "ensemble_features_10k_end_to_end_vs_naive": {
            "value": round(e2e_ratio, 2),
            "unit": "x",
            "baseline": f"naive loop: {naive_10k_s:.0f} s for {SAMPLES} samples ({batches} "
            f"batches at its median batch time)",
            "target": ">= 3 (compilation included)",
            "met": e2e_ratio >= 3,
            "note": f"fresh EosFM(compile=True, precision='bf16') built, compiled and run on "
            f"{SAMPLES} samples in {e2e_s:.0f} s = {SAMPLES / e2e_s:.1f} samples/s "
            f"({e2e_how}); compile ~{bf16_compile_s:.1f} s (cold inductor cache: first batch "
            f"minus the median batch); the last partial batch ({SAMPLES % BATCH or BATCH} "
            f"samples) is padded to the compiled {BATCH} and took {partial_s:.2f} s (no "
            f"recompilation); {setting}",
        },
        "ensemble_features_gflops": {
            "value": round(gflops, 1),
            "unit": "GFLOP/s",
            "baseline": f"fp32 matmul {mm_fp32:.1f} GFLOP/s in this run, same threads",
            "target": "reported",
            "note": f"{fastest} compiled path, {flops / BATCH / 1e9:.3f} GFLOP per sample for "
            f"the 6 specialists (FlopCounterMode, unpadded stems); "
            f"{100 * gflops / mm_fp32:.0f}% of this run's fp32 matmul rate; bf16 matmul "
            f"{mm_bf16:.1f} GFLOP/s; naive loop {flops / best['naive'] / 1e9:.1f} GFLOP/s, "
            f"fp32 compiled {flops / best['fp32'] / 1e9:.1f} GFLOP/s",
        },
    }
