"""Scene classification, single- and multi-label: objectives and specialist tasks."""

from __future__ import annotations

from typing import ClassVar

import torchmetrics
from torch import Tensor, nn

from eosfm_cli.models.heads import PooledHead
from eosfm_cli.tasks.base import EOTask
from eosfm_cli.tasks.specialist import SpecialistTask


class ClassificationObjective(EOTask):
    """Scene classification: cross-entropy (label smoothing); overall accuracy and macro F1."""

    monitor: ClassVar[str] = "val/accuracy"
    monitor_mode: ClassVar[str] = "max"

    def configure_losses(self) -> None:
        """Cross-entropy with the ``label_smoothing`` hyper-parameter."""
        self.criterion = nn.CrossEntropyLoss(
            label_smoothing=self.hparams.get("label_smoothing", 0.0)
        )

    def make_metrics(self) -> torchmetrics.MetricCollection:
        """Overall accuracy, macro F1, per-class F1."""
        k = self.num_classes
        return torchmetrics.MetricCollection(
            {
                "accuracy": torchmetrics.classification.MulticlassAccuracy(k, average="micro"),
                "f1_macro": torchmetrics.classification.MulticlassF1Score(k, average="macro"),
                "f1_per_class": torchmetrics.classification.MulticlassF1Score(k, average="none"),
            }
        )


class MultiLabelObjective(ClassificationObjective):
    """Multi-label classification: BCE; micro/macro mAP and F1."""

    monitor: ClassVar[str] = "val/map_macro"
    monitor_mode: ClassVar[str] = "max"

    def configure_losses(self) -> None:
        """Binary cross-entropy on logits."""
        self.criterion = nn.BCEWithLogitsLoss()

    def make_metrics(self) -> torchmetrics.MetricCollection:
        """Micro/macro average precision and F1."""
        k = self.num_classes
        ml = torchmetrics.classification
        return torchmetrics.MetricCollection(
            {
                "map_micro": ml.MultilabelAveragePrecision(k, average="micro"),
                "map_macro": ml.MultilabelAveragePrecision(k, average="macro"),
                "f1_micro": ml.MultilabelF1Score(k, average="micro"),
                "f1_macro": ml.MultilabelF1Score(k, average="macro"),
            }
        )

    def update_metrics(self, split: str, out: Tensor, target: Tensor) -> None:
        """Metrics take probabilities and integer targets."""
        self.split_metrics(split).update(out.detach().sigmoid(), target.long())


class ClassificationTask(SpecialistTask, ClassificationObjective):
    """Classification specialist: a pooled linear (or MLP) head on the deepest level."""

    def build_head(self, channels: list[int]) -> nn.Module:
        """Pooled linear (or MLP) head on the deepest level."""
        return PooledHead(channels[-1], self.num_classes, self.hparams["hidden_dim"])

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Class logits ``(B, K)``."""
        return self.head(self.encode(batch["image"])[-1])  # type: ignore[no-any-return]


class MultiLabelTask(ClassificationTask, MultiLabelObjective):
    """Multi-label specialist: the classification network with the multi-label objective."""
