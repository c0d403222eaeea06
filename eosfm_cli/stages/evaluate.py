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

from typing import Any

from eosfm_cli.console import console, info
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.errors import WorkspaceError
from eosfm_cli.summaries import scalar_metrics

N_OVERLAYS = 6


def _head_runs(ctx: StageContext, runs: list[str]) -> list[str]:
    base = ctx.workspace.root / "heads"
    available = sorted(p.parent.name for p in base.glob("*/head.json")) if base.is_dir() else []
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
    from eosfm_cli.head_runs import load_head_run

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
    _compare(results)
    return results


def evaluate_run(ctx: StageContext, name: str, loaded: Any = None) -> dict[str, Any]:
    """Evaluate one head run on its test split and write its report.

    Args:
        ctx: the resolved profile and workspace.
        name: the head run.
        loaded: what :func:`~eosfm_cli.head_runs.load_head_run` returned for it
            (loaded here when ``None``).
    """
    import torch
    import torchmetrics

    from eosfm_cli.data.loaders import make_loader
    from eosfm_cli.head_runs import load_head_run
    from eosfm_cli.io import atomic_write_json

    model, _, spec, splits, module = loaded if loaded is not None else load_head_run(ctx, name)
    test = splits["test"]
    module.eval()
    if spec.task == "detection":
        return _evaluate_detection(ctx, name, model, spec, test, module)
    k = len(spec.classes)
    confusion = None
    if spec.task in ("classification", "segmentation", "change_detection"):
        confusion = torchmetrics.classification.MulticlassConfusionMatrix(
            k, ignore_index=spec.ignore_index
        )
    samples: list[tuple[Any, Any, Any]] = []
    loader = make_loader(test, ctx.profile.trainer.batch_size, 0, False, ctx.profile.seed)
    with torch.inference_mode():
        for batch in loader:
            out = model(batch["image"], batch.get("image2"))
            target = module.target(batch)
            module.update_metrics("test", out, target)
            pred = out.argmax(1) if spec.task != "multilabel" else (out.sigmoid() > 0.5).long()
            if confusion is not None:
                confusion.update(pred, target)
            for i in range(out.shape[0]):
                if len(samples) < N_OVERLAYS:
                    samples.append((batch["image"][i], target[i], pred[i]))
    metrics = module.compute_split_metrics("test")
    if confusion is not None:
        metrics["confusion_matrix"] = confusion.compute().long().tolist()
    metrics["classes"] = list(spec.classes)
    metrics["n_test"] = len(test)
    out_dir = ctx.workspace.path("eval", name)
    atomic_write_json(out_dir / "metrics.json", metrics)
    from eosfm_cli import plots

    if confusion is not None:
        plots.confusion_png(
            out_dir / "confusion.png",
            metrics["confusion_matrix"],
            list(spec.classes),
            title=f"{name}: test confusion",
        )
    per_class = metrics.get("iou_per_class") or metrics.get("f1_per_class")
    if per_class:
        label = "IoU" if "iou_per_class" in metrics else "F1"
        plots.per_class_png(out_dir / "per_class.png", per_class, list(spec.classes), label)
    plots.overlays_png(
        out_dir / "overlays.png", samples, model.cfg.input_bands, list(spec.classes), spec.task
    )
    info(
        f"[green]wrote[/green] eval/{name}/ (metrics.json, confusion.png, per_class.png, "
        "overlays.png)"
    )
    return metrics


def _evaluate_detection(
    ctx: StageContext, name: str, model: Any, spec: Any, test: Any, module: Any
) -> dict[str, Any]:
    """COCO box mAP (overall and per class) of a detection head, and its plots.

    Writes ``metrics.json`` (``map``, ``map_50``, ``map_75``, ``mar_100`` and ``ap_per_class``),
    ``per_class.png`` (AP per class) and ``overlays.png`` (true boxes beside detections).
    """
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    from eosfm_cli import plots
    from eosfm_cli.data.loaders import make_loader
    from eosfm_cli.io import atomic_write_json

    per_class = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True)
    samples: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
    loader = make_loader(test, ctx.profile.trainer.batch_size, 0, False, ctx.profile.seed)
    with torch.inference_mode():
        for batch in loader:
            images, targets = module.detector_inputs(batch)
            preds = [{k: d[k] for k in ("boxes", "scores", "labels")} for d in model.detect(images)]
            truth = [{"boxes": t["boxes"], "labels": t["labels"] - 1} for t in targets]
            module.split_metrics("test").update(preds, truth)
            per_class.update(preds, truth)
            for img, t, p in zip(images, truth, preds, strict=True):
                if len(samples) < N_OVERLAYS:
                    samples.append((img, t, p))
    metrics = module.compute_split_metrics("test")
    values = per_class.compute()
    ap = [float("nan")] * len(spec.classes)
    ids = values["classes"].flatten().tolist()
    for cls, v in zip(ids, values["map_per_class"].flatten().tolist(), strict=True):
        if 0 <= int(cls) < len(ap):
            ap[int(cls)] = float(v)
    metrics["ap_per_class"] = ap
    metrics["classes"] = list(spec.classes)
    metrics["n_test"] = len(test)
    out_dir = ctx.workspace.path("eval", name)
    atomic_write_json(out_dir / "metrics.json", metrics)
    plots.per_class_png(
        out_dir / "per_class.png", [0.0 if v != v else v for v in ap], list(spec.classes), "AP"
    )
    plots.detections_png(
        out_dir / "overlays.png", samples, model.cfg.input_bands, list(spec.classes)
    )
    info(f"[green]wrote[/green] eval/{name}/ (metrics.json, per_class.png, overlays.png)")
    return metrics


def _compare(results: dict[str, dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="test metrics", title_justify="left")
    table.add_column("metric")
    for run in results:
        table.add_column(run, justify="right")
    keys = sorted({k for m in results.values() for k in scalar_metrics(m)})
    for key in keys:
        table.add_row(
            key,
            *[
                f"{results[r].get(key, float('nan')):.4f}"
                if isinstance(results[r].get(key), float)
                else "-"
                for r in results
            ],
        )
    console.print(table)
