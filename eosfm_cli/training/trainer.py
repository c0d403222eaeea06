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

    from eosfm_cli.hardware import resolve_channels_last, resolve_precision

    precision: Any = resolve_precision(tcfg.precision, tcfg.accelerator).value
    nhwc = resolve_channels_last(tcfg.channels_last, str(precision), tcfg.accelerator)
    if nhwc.value:
        callbacks = [*callbacks, channels_last_callback()]
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


def channels_last_callback() -> Any:
    """A callback that trains in channels-last (NHWC) memory format.

    The task's weights go channels-last when fitting starts and back to contiguous when it
    ends, so saved weights and later stages see ordinary tensors; every 4-D ``image`` (and
    change-detection ``image1``/``image2``) of a training or validation batch is made
    channels-last before the step. The values are unchanged: only the strides differ.
    """
    import lightning.pytorch as pl
    import torch

    def convert(batch: Any) -> None:
        if isinstance(batch, dict):
            for key in ("image", "image1", "image2"):
                x = batch.get(key)
                if isinstance(x, torch.Tensor) and x.dim() == 4:
                    batch[key] = x.contiguous(memory_format=torch.channels_last)

    class ChannelsLast(pl.Callback):
        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            pl_module.to(memory_format=torch.channels_last)

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            pl_module.to(memory_format=torch.contiguous_format)

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            pl_module.to(memory_format=torch.contiguous_format)

        def on_train_batch_start(
            self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
        ) -> None:
            convert(batch)

        def on_validation_batch_start(
            self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
        ) -> None:
            convert(batch)

    return ChannelsLast()


def crash_points_callback() -> Any:
    """A callback with the ``<stage>:epoch<N>`` crash points of :mod:`eosfm_cli.faults`.

    It fires at the start of training epoch N, when the checkpoints of epoch N-1 exist.
    """
    import lightning.pytorch as pl

    class CrashPoints(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            crash_point(f"train:epoch{trainer.current_epoch}")

    return CrashPoints()
