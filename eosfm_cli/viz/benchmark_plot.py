"""The benchmark's figure: a task's score against label fraction, one line per model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from eosfm_cli.viz.figures import new_figure, save_png


def benchmark_png(
    path: Path,
    task: str,
    score: str,
    fractions: Sequence[float],
    models: Mapping[str, Sequence[tuple[float, float, float] | None]],
) -> None:
    """Write the score of every model at every label fraction, with its 95% interval.

    Args:
        path: the PNG.
        task: the task's name (the title).
        score: the score's name (the y label).
        fractions: the label fractions, in order.
        models: per model, per fraction ``(mean, low, high)`` or ``None`` where it did not run.
    """
    fig = new_figure(6.4, 4.2)
    ax = fig.add_subplot()
    for name, points in models.items():
        xs = [f for f, p in zip(fractions, points, strict=True) if p is not None]
        got = [p for p in points if p is not None]
        if not got:
            continue
        means = [p[0] for p in got]
        err = [[p[0] - p[1] for p in got], [p[2] - p[0] for p in got]]
        bold = name == "ensemble"
        ax.errorbar(
            xs,
            means,
            yerr=err,
            marker="o",
            capsize=3,
            linewidth=2.2 if bold else 1.2,
            label=name,
        )
    if len(fractions) > 1 and min(fractions) > 0 and max(fractions) / min(fractions) >= 10:
        ax.set_xscale("log")
    ax.set_xticks(list(fractions), [f"{f:g}" for f in fractions])
    ax.set_xlabel("label fraction of the train split")
    ax.set_ylabel(f"test {score} (mean over seeds, 95% CI)")
    ax.set_title(task)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    save_png(fig, path)
