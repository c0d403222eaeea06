"""Scoring a fitted head: its test-split report, and its metric with specialists zeroed.

``evaluate`` reports a head with :func:`head_test_scores` (every metric of the task, the confusion
matrix for label tasks) or :func:`detection_test_scores` (COCO box mAP overall and per class), each
with a few samples for the overlays. ``select-encoders`` checks a gate ranking with
:func:`score_split`, which scores the head with chosen specialists' features zeroed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: Tasks whose predictions are class labels, scored with a confusion matrix.
CONFUSION_TASKS = ("classification", "segmentation", "change_detection")


def head_test_scores(
    model: Any, spec: Any, module: Any, loader: Iterable[Any], n_samples: int
) -> tuple[dict[str, Any], list[tuple[Any, Any, Any]]]:
    """Every test metric of a non-detection head, and its first samples.

    Args:
        model: the generalist.
        spec: its downstream experiment.
        module: the head task module that holds the metrics.
        loader: the test split's batches.
        n_samples: how many ``(image, target, prediction)`` samples to keep for overlays.

    Returns:
        ``(metrics, samples)``; the metrics hold ``confusion_matrix`` for label tasks.
    """
    import torch
    import torchmetrics

    module.eval()
    confusion = None
    if spec.task in CONFUSION_TASKS:
        confusion = torchmetrics.classification.MulticlassConfusionMatrix(
            len(spec.classes), ignore_index=spec.ignore_index
        )
    samples: list[tuple[Any, Any, Any]] = []
    with torch.inference_mode():
        for batch in loader:
            out = model(batch["image"], batch.get("image2"))
            target = module.target(batch)
            module.update_metrics("test", out, target)
            pred = out.argmax(1) if spec.task != "multilabel" else (out.sigmoid() > 0.5).long()
            if confusion is not None:
                confusion.update(pred, target)
            for i in range(out.shape[0]):
                if len(samples) < n_samples:
                    samples.append((batch["image"][i], target[i], pred[i]))
    metrics: dict[str, Any] = module.compute_split_metrics("test")
    if confusion is not None:
        metrics["confusion_matrix"] = confusion.compute().long().tolist()
    return metrics, samples


def detection_test_scores(
    model: Any, spec: Any, module: Any, loader: Iterable[Any], n_samples: int
) -> tuple[dict[str, Any], list[tuple[Any, dict[str, Any], dict[str, Any]]]]:
    """COCO box mAP of a detection head (overall and per class), and its first samples.

    Args:
        model: the generalist with a detection head.
        spec: its downstream experiment.
        module: the head task module that holds the metrics.
        loader: the test split's batches.
        n_samples: how many ``(image, truth, detections)`` samples to keep for overlays.

    Returns:
        ``(metrics, samples)``; the metrics hold ``map``, ``map_50``, ``map_75``, ``mar_100``
        and ``ap_per_class`` (``nan`` for a class absent from the split).
    """
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    module.eval()
    per_class = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True)
    samples: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
    with torch.inference_mode():
        for batch in loader:
            images, targets = module.detector_inputs(batch)
            preds = [{k: d[k] for k in ("boxes", "scores", "labels")} for d in model.detect(images)]
            truth = [{"boxes": t["boxes"], "labels": t["labels"] - 1} for t in targets]
            module.split_metrics("test").update(preds, truth)
            per_class.update(preds, truth)
            for img, t, p in zip(images, truth, preds, strict=True):
                if len(samples) < n_samples:
                    samples.append((img, t, p))
    metrics: dict[str, Any] = module.compute_split_metrics("test")
    values = per_class.compute()
    ap = [float("nan")] * len(spec.classes)
    ids = values["classes"].flatten().tolist()
    for cls, v in zip(ids, values["map_per_class"].flatten().tolist(), strict=True):
        if 0 <= int(cls) < len(ap):
            ap[int(cls)] = float(v)
    metrics["ap_per_class"] = ap
    return metrics, samples


def score_split(module: Any, loader: Any, drop: frozenset[int] = frozenset()) -> dict[str, Any]:
    """The task's metrics of a head module over a loader, with some specialists zeroed.

    Args:
        module: the head task module (its ``model`` is the generalist).
        loader: batches of cached features or raw samples.
        drop: indices (among the active specialists) whose features are zeroed.
    """
    import torch

    module.eval()
    if module.hparams["task"] == "detection":
        with torch.inference_mode(), module.model.dropping(drop):
            for i, batch in enumerate(loader):
                module.test_step(batch, i)
        return dict(module.compute_split_metrics("test"))
    with torch.inference_mode():
        for batch in loader:
            target = module.target(batch)
            if "features" in batch:
                size = (
                    (int(target.shape[-2]), int(target.shape[-1])) if target.dim() >= 3 else (0, 0)
                )
                out = module.model.head_forward(
                    batch["features"], size, batch.get("features2"), drop
                )
            else:
                x = batch["image"]
                feats = module.model.specialist_features(x)
                feats2 = (
                    module.model.specialist_features(batch["image2"]) if "image2" in batch else None
                )
                out = module.model.head_forward(feats, tuple(x.shape[-2:]), feats2, drop)
            module.update_metrics("test", out, target)
    return dict(module.compute_split_metrics("test"))
