"""train-specialist figures.

- ``eurosat100_s2_specialist_accuracy``: test accuracy of an S2 specialist trained from scratch
  by ``train_specialist`` on the 60 real EuroSAT100 training patches (skipped without
  ``../shared``).
- ``train_throughput_vs_torchgeo``: training samples/s of our engine (``torch.compile`` +
  bf16 autocast) over torchgeo's own ``ClassificationTask``, same convnextv2_atto, same
  13x64x64 batches, same Lightning loop, measured in this process. Compile time is reported as
  its own figure.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from bench.common import EUROSAT100


class _Batches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(n, 13, 64, 64, generator=g) * 3000
        self.y = torch.randint(0, 10, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.x[i], "label": self.y[i]}


def _epoch_times(model: Any, data: Any, epochs: int, precision: str) -> list[float]:
    import lightning.pytorch as pl

    times: list[float] = []

    class Timer(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
            times.append(time.perf_counter() - self.t0)

    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Timer()],
        limit_val_batches=0,
    )
    trainer.fit(model, loader)
    return times


def _ours() -> Any:
    """Our classification specialist, convnextv2_atto on 13 bands, without augmentation."""
    from eosfm_cli.tasks import ClassificationTask

    return ClassificationTask(
        task="classification",
        backbone="convnextv2_atto",
        bands=["B01"] * 13,
        mean=[1500.0] * 13,
        std=[900.0] * 13,
        classes=[str(i) for i in range(10)],
        lr=1e-3,
        max_epochs=3,
        augment=False,
    )


def throughput() -> dict[str, dict[str, Any]]:
    from torchgeo.trainers import ClassificationTask

    from eosfm_cli.training.quiet import quiet_lightning

    quiet_lightning()
    torch.manual_seed(0)
    data = _Batches(64 * 8)
    n = len(data)
    ref = ClassificationTask(model="convnextv2_atto", in_channels=13, num_classes=10, lr=1e-3)
    # torchgeo's default schedule watches val_loss; this run has no validation loop.
    ref.configure_optimizers = lambda: torch.optim.AdamW(  # type: ignore[method-assign]
        ref.parameters(), lr=1e-3
    )
    ref_t = _epoch_times(ref, data, 3, "32-true")
    ref_sps = n / min(ref_t[1:])

    ours = _ours()
    eager_t = _epoch_times(ours, data, 2, "32-true")
    eager_sps = n / min(eager_t[1:])
    fast = _ours()
    compiled = torch.compile(fast)
    fast_t = _epoch_times(compiled, data, 3, "bf16-mixed")
    fast_sps = n / min(fast_t[1:])
    compile_s = fast_t[0] - min(fast_t[1:])
    ratio = fast_sps / ref_sps
    return {
        "train_throughput_vs_torchgeo": {
            "value": round(ratio, 3),
            "unit": "x",
            "target": ">= 1.2",
            "baseline": f"torchgeo ClassificationTask fp32 eager ({ref_sps:.1f} samples/s)",
            "met": ratio >= 1.2,
            "note": f"ours compiled+bf16 {fast_sps:.1f} samples/s; ours eager fp32 "
            f"{eager_sps:.1f} samples/s ({eager_sps / ref_sps:.2f}x); convnextv2_atto, "
            f"13x64x64, batch 64, {n} samples/epoch, best epoch after the first",
        },
        "train_compile_seconds": {
            "value": round(compile_s, 1),
            "unit": "s",
            "target": "reported",
            "baseline": "first epoch minus a warm epoch",
            "note": "one-off torch.compile cost of the specialist training graph",
        },
    }


def eurosat_accuracy() -> dict[str, dict[str, Any]]:
    if not EUROSAT100.is_dir():
        print(f"   skipped: {EUROSAT100} not found")
        return {}
    import statistics

    from bench.common import SCRATCH_RECIPE, SCRATCH_SEEDS, eurosat100_scratch

    runs = eurosat100_scratch(EUROSAT100, SCRATCH_SEEDS)
    test = list(runs["test"])  # type: ignore[call-overload]
    val = list(runs["val"])  # type: ignore[call-overload]
    mean = statistics.mean(test)
    return {
        "eurosat100_s2_specialist_accuracy": {
            "value": round(mean, 3),
            "std": round(statistics.pstdev(test), 3),
            "unit": "accuracy",
            "target": ">= 0.5",
            "baseline": "chance 0.10 (20 real test patches)",
            "met": mean >= 0.5,
            "note": f"convnextv2_atto from scratch, 60 train patches, mean of {len(test)} seeds "
            f"(test {test}, val {val}; val mean {statistics.mean(val):.3f}), "
            f"{runs['seconds']:.0f} s on CPU in all; recipe chosen on val by "
            f"bench/search_scratch_recipe.py: "
            f"{' '.join(x for x in SCRATCH_RECIPE if not x.startswith('emissions'))}",
        }
    }


def run() -> dict[str, dict[str, Any]]:
    out = eurosat_accuracy()
    out.update(throughput())
    return out
