"""PNG plots of results: confusion matrices, per-class scores, prediction overlays.

All figures use matplotlib's Agg backend and are written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eosfm_cli.io import atomic_path


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)


def quicklook(image: Any, bands: Sequence[str]) -> np.ndarray:
    """An RGB quicklook ``(H, W, 3)`` in ``[0, 1]`` from the bands nearest red, green, blue.

    Each channel is stretched between its 2nd and 98th percentiles. SAR-only inputs are shown
    as VV, VH, VV/VH.
    """
    from eosfm_cli.bands import get_band

    x = np.asarray(image, dtype=np.float32)
    optical = [
        (i, get_band(b).center_nm) for i, b in enumerate(bands) if get_band(b).center_nm is not None
    ]
    if optical:
        idx = [
            min(optical, key=lambda t: abs((t[1] or 0) - target))[0]
            for target in (660.0, 560.0, 490.0)
        ]
        rgb = x[idx]
    else:
        rgb = np.stack([x[0], x[-1], x[0] - x[-1]])
    out = np.empty_like(rgb)
    for c in range(3):
        lo, hi = np.nanpercentile(rgb[c], [2, 98])
        out[c] = np.clip((rgb[c] - lo) / (hi - lo + 1e-6), 0, 1)
    return np.transpose(out, (1, 2, 0))


def confusion_png(
    path: Path, matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str = "confusion"
) -> None:
    """Row-normalised confusion matrix with counts."""
    plt = _plt()
    m = np.asarray(matrix, dtype=np.float64)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
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
    _save(fig, path)


def per_class_png(path: Path, values: Sequence[float], classes: Sequence[str], label: str) -> None:
    """Horizontal bars of a per-class score."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.3 * len(classes)))
    ax.barh(range(len(values)), values, color="tab:green")
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(label)
    ax.set_title(f"per-class {label} (mean {np.mean(values):.3f})")
    _save(fig, path)


def class_colours(n: int) -> np.ndarray:
    """A fixed qualitative palette of ``n`` RGB colours in ``[0, 1]``."""
    plt = _plt()
    cmap = plt.get_cmap("tab20" if n > 10 else "tab10")
    return np.asarray([cmap(i % cmap.N)[:3] for i in range(n)])


def label_map(mask: Any, n: int) -> np.ndarray:
    """Colour a class-index map (out-of-range values, e.g. ignore, in black)."""
    m = np.asarray(mask)
    colours = class_colours(n)
    out = np.zeros((*m.shape, 3))
    valid = (m >= 0) & (m < n)
    out[valid] = colours[m[valid]]
    return out


def overlays_png(
    path: Path,
    samples: Sequence[tuple[Any, Any, Any]],
    bands: Sequence[str],
    classes: Sequence[str],
    task: str,
) -> None:
    """A few test samples: quicklook, truth and prediction (maps or class names)."""
    plt = _plt()
    if not samples:
        return
    dense = task in ("segmentation", "change_detection")
    cols = 3 if dense else 1
    rows = len(samples)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
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

            def _name(v: Any) -> str:
                t = np.asarray(v)
                if t.ndim == 0:
                    return classes[int(t)] if classes else f"{float(t):.2f}"
                return ",".join(classes[int(i)] for i in np.flatnonzero(t))[:40] or "-"

            ok = "✓" if np.array_equal(np.asarray(truth), np.asarray(pred)) else "✗"
            axes[r][0].set_title(f"{ok} pred {_name(pred)}\ntrue {_name(truth)}", fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    _save(fig, path)


def detections_png(
    path: Path,
    samples: Sequence[tuple[Any, dict[str, Any], dict[str, Any]]],
    bands: Sequence[str],
    classes: Sequence[str],
    min_score: float = 0.5,
) -> None:
    """A few test images with their true boxes (left) and detections (right).

    Args:
        path: the PNG to write.
        samples: ``(image [C, H, W], truth, prediction)``; truth has ``boxes`` and ``labels``,
            the prediction also ``scores``. Boxes are xyxy pixels, labels 0-based.
        bands: the image's band names (for the quicklook).
        classes: class names.
        min_score: detections below this score are not drawn.
    """
    plt = _plt()
    if not samples:
        return
    from matplotlib.patches import Rectangle

    colours = class_colours(max(len(classes), 1))
    fig, axes = plt.subplots(len(samples), 2, figsize=(6.0, 3.0 * len(samples)), squeeze=False)
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
            for j, (box, label) in enumerate(
                zip(np.asarray(boxes), np.asarray(labels), strict=True)
            ):
                x0, y0, x1, y1 = (float(v) for v in box)
                colour = colours[int(label) % len(colours)]
                ax.add_patch(
                    Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1.2, edgecolor=colour)
                )
                text = classes[int(label)] if classes else str(int(label))
                if score is not None:
                    text += f" {score[j]:.2f}"
                ax.text(
                    x0, y0, text, fontsize=6, color="white", backgroundcolor=colour, va="bottom"
                )
            if r == 0:
                ax.set_title("truth" if c == 0 else f"detections (score >= {min_score})")
            ax.axis("off")
    _save(fig, path)
