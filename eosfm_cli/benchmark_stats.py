"""Scores of a benchmark run from per-sample statistics, and their bootstrap intervals.

A run keeps, for every test sample, the statistics its task's score is computed from
(:func:`sample_stats`): the predicted and true label for classification, the pixel
confusion matrix for segmentation and change detection, the scores and labels for
multi-label, the squared error and count for regression. The score of any set of samples is
then :func:`score` of their rows, so resampling samples is exact, not an approximation.

:func:`bootstrap` draws the seeds and, within each, the test samples with replacement (the
same draws for every model, so paired differences stay paired) and reports the percentile
interval of the mean score over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The score each task kind is ranked by, and whether higher is better.
SCORES = {
    "classification": ("accuracy", True),
    "multilabel": ("map_macro", True),
    "segmentation": ("miou", True),
    "change_detection": ("f1_change", True),
    "regression": ("rmse", False),
}


def score_name(task: str) -> tuple[str, bool]:
    """The score of a task kind and whether higher is better."""
    return SCORES[task]


def sample_stats(
    task: str, out: Any, target: Any, num_classes: int, ignore_index: int | None
) -> np.ndarray:
    """The per-sample statistics of one batch (rows: samples).

    Args:
        task: the task kind.
        out: the head's output (logits, or values for regression).
        target: the batch's targets.
        num_classes: classes of the task.
        ignore_index: label value that is not scored.
    """
    import torch

    out = out.detach().float().cpu()
    target = target.detach().cpu()
    if task == "classification":
        return torch.stack([target.long(), out.argmax(1)], 1).numpy()
    if task == "multilabel":
        return torch.cat([out.sigmoid(), target.float()], 1).numpy()
    if task == "regression":
        err = (out.reshape(out.shape[0], -1) - target.reshape(target.shape[0], -1).float()) ** 2
        count = torch.full((out.shape[0], 1), float(err.shape[1]))
        return torch.cat([err.sum(1, keepdim=True), count], 1).numpy()
    # dense label tasks: a confusion matrix per sample, flattened
    pred = out.argmax(1)
    k = num_classes
    rows = []
    for t, p in zip(target.long(), pred, strict=True):
        keep = (
            t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
        )
        idx = t[keep] * k + p[keep]
        rows.append(torch.bincount(idx.reshape(-1), minlength=k * k).numpy())
    return np.stack(rows)


def score(task: str, rows: np.ndarray) -> float:
    """The task's score of a set of samples, from their statistics' rows."""
    if task == "classification":
        return float((rows[:, 0] == rows[:, 1]).mean())
    if task == "multilabel":
        labels = rows.shape[1] // 2
        return _map_macro(rows[:, :labels], rows[:, labels:])
    if task == "regression":
        return float(np.sqrt(rows[:, 0].sum() / max(rows[:, 1].sum(), 1.0)))
    k = math.isqrt(rows.shape[1])
    conf = rows.sum(0).reshape(k, k).astype(np.float64)
    tp = np.diag(conf)
    fp = conf.sum(0) - tp
    fn = conf.sum(1) - tp
    if task == "change_detection":
        denom = 2 * tp[-1] + fp[-1] + fn[-1]
        return float(2 * tp[-1] / denom) if denom else 0.0
    union = tp + fp + fn
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else 0.0


def _map_macro(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over labels with a positive of the average precision of the scores."""
    aps = []
    for j in range(scores.shape[1]):
        y = labels[:, j] > 0.5
        if not y.any():
            continue
        order = np.argsort(-scores[:, j], kind="stable")
        hits = y[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float((precision * hits).sum() / hits.sum()))
    return float(np.mean(aps)) if aps else 0.0


@dataclass(frozen=True)
class Interval:
    """A mean and its bootstrap percentile interval."""

    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        """The interval as JSON."""
        return {"mean": self.mean, "low": self.low, "high": self.high}


def bootstrap(
    task: str,
    runs: Sequence[Sequence[np.ndarray]],
    *,
    draws: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> list[Interval]:
    """Means over seeds of several models' scores, with paired bootstrap intervals.

    Args:
        task: the task kind.
        runs: ``runs[m][s]``: model ``m``'s per-sample rows on seed ``s``; every model has
            the same seeds and, per seed, the same test samples in the same order.
        draws: bootstrap resamples.
        level: the interval's coverage.
        seed: the resampling seed.

    Returns:
        One interval per model, in order.
    """
    return [_interval(d, level) for d in _draws(task, runs, draws, seed)]


def paired_difference(
    task: str,
    a: Sequence[np.ndarray],
    b: Sequence[np.ndarray],
    *,
    draws: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The mean score difference ``a - b`` and its paired bootstrap interval."""
    da, db = _draws(task, [a, b], draws, seed)
    return _interval(da - db, level)


def _draws(
    task: str, runs: Sequence[Sequence[np.ndarray]], draws: int, seed: int
) -> list[np.ndarray]:
    """Per model: its observed mean score first, then one mean per bootstrap draw."""
    n_seeds = len(runs[0])
    sizes = [len(r) for r in runs[0]]
    for model in runs:
        if [len(r) for r in model] != sizes:
            raise ValueError("every model needs the same seeds and test samples")
    rng = np.random.default_rng(seed)
    # The same draws for every model: which seeds, then which samples of each drawn seed.
    plans = []
    for _ in range(draws):
        chosen = rng.integers(0, n_seeds, n_seeds)
        plans.append([(int(s), rng.integers(0, sizes[s], sizes[s])) for s in chosen])
    out = []
    for model in runs:
        values = np.empty(draws + 1)
        values[0] = np.mean([score(task, r) for r in model])
        for i, plan in enumerate(plans, start=1):
            values[i] = np.mean([score(task, model[s][ix]) for s, ix in plan])
        out.append(values)
    return out


def _interval(values: np.ndarray, level: float) -> Interval:
    """The observed value and the percentile interval of the draws."""
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values[1:], [tail, 100 - tail])
    return Interval(float(values[0]), float(low), float(high))


def verdict(diff: Interval, higher_is_better: bool) -> str:
    """``better``, ``worse`` or ``not distinguishable at this sample size``."""
    if diff.low > 0 or diff.high < 0:
        return "better" if (diff.low > 0) == higher_is_better else "worse"
    return "not distinguishable at this sample size"


def summary_stat(values: Sequence[float]) -> dict[str, Any]:
    """Mean and population std of per-seed values, for the JSON."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "values": arr.tolist()}
