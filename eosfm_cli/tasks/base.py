"""The template every task follows: hyper-parameters, models, losses, metrics, shared steps.

Built in torchgeo's template-method style: :class:`EOTask`'s constructor saves the calling
subclass constructor's arguments as hyper-parameters, then calls :meth:`~EOTask.configure_models`,
:meth:`~EOTask.configure_losses` and :meth:`~EOTask.configure_metrics`; each task overrides only
what differs. Two kinds of class fill the template in:

- an *objective* per task family (``ClassificationObjective``, ...): the loss, the metrics,
  the monitored metric and the target, shared by the specialist and the downstream head;
- a *network*: :class:`~eosfm_cli.tasks.specialist.SpecialistTask` builds a normaliser, a timm
  encoder and a head; :class:`~eosfm_cli.tasks.heads.HeadTask` installs a given EosFM
  generalist.

A concrete task (``ClassificationTask``, ``ClassificationHeadTask``, ...) lists its network
first and its objective second, so the network's constructor, forward pass and optimiser win,
and the objective supplies the rest.

Metric names (as written to ``metrics.json``): classification ``accuracy``, ``f1_macro``;
multi-label ``map_micro``, ``map_macro``, ``f1_micro``, ``f1_macro``; segmentation ``miou``,
``accuracy``, ``iou_per_class``; change detection ``f1_change``, ``iou_change``, ``accuracy``;
regression ``rmse``, ``mae``; detection ``map``, ``map_50``, ``map_75``, ``mar_100`` (COCO box
mAP, ``-1`` when a split has no ground-truth box).
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import Tensor, nn


def warmup_cosine(opt: torch.optim.Optimizer, max_epochs: int) -> dict[str, Any]:
    """Per-epoch schedule: linear warm-up (5 % of the epochs, at least 1), then cosine decay."""
    epochs = max(1, int(max_epochs))
    warm = max(1, epochs // 20) if epochs > 2 else 0
    if not warm:
        sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    else:
        sched = torch.optim.lr_scheduler.SequentialLR(
            opt,
            [
                torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=warm),
                torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs - warm)),
            ],
            milestones=[warm],
        )
    return {"scheduler": sched, "interval": "epoch"}


class EOTask(pl.LightningModule):
    """Base task: the template constructor, the shared steps and the optimiser.

    Subclasses define their own constructor with their hyper-parameters as arguments (every
    one of them needs ``classes``) and call ``super().__init__()`` last; Lightning reads the
    arguments from the calling frames (see :meth:`save_hyperparameters`).

    Args:
        network: a ready-built network for :meth:`configure_models` to install (the heads'
            generalist); never a hyper-parameter.
    """

    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[str] = "min"
    #: Constructor arguments kept out of the hyper-parameters: modules, not settings.
    ignore: ClassVar[tuple[str, ...]] = ("network",)
    #: The loss module :meth:`configure_losses` sets.
    criterion: nn.Module

    def __init__(self, network: nn.Module | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=list(self.ignore))
        self.num_classes = len(self.hparams["classes"])
        self.epoch_metrics: dict[str, dict[str, Any]] = {}
        self.configure_models(network)
        self.configure_losses()
        self.configure_metrics()

    # Template methods -------------------------------------------------------------------
    def configure_models(self, network: nn.Module | None) -> None:
        """Build (or install) the network."""
        raise TypeError(f"{type(self).__name__} must override configure_models")

    def configure_losses(self) -> None:
        """Set ``self.criterion``."""
        raise TypeError(f"{type(self).__name__} must override configure_losses")

    def configure_metrics(self) -> None:
        """Set one metric collection per split."""
        base = self.make_metrics()
        self.metrics = nn.ModuleDict(
            {split: base.clone(prefix=f"{split}/") for split in ("val", "test")}
        )

    def make_metrics(self) -> torchmetrics.MetricCollection:
        """Return the task's metric collection (unprefixed)."""
        raise TypeError(f"{type(self).__name__} must override make_metrics")

    def split_metrics(self, split: str) -> torchmetrics.MetricCollection:
        """The metric collection of one split."""
        collection = self.metrics[split]
        assert isinstance(collection, torchmetrics.MetricCollection)
        return collection

    # Forward ----------------------------------------------------------------------------
    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Return the task output for a batch."""
        raise TypeError(f"{type(self).__name__} must override forward")

    def target(self, batch: dict[str, Tensor]) -> Tensor:
        """The batch's target tensor."""
        return batch["label"]

    def compute_loss(self, out: Tensor, target: Tensor) -> Tensor:
        """Loss of an output against its target."""
        return self.criterion(out, target)  # type: ignore[no-any-return]

    def update_metrics(self, split: str, out: Tensor, target: Tensor) -> None:
        """Feed one batch into a split's metrics."""
        self.split_metrics(split).update(out.detach(), target)

    def derived_metrics(self, record: dict[str, Any]) -> dict[str, Any]:
        """Metrics computed from others (e.g. mIoU from per-class IoU)."""
        return {}

    # Lightning hooks --------------------------------------------------------------------
    def augment_batch(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The training batch, randomly transformed (here: unchanged)."""
        return batch

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """One optimisation step; square batches are augmented when ``augment`` is on."""
        if (
            self.hparams.get("augment", False)
            and batch["image"].shape[-1] == batch["image"].shape[-2]
        ):
            batch = self.augment_batch(batch)
        out = self(batch)
        loss = self.compute_loss(out, self.target(batch))
        self.log(  # type: ignore[attr-defined]
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=out.shape[0]
        )
        return loss

    def _eval_step(self, split: str, batch: dict[str, Tensor]) -> None:
        out = self(batch)
        target = self.target(batch)
        loss = self.compute_loss(out, target)
        self.log(f"{split}/loss", loss, on_epoch=True, sync_dist=True, batch_size=out.shape[0])
        self.update_metrics(split, out, target)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Validation step."""
        self._eval_step("val", batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Test step."""
        self._eval_step("test", batch)

    def compute_split_metrics(self, split: str) -> dict[str, Any]:
        """Compute and reset a split's metrics: scalars as floats, per-class values as lists."""
        values = self.split_metrics(split).compute()
        self.split_metrics(split).reset()
        record: dict[str, Any] = {}
        for key, value in values.items():
            name = key.split("/", 1)[1]
            if value.numel() == 1:
                record[name] = float(value)
            else:
                record[name] = [float(v) for v in value.flatten()]
        record.update(self.derived_metrics(record))
        return record

    def _eval_epoch_end(self, split: str) -> None:
        record = self.compute_split_metrics(split)
        scalars = {
            f"{split}/{name}": torch.tensor(value)
            for name, value in record.items()
            if isinstance(value, float)
        }
        self.log_dict(scalars, prog_bar=split == "val", sync_dist=False)
        self.epoch_metrics[split] = record

    def on_validation_epoch_end(self) -> None:
        """Compute, log and reset validation metrics."""
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        """Compute, log and reset test metrics."""
        self._eval_epoch_end("test")

    def configure_optimizers(self) -> Any:
        """AdamW; linear warm-up over the first 5 % of epochs (at least one), then cosine."""
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(
            params, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        return {"optimizer": opt, "lr_scheduler": warmup_cosine(opt, self.hparams["max_epochs"])}
