"""Pixel regression (e.g. canopy height): objective and specialist task."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torchmetrics
from torch import Tensor, nn

from eosfm_cli.models.heads import DenseHead
from eosfm_cli.tasks.losses import masked_mse
from eosfm_cli.tasks.segmentation import SegmentationObjective, SegmentationTask


class RegressionObjective(SegmentationObjective):
    """Pixel regression: MSE; RMSE and MAE over valid (finite) target pixels."""

    monitor: ClassVar[str] = "val/rmse"
    monitor_mode: ClassVar[str] = "min"

    def configure_losses(self) -> None:
        """Mean squared error."""
        self.criterion = nn.MSELoss()

    def compute_loss(self, out: Tensor, target: Tensor) -> Tensor:
        """MSE over finite target pixels."""
        return masked_mse(out.squeeze(1), target)

    def make_metrics(self) -> torchmetrics.MetricCollection:
        """RMSE and MAE."""
        return torchmetrics.MetricCollection(
            {
                "rmse": torchmetrics.MeanSquaredError(squared=False),
                "mae": torchmetrics.MeanAbsoluteError(),
            }
        )

    def update_metrics(self, split: str, out: Tensor, target: Tensor) -> None:
        """Only finite target pixels count."""
        pred = out.detach().squeeze(1)
        valid = torch.isfinite(target)
        self.split_metrics(split).update(pred[valid], target[valid])

    def derived_metrics(self, record: dict[str, Any]) -> dict[str, Any]:
        """None beyond RMSE and MAE."""
        return {}


class RegressionTask(SegmentationTask, RegressionObjective):
    """Regression specialist: the segmentation network with one output channel."""

    def build_head(self, channels: list[int]) -> nn.Module:
        """UPerNet with one output channel."""
        return DenseHead(channels, 1, self.hparams["decoder_channels"])
