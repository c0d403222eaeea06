"""Stage `eosfm train-specialist`: train one specialist encoder on one dataset and band set.

Writes ``specialists/<name>/`` with ``last.ckpt`` (every epoch), ``best.ckpt`` (by the task's
monitor metric), ``metrics.json`` (``{"val": {...}, "test": {...}}`` of the best checkpoint),
``specialist.json`` (a :class:`~eosfm_cli.models.spec.SpecialistSpec`), and ``logs/`` (CSV, plus
TensorBoard when installed). ``specialist.json`` is written last: a folder without it is an
unfinished run, which ``--resume`` continues from ``last.ckpt``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eosfm_cli.artifact_names import artifact_name
from eosfm_cli.console import Verbosity, info
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


def _statistics(
    ctx: StageContext, spec: Any, train_ds: Any, root: Path
) -> tuple[list[float], list[float], str]:
    from eosfm_cli.training import band_statistics

    cfg = ctx.profile.dataset
    assert cfg is not None
    bands = list(cfg.bands)
    if spec.mean and all(b in spec.mean and b in spec.std for b in bands):
        return [spec.mean[b] for b in bands], [spec.std[b] for b in bands], "literature"
    key = {
        "dataset": cfg.name,
        "root": str(root.resolve()),
        "split_seed": ctx.profile.data.split_seed,
        "patch_size": cfg.patch_size,
        "options": cfg.options,
    }
    mean, std = band_statistics(
        train_ds, bands, ctx.workspace.path("cache", "stats"), key, write=is_rank_zero()
    )
    return mean, std, "train split (streaming pass)"


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
    last = folder / "last.ckpt"
    if resume and not last.is_file():
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
    spec, datasets, root = build_splits(ctx.profile, ctx.source)
    check_backbone(ctx.profile.model.backbone, f"{ctx.source}: model.backbone")

    import torch

    from eosfm_cli.tasks import task_class

    task_cls = task_class(cfg.task)
    with ctx.workspace.stage_run(
        "train-specialist", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as run:
        mean, std, stats_source = _statistics(ctx, spec, datasets["train"], root)
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
        result = _fit(ctx, model, datasets, folder, resume)
        if result is None:  # interrupted: keep last.ckpt, write nothing final
            raise KeyboardInterrupt
        trainer, seconds, best = result
        if trainer.world_size > 1:
            end_distributed()
        if not trainer.is_global_zero:
            return None  # rank 0 evaluates and writes; see eosfm_cli.distributed
        metrics = {
            "val": model_metrics(trainer, model, datasets["val"], "val", best, ctx),
            "test": model_metrics(trainer, model, datasets["test"], "test", best, ctx),
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


def check_backbone(backbone: str, where: str) -> None:
    """Refuse a backbone timm does not know, before anything is written.

    Raises:
        ProfileError: naming the key and the closest timm names.
    """
    import difflib

    import timm

    if timm.is_model(backbone):
        return
    close = difflib.get_close_matches(backbone, timm.list_models(), n=3, cutoff=0.6)
    raise ProfileError(
        f"unknown timm backbone {backbone!r}",
        where=where,
        hint=f"did you mean {', '.join(close)}?" if close else "see timm.list_models()",
    )


def _fit(
    ctx: StageContext, model: Any, datasets: dict[str, Any], folder: Path, resume: bool
) -> tuple[Any, float, str] | None:
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from eosfm_cli.training import (
        atomic_checkpoint_io,
        crash_points_callback,
        make_loader,
        make_trainer,
        quiet_lightning,
    )

    quiet_lightning(Verbosity.verbose)
    tcfg = ctx.profile.trainer
    folder.mkdir(parents=True, exist_ok=True)
    best_cb = ModelCheckpoint(
        dirpath=folder,
        filename="best",
        monitor=model.monitor,
        mode=model.monitor_mode,
        save_top_k=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    # Lightning's save_last only refreshes last.ckpt when a top-k checkpoint is saved; a
    # second, unmonitored callback writes the latest state at the end of every epoch.
    last_cb = ModelCheckpoint(
        dirpath=folder,
        filename="last",
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    callbacks: list[Any] = [best_cb, last_cb, crash_points_callback()]
    if ctx.profile.trainer.ema_decay is not None:
        # Validation, best.ckpt and the exported encoder use the averaged weights; the
        # checkpoint keeps the raw ones too, so --resume continues the same run.
        from lightning.pytorch.callbacks import EMAWeightAveraging

        callbacks.append(EMAWeightAveraging(decay=ctx.profile.trainer.ema_decay))
    if not Verbosity.quiet:
        callbacks.append(RichProgressBar(leave=False))
    loggers: list[Any] = [CSVLogger(save_dir=folder, name="logs", version="")]
    with contextlib.suppress(ImportError, ModuleNotFoundError):
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(save_dir=folder, name="logs", version="tb"))
    trainer = make_trainer(
        tcfg,
        callbacks,
        Verbosity.quiet,
        logger=loggers,
        plugins=[atomic_checkpoint_io()],
        default_root_dir=folder,
        limit_train_batches=tcfg.limit_train_batches,
    )
    seed = ctx.profile.seed
    bs, nw = tcfg.batch_size, tcfg.num_workers
    train_dl = make_loader(datasets["train"], bs, nw, True, seed)
    val_dl = make_loader(datasets["val"], bs, nw, False, seed)
    fit_model = model
    if tcfg.compile:
        import torch

        fit_model = torch.compile(model)
    start = time.perf_counter()
    ckpt = str(folder / "last.ckpt") if resume else None
    try:
        trainer.fit(fit_model, train_dl, val_dl, ckpt_path=ckpt)
    except SystemExit:
        if trainer.interrupted:
            return None
        raise
    if trainer.interrupted:
        return None
    seconds = time.perf_counter() - start
    best = best_cb.best_model_path or str(folder / "last.ckpt")
    return trainer, seconds, best


def model_metrics(
    trainer: Any, model: Any, ds: Any, split: str, ckpt: str, ctx: StageContext
) -> dict[str, Any]:
    """Evaluate the best checkpoint on one split and return the task's metrics.

    A separate callback-free Trainer runs the evaluation: the fitting Trainer's checkpoint
    callback would otherwise save ``last.ckpt`` again from the restored best weights.
    """
    import lightning.pytorch as pl

    from eosfm_cli.models.checkpoints import load_checkpoint_file
    from eosfm_cli.training import make_loader

    model.load_state_dict(load_checkpoint_file(ckpt)["state_dict"])
    t = ctx.profile.trainer
    dl = make_loader(ds, t.batch_size, t.num_workers, False, ctx.profile.seed)
    evaluator = pl.Trainer(
        accelerator=t.accelerator,
        devices=1,
        precision=t.precision,  # type: ignore[arg-type]
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    fn = evaluator.validate if split == "val" else evaluator.test
    fn(model, dl, verbose=False)
    return dict(model.epoch_metrics.get(split, {}))


def _summary(res: TrainResult, ctx: StageContext) -> None:
    print_metrics(
        f"specialist [bold]{res.name}[/bold] — {res.epochs} epochs in {res.seconds:.1f} s",
        {"val": res.metrics["val"], "test": res.metrics["test"]},
    )
    info(
        f"[green]wrote[/green] {ctx.workspace.relative(res.folder)}/ "
        "(best.ckpt, last.ckpt, metrics.json, specialist.json)"
    )
