"""A few test samples of a head, drawn beside their truth: maps, class names or boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eosfm_cli.viz.figures import CHART_DPI, draw_boxes, new_figure, save_png
from eosfm_cli.viz.palette import class_colours, label_map
from eosfm_cli.viz.quicklook import quicklook

#: Tasks whose truth and prediction are class maps.
DENSE_TASKS = ("segmentation", "change_detection")


def overlays_png(
    path: Path,
    samples: Sequence[tuple[Any, Any, Any]],
    bands: Sequence[str],
    classes: Sequence[str],
    task: str,
) -> None:
    """A few test samples: quicklook, truth and prediction (maps or class names).

    Args:
        path: the PNG to write (nothing is written without samples).
        samples: ``(image [C, H, W], truth, prediction)`` tensors.
        bands: the image's band names (for the quicklook).
        classes: class names.
        task: the head's task; dense tasks show maps, others the class names.
    """
    if not samples:
        return
    dense = task in DENSE_TASKS
    cols = 3 if dense else 1
    rows = len(samples)
    fig = new_figure(2.6 * cols, 2.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    n = max(len(classes), 1)
    for r, (img, truth, pred) in enumerate(samples):
        axes[r][0].imshow(quicklook(img.numpy(), bands))
        if dense:
            axes[r][1].imshow(label_map(truth.numpy(), n), interpolation="nearest")
            axes[r][2].imshow(label_map(pred.numpy(), n), interpolation="nearest")
            if r == 0:
                for c, t in enumerate(("input", "truth", "prediction")):
                    axes[r][c].set_title(t)
        else:
            ok = "✓" if np.array_equal(np.asarray(truth), np.asarray(pred)) else "✗"
            axes[r][0].set_title(
                f"{ok} pred {_name(pred, classes)}\ntrue {_name(truth, classes)}", fontsize=8
            )
        for ax in axes[r]:
            ax.axis("off")
    save_png(fig, path, dpi=CHART_DPI)


def _name(value: Any, classes: Sequence[str]) -> str:
    """A class target as text: the class, the classes present, or the regressed value."""
    t = np.asarray(value)
    if t.ndim == 0:
        return classes[int(t)] if classes else f"{float(t):.2f}"
    return ",".join(classes[int(i)] for i in np.flatnonzero(t))[:40] or "-"


def detections_png(
    path: Path,
    samples: Sequence[tuple[Any, dict[str, Any], dict[str, Any]]],
    bands: Sequence[str],
    classes: Sequence[str],
    min_score: float = 0.5,
) -> None:
    """A few test images with their true boxes (left) and detections (right).

    Args:
        path: the PNG to write (nothing is written without samples).
        samples: ``(image [C, H, W], truth, prediction)``; truth has ``boxes`` and ``labels``,
            the prediction also ``scores``. Boxes are xyxy pixels, labels 0-based.
        bands: the image's band names (for the quicklook).
        classes: class names.
        min_score: detections below this score are not drawn.
    """
    if not samples:
        return
    colours = class_colours(max(len(classes), 1))
    fig = new_figure(6.0, 3.0 * len(samples))
    axes = fig.subplots(len(samples), 2, squeeze=False)
    for r, (img, truth, pred) in enumerate(samples):
        scores = np.asarray(pred.get("scores", []))
        keep = scores >= min_score
        panels = (
            (truth["boxes"], truth["labels"], None),
            (np.asarray(pred["boxes"])[keep], np.asarray(pred["labels"])[keep], scores[keep]),
        )
        for c, (boxes, labels, score) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(quicklook(np.asarray(img), bands))
            texts = [classes[int(k)] if classes else str(int(k)) for k in np.asarray(labels)]
            if score is not None:
                texts = [f"{t} {s:.2f}" for t, s in zip(texts, score, strict=True)]
            draw_boxes(ax, boxes, labels, colours, texts=texts)
            if r == 0:
                ax.set_title("truth" if c == 0 else f"detections (score >= {min_score})")
            ax.axis("off")
    save_png(fig, path, dpi=CHART_DPI)
