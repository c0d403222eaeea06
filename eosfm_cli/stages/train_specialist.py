"""Stage `eosfm train-specialist`: train one specialist encoder on one dataset and band set.

Writes ``specialists/<name>/`` with ``last.ckpt`` (every epoch), ``best.ckpt`` (by the task's
monitor metric), ``metrics.json`` (``{"val": {...}, "test": {...}}`` of the best checkpoint),
``specialist.json`` (a :class:`~eosfm_cli.models.spec.SpecialistSpec`), and ``logs/`` (CSV, plus
TensorBoard when installed). ``specialist.json`` is written last: a folder without it is an
unfinished run, which ``--resume`` continues from ``last.ckpt``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eosfm_cli.artifact_names import artifact_name
from eosfm_cli.console import info
from eosfm_cli.context import StageContext, dataset_root, print_dry_run
from eosfm_cli.data.splits import build_splits
from eosfm_cli.distributed import end_distributed, is_rank_zero
from eosfm_cli.errors import ProfileError, WorkspaceError
from eosfm_cli.summaries import print_metrics, scalar_metrics


@dataclass
class TrainResult:
    """What a finished training run produced.

    Attributes:
        name: the specialist name.
        folder: its workspace folder.
        metrics: ``{"val": {...}, "test": {...}}``.
        spec: the ``specialist.json`` content.
        seconds: wall time of ``fit``.
        epochs: epochs completed.
    """

    name: str
    folder: Path
    metrics: dict[str, dict[str, Any]]
    spec: dict[str, Any]
    seconds: float
    epochs: int
    extra: dict[str, Any] = field(default_factory=dict)


def train_specialist(
    ctx: StageContext,
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainResult | None:
    """Train one specialist.

    Args:
        ctx: the resolved profile (its ``dataset`` section names the experiment).
        name: specialist name; defaults to the experiment name.
        resume: continue from ``last.ckpt``.
        overwrite: replace a finished specialist of the same name.

    Returns:
        The result, or ``None`` for a dry run.
    """
    cfg = ctx.profile.dataset
    if cfg is None:
        raise ProfileError(
            "no dataset to train on",
            where=f"{ctx.source}: dataset",
            hint="pass --dataset NAME (see `eosfm datasets list`)",
        )
    name = artifact_name(name or cfg.name, "--name")
    folder = ctx.workspace.specialist_dir(name)
    rel = f"specialists/{name}"
    if ctx.dry_run:
        root = dataset_root(ctx, cfg.name)
        print_dry_run(
            ctx,
            "train-specialist",
            [f"{root} ({cfg.name})"],
            [
                f"{rel}/last.ckpt",
                f"{rel}/best.ckpt",
                f"{rel}/metrics.json",
                f"{rel}/specialist.json",
                f"{rel}/logs/",
                "manifest.json",
            ],
        )
        return None
    _refuse_to_clobber(folder, name, resume, overwrite)
    spec, datasets, root = build_splits(ctx.profile, ctx.source)

    import torch

    from eosfm_cli.data.statistics import normalisation_statistics
    from eosfm_cli.tasks import task_class
    from eosfm_cli.tasks.specialist import check_backbone
    from eosfm_cli.training.specialist_fit import evaluate_checkpoint, fit_specialist

    check_backbone(ctx.profile.model.backbone, f"{ctx.source}: model.backbone")
    task_cls = task_class(cfg.task)
    with ctx.workspace.stage_run(
        "train-specialist", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as run:
        mean, std, stats_source = normalisation_statistics(
            spec.mean,
            spec.std,
            datasets["train"],
            list(cfg.bands),
            ctx.workspace.path("cache", "stats"),
            {
                "dataset": cfg.name,
                "root": str(root.resolve()),
                "split_seed": ctx.profile.data.split_seed,
                "patch_size": cfg.patch_size,
                "options": cfg.options,
            },
            write=is_rank_zero(),
        )
        torch.manual_seed(ctx.profile.seed)
        import lightning.pytorch as pl

        pl.seed_everything(ctx.profile.seed, workers=True, verbose=False)
        model = task_cls(
            task=cfg.task,
            backbone=ctx.profile.model.backbone,
            bands=list(cfg.bands),
            mean=mean,
            std=std,
            classes=list(cfg.classes or spec.classes),
            loss=cfg.loss,
            ignore_index=cfg.ignore_index,
            lr=ctx.profile.trainer.lr,
            weight_decay=ctx.profile.trainer.weight_decay,
            max_epochs=ctx.profile.trainer.max_epochs,
            pretrained=ctx.profile.model.pretrained,
            decoder_channels=ctx.profile.model.decoder_channels,
            hidden_dim=ctx.profile.model.hidden_dim if ctx.profile.model.head == "mlp" else 0,
            dataset=cfg.name,
            augment=ctx.profile.model.augment,
            drop_path_rate=ctx.profile.model.drop_path_rate,
            label_smoothing=ctx.profile.model.label_smoothing,
            crop_scale=ctx.profile.model.crop_scale,
        )
        if not resume and not overwrite and is_rank_zero():
            for stale in ("last.ckpt", "best.ckpt"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / stale).unlink()
        tcfg, seed = ctx.profile.trainer, ctx.profile.seed
        fit = fit_specialist(model, datasets, folder, tcfg, seed, resume)
        if fit is None:  # interrupted: keep last.ckpt, write nothing final
            raise KeyboardInterrupt
        trainer, seconds = fit.trainer, fit.seconds
        if trainer.world_size > 1:
            end_distributed()
        if not trainer.is_global_zero:
            return None  # rank 0 evaluates and writes; see eosfm_cli.distributed
        metrics = {
            split: evaluate_checkpoint(model, datasets[split], split, fit.best, tcfg, seed)
            for split in ("val", "test")
        }
        from eosfm_cli.io import atomic_write_json
        from eosfm_cli.models.spec import SpecialistSpec
        from eosfm_cli.workspace import package_versions

        sspec = SpecialistSpec(
            name=name,
            backbone=ctx.profile.model.backbone,
            bands=list(cfg.bands),
            mean=mean,
            std=std,
            dataset=cfg.name,
            task=cfg.task,
            classes=list(cfg.classes or spec.classes),
            metrics=scalar_metrics(metrics["val"]),
            versions=package_versions(),
            source="workspace",
        )
        record = sspec.to_dict()
        record.update(
            stats_source=stats_source,
            test_metrics=scalar_metrics(metrics["test"]),
            epochs=trainer.current_epoch,
            best_checkpoint="best.ckpt",
            monitor=model.monitor,
            train_seconds=round(seconds, 2),
        )
        if trainer.is_global_zero:
            atomic_write_json(folder / "metrics.json", metrics)
            atomic_write_json(folder / "specialist.json", record)
        run.outputs = [
            f"{rel}/{f}" for f in ("last.ckpt", "best.ckpt", "metrics.json", "specialist.json")
        ]
        run.inputs = {str(root): "dataset folder"}
        run.extra["metrics"] = {
            "val": scalar_metrics(metrics["val"]),
            "test": scalar_metrics(metrics["test"]),
        }
        run.extra["specialist"] = name
        run.extra["dataset"] = cfg.name
    res = TrainResult(
        name=name,
        folder=folder,
        metrics=metrics,
        spec=record,
        seconds=seconds,
        epochs=trainer.current_epoch,
    )
    _summary(res, ctx)
    return res


def _refuse_to_clobber(folder: Path, name: str, resume: bool, overwrite: bool) -> None:
    """Refuse a resume without ``last.ckpt``, and a retrain of a finished specialist."""
    if resume and not (folder / "last.ckpt").is_file():
        raise WorkspaceError(
            "nothing to resume: no last.ckpt",
            where=str(folder),
            hint="run without --resume to start training",
        )
    if not resume and (folder / "specialist.json").is_file() and not overwrite:
        raise WorkspaceError(
            f"specialist {name!r} is already trained",
            where=str(folder),
            hint="pass --overwrite to retrain it, or --name to train another",
        )


def _summary(res: TrainResult, ctx: StageContext) -> None:
    print_metrics(
        f"specialist [bold]{res.name}[/bold] — {res.epochs} epochs in {res.seconds:.1f} s",
        {"val": res.metrics["val"], "test": res.metrics["test"]},
    )
    info(
        f"[green]wrote[/green] {ctx.workspace.relative(res.folder)}/ "
        "(best.ckpt, last.ckpt, metrics.json, specialist.json)"
    )
