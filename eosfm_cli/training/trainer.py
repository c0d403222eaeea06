"""The Lightning Trainer of the stages that train, and the crash points they share."""

from __future__ import annotations

from typing import Any

from eosfm_cli.faults import crash_point


def make_trainer(tcfg: Any, callbacks: list[Any], quiet: bool, **extra: Any) -> Any:
    """A Lightning Trainer from the profile's ``trainer`` section.

    Args:
        tcfg: the :class:`~eosfm_cli.profiles.TrainerConfig`.
        callbacks: Lightning callbacks.
        quiet: hide the progress bar.
        **extra: further Trainer arguments (logger, plugins, checkpointing...).
    """
    import lightning.pytorch as pl

    from eosfm_cli.hardware import resolve_precision

    precision: Any = resolve_precision(tcfg.precision, tcfg.accelerator).value
    return pl.Trainer(
        max_epochs=tcfg.max_epochs,
        accelerator=tcfg.accelerator,
        devices=tcfg.devices,
        precision=precision,
        strategy=tcfg.strategy,
        num_nodes=tcfg.num_nodes,
        callbacks=callbacks,
        enable_model_summary=False,
        enable_progress_bar=not quiet,
        log_every_n_steps=tcfg.log_every_n_steps,
        num_sanity_val_steps=0,
        **extra,
    )


def crash_points_callback() -> Any:
    """A callback with the ``<stage>:epoch<N>`` crash points of :mod:`eosfm_cli.faults`.

    It fires at the start of training epoch N, when the checkpoints of epoch N-1 exist.
    """
    import lightning.pytorch as pl

    class CrashPoints(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            crash_point(f"train:epoch{trainer.current_epoch}")

    return CrashPoints()
