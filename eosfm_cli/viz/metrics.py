"""Charts of a head's test scores: the confusion matrix and per-class score bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eosfm_cli.viz.figures import CHART_DPI, new_figure, save_png


def confusion_png(
    path: Path, matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "confusion"
) -> None:
    """Row-normalised confusion matrix with counts.

    Args:
        path: the PNG to write.
        matrix: counts, true class by row, predicted class by column.
        classes: class names.
        title: the chart's title.
    """
    m = np.asarray(matrix, dtype=np.float64)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig = new_figure(1.0 + 0.55 * n, 0.8 + 0.5 * n)
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(m[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    save_png(fig, path, dpi=CHART_DPI)


def per_class_png(path: Path, values: Sequence[float], classes: Sequence[str], label: str) -> None:
    """Horizontal bars of a per-class score in ``[0, 1]``.

    Args:
        path: the PNG to write.
        values: the score of each class.
        classes: class names.
        label: the score's name (``IoU``, ``F1``, ``AP``).
    """
    fig = new_figure(6, 0.6 + 0.3 * len(classes))
    ax = fig.subplots()
    ax.barh(range(len(values)), values, color="tab:green")
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(label)
    ax.set_title(f"per-class {label} (mean {np.mean(values):.3f})")
    save_png(fig, path, dpi=CHART_DPI)
