"""Downstream-head tasks: a task family's objective trained over the EosFM generalist.

The batch holds either raw ``image`` (and ``image2``) tensors, run through the ensemble, or
cached per-specialist ``features`` (and ``features2``) from the feature cache; both give the
same logits. Only the head, the gates, and the ensemble's feature normalisers and fusion layers
train, unless the head was built with ``freeze=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from eosfm_cli.tasks.base import EOTask
from eosfm_cli.tasks.change_detection import ChangeDetectionObjective
from eosfm_cli.tasks.classification import ClassificationObjective, MultiLabelObjective
from eosfm_cli.tasks.detection import DetectionObjective
from eosfm_cli.tasks.kinds import unknown_task
from eosfm_cli.tasks.regression import RegressionObjective
from eosfm_cli.tasks.segmentation import SegmentationObjective


class HeadTask(EOTask):
    """The network half of a downstream-head task: the given generalist, its gates and optimiser.

    A concrete head task lists this class before its objective.

    Args:
        generalist: the :class:`~eosfm_cli.models.generalist.Generalist` to train (its head,
            gates and fusion layers); never a hyper-parameter.
        task: the task kind.
        classes: class names.
        loss: ``ce``, ``dice``, ``bce`` or ``mse``.
        ignore_index: label value to ignore.
        lr: AdamW learning rate (the gates get a larger one).
        weight_decay: AdamW weight decay (none for the gates).
        max_epochs: cosine schedule length; the gates warm up over its first half.
        sparsity: weight of the gates' sparsity penalty.
        label_smoothing: label smoothing of cross-entropy.
    """

    ignore: ClassVar[tuple[str, ...]] = ("network", "generalist")
    model: Any

    def __init__(
        self,
        generalist: nn.Module,
        task: str,
        classes: Sequence[str],
        loss: str,
        ignore_index: int | None,
        lr: float,
        weight_decay: float,
        max_epochs: int,
        sparsity: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        classes = list(classes)  # saved as a list: Lightning reads this frame's locals
        super().__init__(generalist)

    def configure_models(self, network: nn.Module | None) -> None:
        """Install the generalist; no encoder is built."""
        if network is None:
            raise TypeError(f"{type(self).__name__} needs its generalist")
        self.model = network
        self.gate_history: list[list[float]] = []

    def forward(self, batch: dict[str, Any]) -> Tensor:
        """Logits from cached features or raw images."""
        if "features" in batch:
            feats = batch["features"]
            size = tuple(int(s) for s in self.hparams.get("size", (0, 0)))
            if not any(size):
                size = _size_from(batch)
            return self.model.head_forward(feats, size, batch.get("features2"))  # type: ignore[no-any-return]
        return self.model(batch["image"], batch.get("image2"))  # type: ignore[no-any-return]

    def target(self, batch: dict[str, Tensor]) -> Tensor:
        """Cached batches carry ``target``; raw ones ``label`` or ``mask``."""
        for key in ("target", "mask", "label"):
            if key in batch:
                return batch[key]
        raise KeyError("batch has no target")

    def with_sparsity(self, loss: Tensor) -> Tensor:
        """The loss plus the gates' sparsity penalty, when there are gates and a weight."""
        gates = getattr(self.model, "gates", None)
        if gates is not None and self.hparams["sparsity"]:
            loss = loss + self.hparams["sparsity"] * gates.penalty()
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Task loss plus the gates' sparsity penalty."""
        out = self(batch)
        loss = self.with_sparsity(self.compute_loss(out, self.target(batch)))
        self.log(  # type: ignore[attr-defined]
            "train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=out.shape[0]
        )
        return loss

    def on_train_epoch_start(self) -> None:
        """Soft gate warm-up over the first half of the epochs (see ``models.selection``)."""
        gates = getattr(self.model, "gates", None)
        if gates is not None:
            epoch = self.trainer.current_epoch
            gates.warmup = epoch < int(self.hparams["max_epochs"]) // 2

    def on_train_epoch_end(self) -> None:
        """Record the gate scores of every epoch."""
        gates = getattr(self.model, "gates", None)
        if gates is not None:
            self.gate_history.append(gates.values())

    def configure_optimizers(self) -> Any:
        """AdamW over the trainable parameters, cosine schedule.

        Gate scores get their own group with a larger learning rate and no weight decay: they
        are a handful of logits that must move by whole units within a short head training.
        """
        gates = getattr(self.model, "gates", None)
        gate_ids = {id(p) for p in gates.parameters()} if gates is not None else set()
        params = [p for p in self.model.parameters() if p.requires_grad and id(p) not in gate_ids]
        groups: list[dict[str, Any]] = [{"params": params}]
        if gates is not None:
            groups.append(
                {
                    "params": list(gates.parameters()),
                    "weight_decay": 0.0,
                    "lr": max(50 * self.hparams["lr"], 0.05),
                }
            )
        opt = torch.optim.AdamW(
            groups, lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, int(self.hparams["max_epochs"]))
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def _size_from(batch: dict[str, Any]) -> tuple[int, int]:
    target = batch.get("target")
    if target is not None and target.dim() >= 3:
        return int(target.shape[-2]), int(target.shape[-1])
    return (0, 0)


class ClassificationHeadTask(HeadTask, ClassificationObjective):
    """Scene classification over the EosFM ensemble."""


class MultiLabelHeadTask(HeadTask, MultiLabelObjective):
    """Multi-label classification over the EosFM ensemble."""


class SegmentationHeadTask(HeadTask, SegmentationObjective):
    """Semantic segmentation over the EosFM ensemble."""


class ChangeDetectionHeadTask(HeadTask, ChangeDetectionObjective):
    """Change detection over the EosFM ensemble (both dates through every specialist)."""


class RegressionHeadTask(HeadTask, RegressionObjective):
    """Pixel regression over the EosFM ensemble."""


class DetectionHeadTask(HeadTask, DetectionObjective):
    """Detection over the EosFM ensemble: the generalist's Faster R-CNN on raw images.

    The images stay raw (the ensemble normalises them per specialist); the detector, the gates
    and the ensemble's feature normalisers train. Scoring is the detection objective's COCO
    mAP; the detector's own forward and losses replace the head task's logits.
    """

    @property
    def detector(self) -> nn.Module:  # type: ignore[override]
        """The generalist's Faster R-CNN."""
        return self.model.head  # type: ignore[no-any-return]

    def detector_images(self, x: Tensor) -> Tensor:
        """Raw values: the ensemble normalises each specialist's input itself."""
        return x

    def forward(self, batch: dict[str, Any]) -> Any:
        """Detections per image (eval mode), 0-based labels."""
        return DetectionObjective.forward(self, batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Detector losses plus the gates' sparsity penalty."""
        return self.with_sparsity(DetectionObjective.training_step(self, batch, batch_idx))


#: The head task of every task kind.
HEAD_TASKS: dict[str, type[HeadTask]] = {
    "classification": ClassificationHeadTask,
    "multilabel": MultiLabelHeadTask,
    "segmentation": SegmentationHeadTask,
    "change_detection": ChangeDetectionHeadTask,
    "regression": RegressionHeadTask,
    "detection": DetectionHeadTask,
}


def head_task(kind: str, generalist: nn.Module, **kwargs: Any) -> HeadTask:
    """Build the downstream-head LightningModule of a task kind.

    Args:
        kind: the task kind.
        generalist: the generalist to train.
        **kwargs: the other arguments of :class:`HeadTask`.

    Raises:
        ProfileError: for a task kind without a head task.
    """
    if kind not in HEAD_TASKS:
        raise unknown_task(kind)
    return HEAD_TASKS[kind](generalist, task=kind, **kwargs)
