"""LightningModules for every task a specialist can be trained on.

Built in torchgeo's template-method style: :class:`EOTask` calls :meth:`configure_models`,
:meth:`configure_losses` and :meth:`configure_metrics` in its constructor, and each task
overrides only what differs. The input is raw physical values; the module normalises it with
its own per-band statistics (``normalizer``), so a checkpoint is self-contained. The encoder is
a timm feature pyramid under the ``encoder.`` prefix of the state dict.

Metric names (as written to ``metrics.json``): classification ``accuracy``, ``f1_macro``;
multi-label ``map_micro``, ``map_macro``, ``f1_micro``, ``f1_macro``; segmentation ``miou``,
``accuracy``, ``iou_per_class``; change detection ``f1_change``, ``iou_change``, ``accuracy``;
regression ``rmse``, ``mae``; detection ``map``, ``map_50``, ``map_75``, ``mar_100`` (COCO box
mAP, ``-1`` when a split has no ground-truth box).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from eosfm_cli.models.heads import (
    DenseHead,
    InputNorm,
    PooledHead,
    create_encoder,
    faster_rcnn,
    feature_channels,
    feature_reductions,
)

ENCODER_PREFIX = "encoder."


def dice_loss(
    logits: Tensor, target: Tensor, ignore_index: int | None = None, eps: float = 1.0
) -> Tensor:
    """Multi-class soft Dice loss, averaged over classes, ignoring ``ignore_index`` pixels.

    Args:
        logits: ``(B, K, H, W)`` scores.
        target: ``(B, H, W)`` class indices.
        ignore_index: label value to leave out.
        eps: smoothing term.
    """
    num_classes = logits.shape[1]
    probs = logits.softmax(dim=1)
    valid = torch.ones_like(target, dtype=torch.bool)
    if ignore_index is not None:
        valid = target != ignore_index
    safe = torch.where(valid, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    mask = valid.unsqueeze(1).to(probs.dtype)
    probs = probs * mask
    onehot = onehot * mask
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return 1.0 - ((2 * inter + eps) / (denom + eps)).mean()


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


def random_resized_crop(x: Tensor, min_scale: float) -> Tensor:
    """Crop a random box of each image and resize it back to the image size (bilinear).

    Each box covers a fraction of the image area drawn uniformly in ``[min_scale, 1]``, with an
    aspect ratio drawn log-uniformly in ``[3/4, 4/3]``: scale variety for scene-level tasks
    trained on few samples.

    Args:
        x: ``[B, C, H, W]`` images.
        min_scale: the smallest area fraction.
    """
    import math

    import torch.nn.functional as F

    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        area = h * w * float(torch.empty(1).uniform_(min_scale, 1.0))
        ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3))))
        ch = max(1, min(h, round(math.sqrt(area / ratio))))
        cw = max(1, min(w, round(math.sqrt(area * ratio))))
        top = int(torch.randint(0, h - ch + 1, (1,)))
        left = int(torch.randint(0, w - cw + 1, (1,)))
        crop = x[i : i + 1, :, top : top + ch, left : left + cw]
        out[i] = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out


class EOTask(pl.LightningModule):
    """Base task: a normaliser, a timm encoder, a head, a loss and metrics.

    Args:
        task: the task kind.
        backbone: timm model name.
        bands: canonical band names fed to the model, in order.
        mean: per-band mean of the raw input.
        std: per-band std of the raw input.
        classes: class names.
        loss: ``ce``, ``dice``, ``bce`` or ``mse``.
        ignore_index: label value to ignore.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        max_epochs: cosine schedule length.
        pretrained: load timm weights.
        decoder_channels: UPerNet width.
        hidden_dim: MLP width of pooled heads (0: linear).
        freeze_encoder: freeze the encoder (linear probing).
        dataset: experiment name, recorded in the hyper-parameters.
        augment: random flips and 90-degree rotations of training batches (the same transform
            for the image, its second date and its mask).
        drop_path_rate: stochastic depth of the backbone.
        label_smoothing: label smoothing of cross-entropy.
        crop_scale: smallest area fraction of the random-resized crops applied to training
            images of scene-level tasks (classification, multi-label); 1 turns them off.
    """

    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[str] = "min"

    def __init__(
        self,
        task: str,
        backbone: str,
        bands: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        classes: Sequence[str] = (),
        loss: str = "ce",
        ignore_index: int | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.05,
        max_epochs: int = 10,
        pretrained: bool = False,
        decoder_channels: int = 128,
        hidden_dim: int = 0,
        freeze_encoder: bool = False,
        dataset: str | None = None,
        augment: bool = True,
        drop_path_rate: float = 0.0,
        label_smoothing: float = 0.0,
        crop_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.in_chans = len(bands)
        self.num_classes = len(classes)
        self.epoch_metrics: dict[str, dict[str, Any]] = {}
        self.configure_models()
        self.configure_losses()
        self.configure_metrics()
        if freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad = False

    # Template methods -------------------------------------------------------------------
    def configure_models(self) -> None:
        """Build the normaliser, the encoder and the head."""
        hp = self.hparams
        self.normalizer = InputNorm(hp["mean"], hp["std"])
        self.encoder = create_encoder(
            hp["backbone"],
            self.in_chans,
            hp["pretrained"],
            drop_path_rate=hp.get("drop_path_rate", 0.0),
        )
        self.head = self.build_head(feature_channels(self.encoder))

    def build_head(self, channels: list[int]) -> nn.Module:
        """Return the task head for a pyramid with these channels."""
        raise TypeError(f"{type(self).__name__} must override build_head")

    def configure_losses(self) -> None:
        """Set ``self.criterion``."""
        self.criterion: nn.Module = nn.CrossEntropyLoss(
            label_smoothing=self.hparams.get("label_smoothing", 0.0)
        )

    def configure_metrics(self) -> None:
        """Set one metric collection per split."""
        base = self.make_metrics()
        self.metrics = nn.ModuleDict(
            {split: base.clone(prefix=f"{split}/") for split in ("val", "test")}
        )

    def split_metrics(self, split: str) -> torchmetrics.MetricCollection:
        """The metric collection of one split."""
        collection = self.metrics[split]
        assert isinstance(collection, torchmetrics.MetricCollection)
        return collection

    def make_metrics(self) -> torchmetrics.MetricCollection:
        """Return the task's metric collection (unprefixed)."""
        raise TypeError(f"{type(self).__name__} must override make_metrics")

    # Forward ----------------------------------------------------------------------------
    def encode(self, x: Tensor) -> list[Tensor]:
        """Normalise raw input and return the feature pyramid."""
        return list(self.encoder(self.normalizer(x)))

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

    # Lightning hooks --------------------------------------------------------------------
    def augment_batch(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Apply one random dihedral transform per sample to every spatial tensor."""
        x = batch["image"]
        n = x.shape[0]
        ks = torch.randint(0, 4, (n,)).tolist()
        flips = torch.randint(0, 2, (n,)).tolist()
        out = dict(batch)
        for key in ("image", "image2", "mask"):
            t = batch.get(key)
            if t is None or t.dim() < 3:
                continue
            items = []
            for i in range(n):
                y = torch.rot90(t[i], ks[i], dims=(-2, -1))
                items.append(torch.flip(y, dims=(-1,)) if flips[i] else y)
            out[key] = torch.stack(items)
        scale = float(self.hparams.get("crop_scale", 1.0))
        if scale < 1.0 and "mask" not in batch and "image2" not in batch:
            out["image"] = random_resized_crop(out["image"], scale)
        return out

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """One optimisation step."""
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

    def derived_metrics(self, record: dict[str, Any]) -> dict[str, Any]:
        """Metrics computed from others (e.g. mIoU from per-class IoU)."""
        return {}

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

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The encoder's weights with plain timm keys."""
        return {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}


class ClassificationTask(EOTask):
    """Scene classification: cross-entropy; overall accuracy and macro F1."""

    monitor = "val/accuracy"
    monitor_mode = "max"

    def build_head(self, channels: list[int]) -> nn.Module:
        """Pooled linear (or MLP) head on the deepest level."""
        return PooledHead(channels[-1], self.num_classes, self.hparams["hidden_dim"])

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

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Class logits ``(B, K)``."""
        return self.head(self.encode(batch["image"])[-1])  # type: ignore[no-any-return]


class MultiLabelTask(ClassificationTask):
    """Multi-label classification: BCE; micro/macro mAP and F1."""

    monitor = "val/map_macro"
    monitor_mode = "max"

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


class SegmentationTask(EOTask):
    """Semantic segmentation: UPerNet; CE or Dice; mIoU and per-class IoU."""

    monitor = "val/miou"
    monitor_mode = "max"

    def build_head(self, channels: list[int]) -> nn.Module:
        """UPerNet dense head."""
        return DenseHead(channels, self.num_classes, self.hparams["decoder_channels"])

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

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits ``(B, K, H, W)``."""
        x = batch["image"]
        return self.head(self.encode(x), x.shape[-2:])  # type: ignore[no-any-return]


class ChangeDetectionTask(SegmentationTask):
    """Siamese change detection: one encoder on both dates, features concatenated per level."""

    monitor = "val/f1_change"
    monitor_mode = "max"

    def build_head(self, channels: list[int]) -> nn.Module:
        """UPerNet over doubled channels."""
        return DenseHead(
            [2 * c for c in channels], self.num_classes, self.hparams["decoder_channels"]
        )

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

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """Logits ``(B, K, H, W)`` of change."""
        x1, x2 = batch["image"], batch["image2"]
        both = self.encode(torch.cat([x1, x2], dim=0))
        n = x1.shape[0]
        feats = [torch.cat([f[:n], f[n:]], dim=1) for f in both]
        return self.head(feats, x1.shape[-2:])  # type: ignore[no-any-return]


class RegressionTask(SegmentationTask):
    """Pixel regression (e.g. canopy height): MSE; RMSE and MAE over valid pixels."""

    monitor = "val/rmse"
    monitor_mode = "min"

    def build_head(self, channels: list[int]) -> nn.Module:
        """UPerNet with one output channel."""
        return DenseHead(channels, 1, self.hparams["decoder_channels"])

    def configure_losses(self) -> None:
        """Mean squared error."""
        self.criterion = nn.MSELoss()

    def compute_loss(self, out: Tensor, target: Tensor) -> Tensor:
        """MSE over finite target pixels."""
        pred = out.squeeze(1)
        valid = torch.isfinite(target)
        return F.mse_loss(pred[valid], target[valid])

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


def flip_detection(
    image: Tensor, boxes: Tensor, hflip: bool, vflip: bool, transpose: bool
) -> tuple[Tensor, Tensor]:
    """Apply one of the 8 dihedral transforms to an image ``(C, H, W)`` and its xyxy boxes."""
    boxes = boxes.clone()
    if transpose:
        image = image.transpose(-2, -1)
        boxes = boxes[:, [1, 0, 3, 2]]
    height, width = image.shape[-2:]
    if hflip:
        image = image.flip(-1)
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    if vflip:
        image = image.flip(-2)
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
    return image, boxes


class DetectionTask(EOTask):
    """Object detection: torchvision Faster R-CNN on the specialist's pyramid through an FPN.

    Levels of stride 4 and coarser feed a ``FeaturePyramidNetwork`` of ``decoder_channels``
    channels plus a max-pooled extra level; each level has anchors of 4 and 8 times its stride
    at aspect ratios 0.5, 1 and 2 (16 to 512 px for a stride 4..64 pyramid). Never pretrained:
    only the encoder may load timm weights. Labels are 0-based class indices; the detector's
    class 0 is background, so they shift by one inside. Batches come from
    :func:`~eosfm_cli.data.detection.collate_detection`. Training augments with random flips
    and transposes of each image and its boxes. Validation reports COCO box mAP via
    ``torchmetrics.detection.MeanAveragePrecision`` (needs pycocotools); there is no
    validation loss, torchvision's detector computes losses only in training mode.
    """

    monitor = "val/map"
    monitor_mode = "max"
    #: The MeanAveragePrecision outputs kept in metrics.json.
    reported: ClassVar[tuple[str, ...]] = ("map", "map_50", "map_75", "mar_100")

    def configure_models(self) -> None:
        """Build the normaliser, the encoder and the Faster R-CNN around them."""
        hp = self.hparams
        self.normalizer = InputNorm(hp["mean"], hp["std"])
        self.encoder = create_encoder(
            hp["backbone"],
            self.in_chans,
            hp["pretrained"],
            drop_path_rate=hp.get("drop_path_rate", 0.0),
        )
        self.detector = faster_rcnn(
            self._pyramid,
            feature_channels(self.encoder),
            feature_reductions(self.encoder),
            hp["decoder_channels"],
            self.num_classes,
            self.in_chans,
        )

    def _pyramid(self, x: Tensor) -> list[Tensor]:
        return list(self.encoder(x))

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
        """The batch as the detector sees it: normalised with the specialist's statistics."""
        return self.normalizer(x)  # type: ignore[no-any-return]

    def detector_inputs(
        self, batch: dict[str, Any]
    ) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
        """Normalised images cropped to their true sizes, and 1-based targets."""
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
            flips = torch.randint(0, 2, (len(images), 3)).tolist()
            for i, (h, v, t) in enumerate(flips):
                images[i], boxes = flip_detection(images[i], targets[i]["boxes"], h, v, t)
                targets[i] = {**targets[i], "boxes": boxes}
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
        values = self.split_metrics(split).compute()
        self.split_metrics(split).reset()
        record: dict[str, Any] = {}
        for key, value in values.items():
            name = key.split("/", 1)[1]
            if name in self.reported:
                record[name] = float(value)
        return record


TASKS: dict[str, type[EOTask]] = {
    "classification": ClassificationTask,
    "multilabel": MultiLabelTask,
    "segmentation": SegmentationTask,
    "change_detection": ChangeDetectionTask,
    "regression": RegressionTask,
    "detection": DetectionTask,
}


def task_class(kind: str) -> type[EOTask]:
    """Return the LightningModule class of a task kind."""
    from eosfm_cli.errors import ProfileError

    if kind not in TASKS:
        raise ProfileError(
            f"task {kind!r} cannot train a specialist yet",
            where="dataset.task",
            hint=f"choose one of {', '.join(TASKS)}",
        )
    return TASKS[kind]


class GeneralistMixin:
    """Turns a task class into a downstream-head task over the EosFM ensemble.

    The batch holds either raw ``image`` (and ``image2``) tensors, run through the ensemble, or
    cached per-specialist ``features`` (and ``features2``) from the feature cache; both give the
    same logits. Only the head, the gates, and the ensemble's feature normalisers and fusion
    layers train, unless the head was built with ``freeze=False``.
    """

    hparams: Any
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
        pl.LightningModule.__init__(self)  # type: ignore[arg-type]
        self.save_hyperparameters(  # type: ignore[attr-defined]
            {
                "task": task,
                "classes": list(classes),
                "loss": loss,
                "ignore_index": ignore_index,
                "lr": lr,
                "weight_decay": weight_decay,
                "max_epochs": max_epochs,
                "sparsity": sparsity,
                "label_smoothing": label_smoothing,
            }
        )
        self.model = generalist
        self.num_classes = len(classes)
        self.epoch_metrics: dict[str, dict[str, Any]] = {}
        self.gate_history: list[list[float]] = []
        self.configure_losses()  # type: ignore[attr-defined]
        self.configure_metrics()  # type: ignore[attr-defined]

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

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Task loss plus the gates' sparsity penalty."""
        out = self(batch)  # type: ignore[operator]
        loss = self.compute_loss(out, self.target(batch))  # type: ignore[attr-defined]
        gates = getattr(self.model, "gates", None)
        if gates is not None and self.hparams["sparsity"]:
            loss = loss + self.hparams["sparsity"] * gates.penalty()
        self.log(  # type: ignore[attr-defined]
            "train/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,  # type: ignore[attr-defined]
            batch_size=out.shape[0],
        )
        return loss

    def on_train_epoch_start(self) -> None:
        """Soft gate warm-up over the first half of the epochs (see ``models.selection``)."""
        gates = getattr(self.model, "gates", None)
        if gates is not None:
            epoch = self.trainer.current_epoch  # type: ignore[attr-defined]
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


class DetectionHeadTask(GeneralistMixin, DetectionTask):
    """Detection over the EosFM ensemble: the generalist's Faster R-CNN on raw images.

    The images stay raw (the ensemble normalises them per specialist); the detector, the gates
    and the ensemble's feature normalisers train. Scoring is :class:`DetectionTask`'s COCO mAP.
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
        return DetectionTask.forward(self, batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Detector losses plus the gates' sparsity penalty."""
        loss = DetectionTask.training_step(self, batch, batch_idx)
        gates = getattr(self.model, "gates", None)
        if gates is not None and self.hparams["sparsity"]:
            loss = loss + self.hparams["sparsity"] * gates.penalty()
        return loss


def _size_from(batch: dict[str, Any]) -> tuple[int, int]:
    target = batch.get("target")
    if target is not None and target.dim() >= 3:
        return int(target.shape[-2]), int(target.shape[-1])
    return (0, 0)


def head_task(kind: str, generalist: nn.Module, **kwargs: Any) -> Any:
    """Build the downstream-head LightningModule of a task kind."""
    if kind == "detection":
        return DetectionHeadTask(generalist, task=kind, **kwargs)
    base = task_class(kind)
    cls = type(f"{base.__name__}Head", (GeneralistMixin, base), {})
    return cls(generalist, task=kind, **kwargs)
