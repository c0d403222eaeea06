"""Semantic segmentation: objective and specialist task."""

from __future__ import annotations

from typing import Any, ClassVar

import torchmetrics
from torch import Tensor, nn

from eosfm_cli.models.heads import DenseHead
from eosfm_cli.tasks.base import EOTask
from eosfm_cli.tasks.losses import dice_loss
from eosfm_cli.tasks.specialist import SpecialistTask


class SegmentationObjective(EOTask):
    """Semantic segmentation: CE or Dice; mIoU and per-class IoU."""

    monitor: ClassVar[str] = "val/miou"
    monitor_mode: ClassVar[str] = "max"

    def configure_losses(self) -> None:
        """CE (``ignore_index`` honoured) or Dice."""
        ignore = self.hparams["ignore_index"]
        self.criterion = nn.CrossEntropyLoss(ignore_index=-100 if ignore is None else ignore)

    def compute_loss(self, out: Tensor, target: Tensor) -> Tensor:
        """CE or Dice, as chosen by ``loss``."""
        if self.hparams["loss"] == "dice":
            return dice_loss(out, target, self.hparams["ignore_index"])
        return self.criterion(out, target)  # type: ignore[no-any-return]

    def make_metrics(self) -> torchmetrics.MetricCollection:
        """Per-class IoU and pixel accuracy."""
        k = self.num_classes
        ignore = self.hparams["ignore_index"]
        mc = torchmetrics.classification
        return torchmetrics.MetricCollection(
            {
                "iou_per_class": mc.MulticlassJaccardIndex(k, average="none", ignore_index=ignore),
                "accuracy": mc.MulticlassAccuracy(k, average="micro", ignore_index=ignore),
            }
        )

    def derived_metrics(self, record: dict[str, Any]) -> dict[str, Any]:
        """MIoU over classes present in predictions or targets."""
        ious = record.get("iou_per_class")
        if ious is None:
            return {}
        return {"miou": float(sum(ious) / len(ious))}

    def target(self, batch: dict[str, Tensor]) -> Tensor:
        """The mask."""
        return batch["mask"]


class SegmentationTask(SpecialistTask, SegmentationObjective):
    """Segmentation specialist: a UPerNet dense head over the encoder's pyramid."""

    def build_head(self, channels: list[int]) -> nn.Module:
        """UPerNet dense head."""
        return DenseHead(channels, self.num_classes, self.hparams["decoder_channels"])

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits ``(B, K, H, W)``."""
        x = batch["image"]
        return self.head(self.encode(x), x.shape[-2:])  # type: ignore[no-any-return]
