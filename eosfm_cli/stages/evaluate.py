"""Stage `eosfm evaluate`: run fitted heads on their test split and report.

For each head run, writes ``eval/<run>/``:

- ``metrics.json``: every metric of the task (per-class IoU or F1 included) and the confusion
  matrix (classification and segmentation);
- ``confusion.png``: the row-normalised confusion matrix;
- ``per_class.png``: per-class IoU (dense tasks) or F1 (classification);
- ``overlays.png``: a few test samples: the input quicklook, the truth and the prediction.

A detection head writes COCO box ``map``, ``map_50``, ``map_75``, ``mar_100`` and
``ap_per_class`` instead, ``per_class.png`` with AP per class, and ``overlays.png`` with the true
boxes beside the detections.

With several runs, a table compares them side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eosfm_cli.console import info
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.errors import WorkspaceError
from eosfm_cli.head_runs import head_run_names, load_head_run
from eosfm_cli.summaries import print_metrics, scalar_metrics

N_OVERLAYS = 6


def _head_runs(ctx: StageContext, runs: list[str]) -> list[str]:
    """The runs to evaluate: those named (all must exist), else every head run."""
    base = ctx.workspace.root / "heads"
    available = head_run_names(ctx)
    if not runs:
        if not available:
            raise WorkspaceError(
                "no head runs to evaluate", where=str(base), hint="fit one with `eosfm fit-head`"
            )
        return available
    missing = [r for r in runs if r not in available]
    if missing:
        raise WorkspaceError(
            f"no head run named {', '.join(missing)}",
            where=str(base),
            hint=f"available: {', '.join(available) or 'none'}",
        )
    return runs


def evaluate(ctx: StageContext, runs: list[str] | None = None) -> dict[str, dict[str, Any]] | None:
    """Run the `evaluate` stage.

    Args:
        ctx: the resolved profile and workspace.
        runs: head runs to evaluate (default: all of them).

    Returns:
        Test metrics per run, or ``None`` for a dry run.
    """
    names = _head_runs(ctx, list(runs or []))
    if ctx.dry_run:
        print_dry_run(
            ctx,
            "evaluate",
            [f"heads/{r}/" for r in names],
            [
                f"eval/{r}/{f}"
                for r in names
                for f in ("metrics.json", "confusion.png", "per_class.png", "overlays.png")
            ],
        )
        return None
    # Every head is loaded (and checked against its ensemble) before the workspace is touched.
    loaded = {name: load_head_run(ctx, name) for name in names}
    results: dict[str, dict[str, Any]] = {}
    with ctx.workspace.stage_run(
        "evaluate", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        for name in names:
            results[name] = evaluate_run(ctx, name, loaded.pop(name))
        record.outputs = [f"eval/{r}/metrics.json" for r in names]
        record.extra["metrics"] = {r: scalar_metrics(m) for r, m in results.items()}
    print_metrics("test metrics", results, missing="-")
    return results


def evaluate_run(ctx: StageContext, name: str, loaded: Any = None) -> dict[str, Any]:
    """Evaluate one head run on its test split and write its report.

    Args:
        ctx: the resolved profile and workspace.
        name: the head run.
        loaded: what :func:`~eosfm_cli.head_runs.load_head_run` returned for it
            (loaded here when ``None``).
    """
    from eosfm_cli.data.loaders import make_loader
    from eosfm_cli.head_scoring import detection_test_scores, head_test_scores
    from eosfm_cli.io import atomic_write_json

    model, _, spec, splits, module = loaded if loaded is not None else load_head_run(ctx, name)
    test = splits["test"]
    loader = make_loader(test, ctx.profile.trainer.batch_size, 0, False, ctx.profile.seed)
    detection = spec.task == "detection"
    scores = detection_test_scores if detection else head_test_scores
    metrics, samples = scores(model, spec, module, loader, N_OVERLAYS)
    metrics["classes"] = list(spec.classes)
    metrics["n_test"] = len(test)
    out_dir = ctx.workspace.path("eval", name)
    atomic_write_json(out_dir / "metrics.json", metrics)
    if detection:
        _detection_plots(out_dir, metrics, samples, model.cfg.input_bands, list(spec.classes))
        info(f"[green]wrote[/green] eval/{name}/ (metrics.json, per_class.png, overlays.png)")
    else:
        _plots(out_dir, name, metrics, samples, model.cfg.input_bands, spec)
        info(
            f"[green]wrote[/green] eval/{name}/ (metrics.json, confusion.png, per_class.png, "
            "overlays.png)"
        )
    return metrics


def _plots(
    out_dir: Path,
    name: str,
    metrics: dict[str, Any],
    samples: list[Any],
    bands: list[str],
    spec: Any,
) -> None:
    """``confusion.png`` (label tasks), ``per_class.png`` (IoU or F1) and ``overlays.png``."""
    from eosfm_cli.viz.metrics import confusion_png, per_class_png
    from eosfm_cli.viz.samples import overlays_png

    if "confusion_matrix" in metrics:
        confusion_png(
            out_dir / "confusion.png",
            metrics["confusion_matrix"],
            list(spec.classes),
            title=f"{name}: test confusion",
        )
    per_class = metrics.get("iou_per_class") or metrics.get("f1_per_class")
    if per_class:
        label = "IoU" if "iou_per_class" in metrics else "F1"
        per_class_png(out_dir / "per_class.png", per_class, list(spec.classes), label)
    overlays_png(out_dir / "overlays.png", samples, bands, list(spec.classes), spec.task)


def _detection_plots(
    out_dir: Path, metrics: dict[str, Any], samples: list[Any], bands: list[str], classes: list[str]
) -> None:
    """``per_class.png`` (AP per class, an absent class at 0) and ``overlays.png`` (boxes)."""
    from eosfm_cli.viz.metrics import per_class_png
    from eosfm_cli.viz.samples import detections_png

    ap = metrics["ap_per_class"]
    per_class_png(out_dir / "per_class.png", [0.0 if v != v else v for v in ap], classes, "AP")
    detections_png(out_dir / "overlays.png", samples, bands, classes)
