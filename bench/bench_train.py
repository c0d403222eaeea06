"""train-specialist speed against torchgeo (the accuracy of the defaults: ``bench_accuracy``).

- Three training-speed ratios against torchgeo's own ``ClassificationTask``, same
  ``convnextv2_atto``, same 13x64x64 batches, same batch size, same Lightning loop, no
  checkpointing, logging or validation on either side:

  - ``train_default_vs_torchgeo_default``: ours with the profile's defaults (``auto`` resolved
    on this machine for the EuroSAT100 recipe's run length) against torchgeo with its own
    (Lightning's default precision, no compile);
  - ``train_eager_fp32_vs_torchgeo_eager_fp32``: both ``32-true``, eager;
  - ``train_compiled_bf16_vs_torchgeo_compiled_bf16``: both ``bf16-mixed`` under
    ``torch.compile``.

  Every side keeps one model and one Trainer and trains one more epoch per round; the rounds
  interleave all the sides (order rotating), after one untimed warm-up round that also
  compiles. A ratio is the median of the per-round ratios of epoch times.
- ``train_compile_seconds`` and ``train_compile_break_even_steps_bf16``: the one-off compile
  cost (warm-up epoch minus the median epoch, compiled bf16) and the optimiser steps after
  which compiling has paid for itself against eager bf16.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from bench.common import (
    EUROSAT100_TRAIN,
    QUICK,
    SCRATCH_RECIPE,
    round_ratios,
)

MEASURES = [
    "eosfm_cli/tasks",
    "eosfm_cli/training",
    "eosfm_cli/models",
    "eosfm_cli/hardware.py",
    "eosfm_cli/stages/train_specialist.py",
    "profiles/default.yaml",
]
BACKBONE = "convnextv2_atto"
ACCELERATOR = "cpu"
BATCH = 16 if QUICK else 64
BATCHES_PER_EPOCH = 2 if QUICK else 8
ROUNDS = 2 if QUICK else 7


class _Batches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 13, 64, 64, generator=g) * 3000
        self.y = torch.randint(0, 10, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.x[i], "label": self.y[i]}


@dataclass
class Side:
    """One way of training: whose task, which precision, compiled or not."""

    who: str  # "ours" or "torchgeo"
    precision: str
    compiled: bool

    @property
    def key(self) -> str:
        return f"{self.who} {self.precision} {'compiled' if self.compiled else 'eager'}"


def _ours() -> Any:
    """Our classification specialist, convnextv2_atto on 13 bands, without augmentation."""
    from eosfm_cli.tasks import ClassificationTask

    return ClassificationTask(
        task="classification",
        backbone=BACKBONE,
        bands=["B01"] * 13,
        mean=[1500.0] * 13,
        std=[900.0] * 13,
        classes=[str(i) for i in range(10)],
        lr=1e-3,
        max_epochs=ROUNDS + 1,
        augment=False,
    )


def _torchgeo() -> Any:
    from torchgeo.trainers import ClassificationTask

    task = ClassificationTask(model=BACKBONE, in_channels=13, num_classes=10, lr=1e-3)
    # torchgeo's default schedule watches val_loss; this run has no validation loop.
    task.configure_optimizers = lambda: torch.optim.AdamW(  # type: ignore[method-assign]
        task.parameters(), lr=1e-3
    )
    return task


class _Trained:
    """A side's model and Trainer; :meth:`epoch` trains one more epoch and times it."""

    def __init__(self, side: Side, loader: Any) -> None:
        import lightning.pytorch as pl
        from lightning.pytorch.utilities.compile import from_compiled

        self.side = side
        self.loader = loader
        self.times: list[float] = []
        times = self.times

        class Timer(pl.Callback):
            def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
                self.t0 = time.perf_counter()

            def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
                times.append(time.perf_counter() - self.t0)

        torch.manual_seed(0)
        model = _ours() if side.who == "ours" else _torchgeo()
        # Compile once; every later fit reuses the compiled methods (no re-wrapping).
        compiled: Any = torch.compile(model) if side.compiled else None
        self.model = from_compiled(compiled) if side.compiled else model
        common: dict[str, Any] = {
            "logger": False,
            "enable_checkpointing": False,
            "limit_val_batches": 0,
            "callbacks": [Timer()],
        }
        if side.who == "ours":
            from eosfm_cli.profile_schema import TrainerConfig
            from eosfm_cli.training.trainer import make_trainer

            tcfg = TrainerConfig(
                max_epochs=1,
                accelerator=ACCELERATOR,
                precision=side.precision,
                compile=side.compiled,
            )
            callbacks = common.pop("callbacks")
            self.trainer = make_trainer(tcfg, callbacks, True, **common)
        else:
            self.trainer = pl.Trainer(
                max_epochs=1,
                accelerator=ACCELERATOR,
                devices=1,
                precision=side.precision,  # type: ignore[arg-type]
                enable_progress_bar=False,
                enable_model_summary=False,
                **common,
            )
        self.epochs = 0

    def epoch(self) -> None:
        self.epochs += 1
        self.trainer.fit_loop.max_epochs = self.epochs
        self.trainer.fit(self.model, self.loader)


def _torchgeo_default_precision() -> str:
    """The precision a Lightning Trainer gets when none is given (torchgeo sets none)."""
    import lightning.pytorch as pl

    trainer = pl.Trainer(accelerator=ACCELERATOR, logger=False, enable_checkpointing=False)
    return str(trainer.precision)


def _default_side() -> tuple[Side, str]:
    """Our side as the profile's defaults resolve here, for the EuroSAT100 recipe's length."""
    from eosfm_cli.hardware import resolve_compile, resolve_precision
    from eosfm_cli.profile_schema import TrainerConfig

    defaults = TrainerConfig()
    recipe = dict(item.partition("=")[::2] for item in SCRATCH_RECIPE)
    steps = math.ceil(EUROSAT100_TRAIN / int(recipe["trainer.batch_size"])) * int(
        recipe["trainer.max_epochs"]
    )
    precision = resolve_precision(defaults.precision, ACCELERATOR)
    compiled = resolve_compile(defaults.compile, steps, str(precision.value))
    why = (
        f"defaults precision={defaults.precision} -> {precision.value} ({precision.why}), "
        f"compile={defaults.compile} -> {compiled.value} ({compiled.why}; the EuroSAT100 "
        f"recipe's run length)"
    )
    return Side("ours", str(precision.value), bool(compiled.value)), why


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def throughput() -> dict[str, dict[str, Any]]:
    """The three training-speed ratios against torchgeo, and the compile cost."""
    from eosfm_cli.hardware import machine
    from eosfm_cli.training.quiet import quiet_lightning

    quiet_lightning()
    data = _Batches(BATCH * BATCHES_PER_EPOCH)
    n = len(data)
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True)
    tg_default = _torchgeo_default_precision()
    ours_default, default_why = _default_side()
    sides = {
        "ours_default": ours_default,
        "ours_fp32": Side("ours", "32-true", False),
        "ours_bf16_eager": Side("ours", "bf16-mixed", False),
        "ours_bf16_compiled": Side("ours", "bf16-mixed", True),
        "tg_default": Side("torchgeo", tg_default, False),
        "tg_fp32": Side("torchgeo", "32-true", False),
        "tg_bf16_compiled": Side("torchgeo", "bf16-mixed", True),
    }
    # A setting two figures share is measured once (e.g. torchgeo's default is 32-true eager).
    runs: dict[str, _Trained] = {}
    for side in sides.values():
        if side.key not in runs:
            runs[side.key] = _Trained(side, loader)
    order = list(runs.values())
    graphs_before = 0
    t0 = time.perf_counter()
    for r in range(1 + ROUNDS):
        if r == 1:
            graphs_before = _graphs()
        shift = r % len(order)
        for run in order[shift:] + order[:shift]:
            run.epoch()
        print(f"   round {r + 1} of {1 + ROUNDS} ({time.perf_counter() - t0:.0f} s)", flush=True)
    recompiled = _graphs() - graphs_before

    def timed(name: str) -> list[float]:
        return runs[sides[name].key].times[1:]  # the warm-up epoch (and compile) left out

    def sps(name: str) -> float:
        return n / statistics.median(timed(name))

    setting = (
        f"{BACKBONE}, 13x64x64, batch {BATCH}, {n} samples/epoch, {ACCELERATOR}, "
        f"{ROUNDS} interleaved rounds after a warm-up round, median of per-round ratios "
        f"(std: their spread); {recompiled} graph(s) compiled during the timed rounds; "
        f"{machine().describe()}"
    )
    out: dict[str, dict[str, Any]] = {}
    figures = (
        ("train_default_vs_torchgeo_default", "ours_default", "tg_default", 1.3, default_why),
        ("train_eager_fp32_vs_torchgeo_eager_fp32", "ours_fp32", "tg_fp32", 1.0, ""),
        (
            "train_compiled_bf16_vs_torchgeo_compiled_bf16",
            "ours_bf16_compiled",
            "tg_bf16_compiled",
            1.0,
            "",
        ),
    )
    for figure, ours, ref, target, why in figures:
        ratio, spread = round_ratios(timed(ref), timed(ours))
        ref_side, our_side = sides[ref], sides[ours]
        out[figure] = {
            "value": round(ratio, 3),
            "std": round(spread, 3),
            "unit": "x",
            "target": f">= {target}",
            "baseline": f"torchgeo ClassificationTask, {ref_side.key.removeprefix('torchgeo ')} "
            f"({sps(ref):.1f} samples/s)",
            "met": ratio >= target,
            "note": f"ours {our_side.key.removeprefix('ours ')} {sps(ours):.1f} samples/s"
            + (f"; {why}" if why else "")
            + f"; {setting}",
        }
    compiled_t = runs[sides["ours_bf16_compiled"].key].times
    eager_step = statistics.median(timed("ours_bf16_eager")) / BATCHES_PER_EPOCH
    compiled_step = statistics.median(compiled_t[1:]) / BATCHES_PER_EPOCH
    compile_s = compiled_t[0] - statistics.median(compiled_t[1:])
    saved = eager_step - compiled_step
    break_even = compile_s / saved if saved > 0 else float("inf")
    out["train_compile_seconds"] = {
        "value": round(compile_s, 1),
        "unit": "s",
        "target": "reported",
        "baseline": "warm-up epoch minus the median epoch, ours compiled bf16-mixed",
        "note": f"one-off torch.compile cost of the specialist training graph; {setting}",
    }
    out["train_compile_break_even_steps_bf16"] = {
        "value": round(break_even) if math.isfinite(break_even) else "never",
        "unit": "steps",
        "target": "reported",
        "baseline": f"ours eager bf16-mixed, {1000 * eager_step:.0f} ms/step",
        "note": f"compiled bf16-mixed {1000 * compiled_step:.0f} ms/step after a "
        f"{compile_s:.1f} s compile; steps of batch {BATCH} after which compiling has paid "
        f"for itself (compile seconds / seconds saved per step); {setting}",
    }
    return out


def run() -> dict[str, dict[str, Any]]:
    return throughput()
