"""One run of a benchmark: a model trained on a label fraction, scored sample by sample.

Two kinds of run, each returning its validation score (what every choice is made on) and the
per-sample statistics of its test split (:mod:`eosfm_cli.benchmark_stats`):

- :func:`head_run`: a light head (the task's own: a linear probe, UPerNet, the siamese change
  head, the regression head) over a frozen ensemble file, optionally with K gates. The
  features of the whole splits come from the workspace's feature cache, shared with
  ``fit-head``; the fraction is a subset of the cached train split, so every fraction and
  seed of one file encodes the data once.
- :func:`scratch_run`: the specialists' backbone, randomly initialised, trained end to end on
  the same subset with the task's specialist recipe, the best epoch kept by val.
"""

from __future__ import annotations

import dataclasses
import functools
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eosfm_cli.benchmark_stats import sample_stats
from eosfm_cli.context import StageContext
from eosfm_cli.downstream import build_checked_generalist, head_config, head_module
from eosfm_cli.head_features import feature_key, feature_loader, prepare_features

if TYPE_CHECKING:
    from eosfm_cli.data.spec import ExperimentSpec


@dataclass
class RunOutcome:
    """What one benchmark run measured.

    Attributes:
        val: the task's monitored validation metric of the kept epoch.
        rows: per-sample statistics of the test split, in split order.
        seconds: wall time of the run.
        note: how its inputs were prepared (the feature-cache line).
    """

    val: float
    rows: np.ndarray
    seconds: float
    note: str = ""

    def __post_init__(self) -> None:
        # the precision the cache keeps, so a fresh run and its cached copy aggregate alike
        self.seconds = round(self.seconds, 3)

    def to_dict(self) -> dict[str, Any]:
        """The outcome as JSON."""
        return {
            "val": self.val,
            "rows": self.rows.tolist(),
            "seconds": self.seconds,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunOutcome:
        """An outcome read back from :meth:`to_dict`."""
        return cls(
            float(data["val"]), np.asarray(data["rows"]), float(data["seconds"]), data["note"]
        )


def file_digest(path: Path) -> str:
    """The sha256 of a model file, read once while the file is unchanged (every run needs it)."""
    st = path.stat()
    return _digest(path.resolve(), st.st_mtime_ns, st.st_size)


@functools.cache
def _digest(path: Path, mtime_ns: int, size: int) -> str:
    from eosfm_cli.io import sha256_file

    return sha256_file(path)


class FeatureSubset:
    """Some samples of a dataset (cached features or raw samples), in their split order."""

    def __init__(self, ds: Any, indices: Sequence[int]) -> None:
        self.ds = ds
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.ds[self.indices[i]]

    def get_batch(self, indices: list[int]) -> dict[str, Any]:
        """A batch of cached features (the cache reads whole batches at once)."""
        return self.ds.get_batch([self.indices[i] for i in indices])  # type: ignore[no-any-return]


def subset(ds: Any, indices: Sequence[int]) -> Any:
    """``ds`` restricted to ``indices``; the dataset itself when they are all of it."""
    if list(indices) == list(range(len(ds))):
        return ds
    if hasattr(ds, "get_batch"):
        return FeatureSubset(ds, indices)
    import torch

    return torch.utils.data.Subset(ds, list(indices))


def with_run_settings(ctx: StageContext, seed: int, **trainer: Any) -> StageContext:
    """``ctx`` with another seed and trainer settings, the workspace and the rest unchanged."""
    profile = ctx.profile.model_copy(
        update={"seed": seed, "trainer": ctx.profile.trainer.model_copy(update=trainer)}
    )
    return dataclasses.replace(ctx, profile=profile)


def train_targets(train: Any) -> list[Any]:
    """The target of every sample of a raw split (its ``mask``, else its ``label``)."""
    out = []
    for i in range(len(train)):
        item = train[i]
        target = item["mask"] if "mask" in item else item["label"]
        out.append(np.asarray(target))
    return out


def head_run(
    ctx: StageContext,
    spec: ExperimentSpec,
    root: Path,
    ens: Path,
    bands: list[str],
    datasets: dict[str, Any],
    indices: Sequence[int],
    seed: int,
    lr: float,
    k: int | None = None,
) -> RunOutcome:
    """Train the task's head on a train subset over a frozen ensemble file and score it.

    Args:
        ctx: the resolved profile and workspace (trainer epochs, batch size, head kind).
        spec: the task's experiment.
        root: its folder.
        ens: the ensemble file.
        bands: the task's input bands.
        datasets: its ``{split: dataset}``.
        indices: the train samples of this fraction and seed.
        seed: the run's seed (head initialisation and shuffle).
        lr: the head's learning rate.
        k: keep K specialists with learned gates (``None``: all).
    """
    from eosfm_cli.head_training import train_head

    start = time.perf_counter()
    run_ctx = with_run_settings(ctx, seed, lr=lr)
    model, data, note = _features(run_ctx, spec, root, ens, bands, datasets, k)
    data = {**data, "train": subset(data["train"], indices)}
    folder = ctx.workspace.path("benchmarks", "_scratch")  # named only; nothing is written
    result = train_head(run_ctx, model, spec, data, folder)
    if result is None:  # pragma: no cover - benchmarks run on one process
        raise RuntimeError("a benchmark head run returned no result")
    module = head_module(spec, model, lr=lr, weight_decay=0.0, max_epochs=1)
    monitor = module.monitor.split("/", 1)[1]
    rows = _test_rows(module, spec, data["test"], ctx.profile.trainer.batch_size, module.forward)
    return RunOutcome(
        float(result.metrics["val"][monitor]), rows, time.perf_counter() - start, note
    )


def _features(
    ctx: StageContext,
    spec: ExperimentSpec,
    root: Path,
    ens: Path,
    bands: list[str],
    datasets: dict[str, Any],
    k: int | None,
) -> tuple[Any, dict[str, Any], str]:
    """The generalist of ``ens`` for the task, seeded, and its (cached) split features."""
    import lightning.pytorch as pl

    pl.seed_everything(ctx.profile.seed, workers=True, verbose=False)
    samples = sum(len(d) for d in datasets.values())
    cfg = head_config(ctx, spec, bands, True, k, samples)
    model = build_checked_generalist(ctx, ens, cfg)
    key = feature_key(ctx, model, file_digest(ens), spec.name, root)
    data, note = prepare_features(ctx, model, datasets, key, use_cache=True)
    return model, data, note


def scratch_run(
    ctx: StageContext,
    spec: ExperimentSpec,
    backbone: str,
    bands: list[str],
    datasets: dict[str, Any],
    indices: Sequence[int],
    seed: int,
    lr: float,
    epochs: int,
    folder: Path,
) -> RunOutcome:
    """Train ``backbone`` from random weights on a train subset and score its best epoch.

    The profile's ``model`` section gives the recipe (augmentation, crops, drop path, label
    smoothing, decoder width), as for ``train-specialist``; the statistics are the subset's.

    Args:
        ctx: the resolved profile and workspace (trainer epochs, batch size).
        spec: the task's experiment.
        backbone: the timm backbone (the ensemble's specialists').
        bands: the task's input bands.
        datasets: its ``{split: dataset}``.
        indices: the train samples of this fraction and seed.
        seed: the run's seed.
        lr: the learning rate.
        epochs: the training epochs.
        folder: a scratch folder for the run's checkpoints (removed afterwards).
    """
    import lightning.pytorch as pl
    import torch

    from eosfm_cli.data.statistics import band_statistics
    from eosfm_cli.tasks import task_class
    from eosfm_cli.training.specialist_fit import evaluate_checkpoint, fit_specialist

    start = time.perf_counter()
    run_ctx = with_run_settings(ctx, seed, lr=lr, compile=False, max_epochs=epochs)
    tcfg, m = run_ctx.profile.trainer, run_ctx.profile.model
    train = subset(datasets["train"], indices)
    mean, std = band_statistics(train, list(bands), None, {}, write=False)
    pl.seed_everything(seed, workers=True, verbose=False)
    model = task_class(spec.task)(
        task=spec.task,
        backbone=backbone,
        bands=list(bands),
        mean=mean,
        std=std,
        classes=list(spec.classes),
        loss=spec.loss,
        ignore_index=spec.ignore_index,
        lr=lr,
        weight_decay=tcfg.weight_decay,
        max_epochs=tcfg.max_epochs,
        pretrained=False,
        dataset=spec.name,
        decoder_channels=m.decoder_channels,
        augment=m.augment,
        drop_path_rate=m.drop_path_rate,
        label_smoothing=m.label_smoothing,
        crop_scale=m.crop_scale,
    )
    try:
        fit = fit_specialist(
            model, {"train": train, "val": datasets["val"]}, folder, tcfg, seed, False
        )
        if fit is None:
            raise KeyboardInterrupt
        # loads the best epoch's weights into the model, then scores val
        val = evaluate_checkpoint(model, datasets["val"], "val", fit.best, tcfg, seed)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    monitor = model.monitor.split("/", 1)[1]
    model.eval()
    with torch.inference_mode():
        rows = _test_rows(model, spec, datasets["test"], tcfg.batch_size, model.forward)
    return RunOutcome(float(val[monitor]), rows, time.perf_counter() - start, "from scratch")


def _test_rows(
    module: Any, spec: ExperimentSpec, test: Any, batch_size: int, fn: Any
) -> np.ndarray:
    """Per-sample statistics of ``fn``'s output on the test split, in split order."""
    import torch

    module.eval()
    rows = []
    with torch.inference_mode():
        for batch in feature_loader(test, batch_size, 0, False, 0):
            out = fn(batch)
            rows.append(
                sample_stats(
                    spec.task, out, module.target(batch), len(spec.classes), spec.ignore_index
                )
            )
    return np.concatenate(rows)
