"""Object detection: the COCO-mAP objective and the Faster R-CNN specialist task."""

from __future__ import annotations

from typing import Any, ClassVar

import torchmetrics
from torch import Tensor, nn

from eosfm_cli.models.heads import faster_rcnn, feature_channels, feature_reductions
from eosfm_cli.tasks.augment import random_detection_flips
from eosfm_cli.tasks.base import EOTask
from eosfm_cli.tasks.specialist import SpecialistTask


class DetectionObjective(EOTask):
    """Object detection through a torchvision detector held as ``self.detector``.

    Labels are 0-based class indices; the detector's class 0 is background, so they shift by
    one inside. Batches come from :func:`~eosfm_cli.data.detection.collate_detection`. Training
    augments (``augment``) with random flips and transposes of each image and its boxes.
    Validation reports COCO box mAP via ``torchmetrics.detection.MeanAveragePrecision`` (needs
    pycocotools); there is no validation loss, torchvision's detector computes losses only in
    training mode. The network defines :meth:`detector_images`.
    """

    monitor: ClassVar[str] = "val/map"
    monitor_mode: ClassVar[str] = "max"
    #: The MeanAveragePrecision outputs kept in metrics.json.
    reported: ClassVar[tuple[str, ...]] = ("map", "map_50", "map_75", "mar_100")
    #: The torchvision detector (images and targets in, losses or detections out).
    detector: nn.Module

    def configure_losses(self) -> None:
        """The detector computes its own RPN and box losses."""
        self.criterion = nn.Identity()

    def make_metrics(self) -> torchmetrics.MetricCollection:
        """COCO box mAP (pycocotools backend)."""
        from torchmetrics.detection import MeanAveragePrecision

        return torchmetrics.MetricCollection(
            {"map": MeanAveragePrecision(box_format="xyxy", iou_type="bbox")}
        )

    def detector_images(self, x: Tensor) -> Tensor:
        """The batch as the detector sees it."""
        raise TypeError(f"{type(self).__name__} must override detector_images")

    def detector_inputs(
        self, batch: dict[str, Any]
    ) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
        """Detector images cropped to their true sizes, and 1-based targets."""
        x = self.detector_images(batch["image"])
        sizes = batch.get("size")
        images, targets = [], []
        for i in range(x.shape[0]):
            h, w = (int(v) for v in sizes[i]) if sizes is not None else x.shape[-2:]
            images.append(x[i, :, :h, :w])
            targets.append({"boxes": batch["boxes"][i], "labels": batch["labels"][i] + 1})
        return images, targets

    def forward(self, batch: dict[str, Any]) -> Any:
        """Detections per image (eval mode): ``boxes`` xyxy, ``scores``, 0-based ``labels``."""
        images, _ = self.detector_inputs(batch)
        out = self.detector(images)
        return [{**d, "labels": d["labels"] - 1} for d in out]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Sum of the RPN and box-head losses."""
        images, targets = self.detector_inputs(batch)
        if self.hparams.get("augment", False):
            images, targets = random_detection_flips(images, targets)
        losses = self.detector(images, targets)
        loss: Tensor = sum(losses.values())  # type: ignore[assignment]
        self.log(  # type: ignore[attr-defined]
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(images)
        )
        return loss

    def _eval_step(self, split: str, batch: dict[str, Any]) -> None:
        images, targets = self.detector_inputs(batch)
        preds = self.detector(images)
        self.split_metrics(split).update(
            [{k: d[k].detach() for k in ("boxes", "scores", "labels")} for d in preds], targets
        )

    def compute_split_metrics(self, split: str) -> dict[str, Any]:
        """Compute and reset a split's mAP; only :attr:`reported` values are kept."""
        record = super().compute_split_metrics(split)
        return {name: value for name, value in record.items() if name in self.reported}


class DetectionTask(SpecialistTask, DetectionObjective):
    """Detection specialist: torchvision Faster R-CNN on the specialist's pyramid through an FPN.

    Levels of stride 4 and coarser feed a ``FeaturePyramidNetwork`` of ``decoder_channels``
    channels plus a max-pooled extra level; each level has anchors of 4 and 8 times its stride
    at aspect ratios 0.5, 1 and 2 (16 to 512 px for a stride 4..64 pyramid). Never pretrained:
    only the encoder may load timm weights.
    """

    def build_network(self) -> None:
        """Build the normaliser, the encoder and the Faster R-CNN around them."""
        self.build_encoder()
        self.detector = faster_rcnn(
            self._pyramid,
            feature_channels(self.encoder),
            feature_reductions(self.encoder),
            self.hparams["decoder_channels"],
            self.num_classes,
            self.in_chans,
        )

    def _pyramid(self, x: Tensor) -> list[Tensor]:
        return list(self.encoder(x))

    def detector_images(self, x: Tensor) -> Tensor:
        """The batch normalised with the specialist's statistics."""
        return self.normalizer(x)  # type: ignore[no-any-return]
