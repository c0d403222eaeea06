"""Siamese change detection: objective and specialist task."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torchmetrics
from torch import Tensor, nn

from eosfm_cli.models.heads import DenseHead
from eosfm_cli.tasks.segmentation import SegmentationObjective
from eosfm_cli.tasks.specialist import SpecialistTask


class ChangeDetectionObjective(SegmentationObjective):
    """Change detection: segmentation's losses; F1 and IoU of the change class (the last)."""

    monitor: ClassVar[str] = "val/f1_change"
    monitor_mode: ClassVar[str] = "max"

    def make_metrics(self) -> torchmetrics.MetricCollection:
        """F1 and IoU per class; the change class is reported separately."""
        k = self.num_classes
        ignore = self.hparams["ignore_index"]
        mc = torchmetrics.classification
        return torchmetrics.MetricCollection(
            {
                "f1_per_class": mc.MulticlassF1Score(k, average="none", ignore_index=ignore),
                "iou_per_class": mc.MulticlassJaccardIndex(k, average="none", ignore_index=ignore),
                "accuracy": mc.MulticlassAccuracy(k, average="micro", ignore_index=ignore),
            }
        )

    def derived_metrics(self, record: dict[str, Any]) -> dict[str, Any]:
        """F1 and IoU of the change class (the last class)."""
        out = super().derived_metrics(record)
        out["f1_change"] = float(record["f1_per_class"][-1])
        out["iou_change"] = float(record["iou_per_class"][-1])
        return out


class ChangeDetectionTask(SpecialistTask, ChangeDetectionObjective):
    """Change-detection specialist: one encoder on both dates, features concatenated per level."""

    def build_head(self, channels: list[int]) -> nn.Module:
        """UPerNet over doubled channels."""
        return DenseHead(
            [2 * c for c in channels], self.num_classes, self.hparams["decoder_channels"]
        )

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits ``(B, K, H, W)`` of change."""
        x1, x2 = batch["image"], batch["image2"]
        both = self.encode(torch.cat([x1, x2], dim=0))
        n = x1.shape[0]
        feats = [torch.cat([f[:n], f[n:]], dim=1) for f in both]
        return self.head(feats, x1.shape[-2:])  # type: ignore[no-any-return]
