"""Fitting a specialist task: checkpoints, loggers and the Trainer; scoring its best checkpoint.

``last.ckpt`` is written every epoch, ``best.ckpt`` by the task's monitor metric, both
atomically; logs go to ``logs/`` (CSV, plus TensorBoard when installed).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.console import Verbosity, info, warn
from eosfm_cli.data.loaders import make_loader
from eosfm_cli.hardware import resolve_compile, resolve_precision
from eosfm_cli.models.checkpoints import load_checkpoint_file
from eosfm_cli.training.checkpoint_io import atomic_checkpoint_io
from eosfm_cli.training.quiet import quiet_lightning
from eosfm_cli.training.trainer import crash_points_callback, make_trainer

if TYPE_CHECKING:
    from eosfm_cli.profile_schema import TrainerConfig
    from eosfm_cli.tasks import EOTask


@dataclass
class SpecialistFit:
    """A finished ``fit``.

    Attributes:
        trainer: the Lightning Trainer that fitted.
        seconds: wall time of ``fit``.
        best: path of the best checkpoint (``last.ckpt`` when none was kept).
    """

    trainer: Any
    seconds: float
    best: str


def checkpoint_callbacks(folder: Path, model: EOTask, tcfg: TrainerConfig) -> tuple[Any, list[Any]]:
    """The best-checkpoint callback, and every callback of a specialist's Trainer.

    Args:
        folder: the specialist folder, where ``best.ckpt`` and ``last.ckpt`` go.
        model: the task (its ``monitor`` and ``monitor_mode`` pick the best epoch).
        tcfg: the profile's trainer section (``ema_decay``).
    """
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

    best_cb = ModelCheckpoint(
        dirpath=folder,
        filename="best",
        monitor=model.monitor,
        mode=model.monitor_mode,
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    # Lightning's save_last only refreshes last.ckpt when a top-k checkpoint is saved; a
    # second, unmonitored callback writes the latest state at the end of every epoch.
    last_cb = ModelCheckpoint(
        dirpath=folder,
        filename="last",
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    callbacks: list[Any] = [best_cb, last_cb, crash_points_callback()]
    if tcfg.ema_decay is not None:
        # Validation, best.ckpt and the exported encoder use the averaged weights; the
        # checkpoint keeps the raw ones too, so --resume continues the same run.
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks.append(EMAWeightAveraging(decay=tcfg.ema_decay))
    if not Verbosity.quiet:
        callbacks.append(RichProgressBar(leave=False))
    return best_cb, callbacks


def run_loggers(folder: Path) -> list[Any]:
    """CSV logs under ``logs/``, and TensorBoard ones under ``logs/tb`` when it is installed."""
    from lightning.pytorch.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(save_dir=folder, name="logs", version="")]
    with contextlib.suppress(ImportError, ModuleNotFoundError):
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=folder, name="logs", version="tb"))
    return loggers


def fit_specialist(
    model: EOTask,
    datasets: dict[str, Any],
    folder: Path,
    tcfg: TrainerConfig,
    seed: int,
    resume: bool,
) -> SpecialistFit | None:
    """Fit a specialist task on its train split, validating every epoch.

    Args:
        model: the task.
        datasets: ``{"train": ..., "val": ...}`` (more keys are ignored).
        folder: the specialist folder (created).
        tcfg: the profile's trainer section.
        seed: the seed of the training shuffle.
        resume: continue from ``folder/last.ckpt``.

    Returns:
        The fit, or ``None`` when it was interrupted (``last.ckpt`` is kept).
    """
    quiet_lightning(Verbosity.verbose)
    folder.mkdir(parents=True, exist_ok=True)
    bs, nw = tcfg.batch_size, tcfg.num_workers
    train_dl = make_loader(datasets["train"], bs, nw, True, seed)
    val_dl = make_loader(datasets["val"], bs, nw, False, seed)
    precision = resolve_precision(tcfg.precision, tcfg.accelerator)
    compiled = resolve_compile(
        tcfg.compile, planned_steps(len(train_dl), tcfg), str(precision.value)
    )
    if tcfg.precision == "auto" or tcfg.compile == "auto":
        info(
            f"precision {precision.value} ({precision.why}); "
            f"{'compiled' if compiled.value else 'eager'} ({compiled.why})"
        )
    start = time.perf_counter()
    ckpt = str(folder / "last.ckpt") if resume else None
    trainer, best_cb = _trainer(folder, model, tcfg)
    try:
        trainer.fit(_compiled(model) if compiled.value else model, train_dl, val_dl, ckpt_path=ckpt)
    except SystemExit:
        if trainer.interrupted:
            return None
        raise
    except Exception as err:
        if not (compiled.value and _compile_failure(err) and trainer.global_step == 0):
            raise
        # Nothing was trained yet: start again, eager, with a fresh Trainer. Lightning patched
        # the task's forward with the compiled one; put the original back.
        from lightning.pytorch.utilities.compile import to_uncompiled

        warn(f"torch.compile failed ({type(err).__name__}); training runs eager instead")
        to_uncompiled(model)  # restores the forward in place
        trainer, best_cb = _trainer(folder, model, tcfg)
        trainer.fit(model, train_dl, val_dl, ckpt_path=ckpt)
    if trainer.interrupted:
        return None
    seconds = time.perf_counter() - start
    best = best_cb.best_model_path or str(folder / "last.ckpt")
    return SpecialistFit(trainer=trainer, seconds=seconds, best=best)


def planned_steps(batches: int, tcfg: TrainerConfig) -> int:
    """Optimiser steps of a run of ``batches`` training batches per epoch."""
    limit = tcfg.limit_train_batches
    if isinstance(limit, float) and limit <= 1.0:
        batches = int(batches * limit)
    elif limit is not None:
        batches = min(batches, int(limit))
    return max(batches, 1) * tcfg.max_epochs


def _trainer(folder: Path, model: EOTask, tcfg: TrainerConfig) -> tuple[Any, Any]:
    """A fresh Trainer for ``fit_specialist`` and its best-checkpoint callback."""
    best_cb, callbacks = checkpoint_callbacks(folder, model, tcfg)
    trainer = make_trainer(
        tcfg,
        callbacks,
        Verbosity.quiet,
        logger=run_loggers(folder),
        plugins=[atomic_checkpoint_io()],
        default_root_dir=folder,
        limit_train_batches=tcfg.limit_train_batches,
    )
    return trainer, best_cb


def _compiled(model: EOTask) -> Any:
    import torch

    return torch.compile(model)


def _compile_failure(err: BaseException) -> bool:
    """Whether ``err`` (or its cause) comes from torch.compile rather than from training."""
    from torch._dynamo.exc import TorchDynamoException

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, TorchDynamoException):
            return True
        seen = seen.__cause__
    return False


def evaluate_checkpoint(
    model: EOTask, ds: Any, split: str, ckpt: str, tcfg: TrainerConfig, seed: int
) -> dict[str, Any]:
    """Load a checkpoint into the task, evaluate it on one split and return the task's metrics.

    A separate callback-free Trainer runs the evaluation: the fitting Trainer's checkpoint
    callback would otherwise save ``last.ckpt`` again from the restored best weights.

    Args:
        model: the task.
        ds: the split's dataset.
        split: ``val`` or ``test``.
        ckpt: the checkpoint path.
        tcfg: the profile's trainer section (batch size, workers, accelerator, precision).
        seed: the loader's seed.
    """
    import lightning.pytorch as pl

    model.load_state_dict(load_checkpoint_file(ckpt)["state_dict"])
    dl = make_loader(ds, tcfg.batch_size, tcfg.num_workers, False, seed)
    evaluator = pl.Trainer(
        accelerator=tcfg.accelerator,
        devices=1,
        precision=resolve_precision(tcfg.precision, tcfg.accelerator).value,  # type: ignore[arg-type]
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    fn = evaluator.validate if split == "val" else evaluator.test
    fn(model, dl, verbose=False)
    return dict(model.epoch_metrics.get(split, {}))
