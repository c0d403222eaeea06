"""The work of `eosfm distill`: build teacher and student, fit, score and write the student.

:func:`run_distillation` is what :mod:`eosfm_cli.stages.distill` calls inside its stage run;
it holds the steps that need torch, so the stage module stays a thin orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.distributed import end_distributed, is_rank_zero

if TYPE_CHECKING:
    from eosfm_cli.context import StageContext


@dataclass
class Distilled:
    """What :func:`run_distillation` produced.

    Attributes:
        record: the ``student.json`` content.
        epoch_losses: mean training loss per epoch.
        val_cosine: held-out feature cosine to the teacher, per level.
    """

    record: dict[str, Any]
    epoch_losses: list[float]
    val_cosine: list[float]


def run_distillation(
    ctx: StageContext,
    teacher_path: Path,
    backbone: str,
    name: str,
    dataset: str,
    datasets: dict[str, Any],
    root: Path,
    folder: Path,
    output: Path,
    resume: bool,
) -> Distilled | None:
    """Distil the ensemble at ``teacher_path`` into a ``backbone`` student.

    Args:
        ctx: the resolved profile and workspace.
        teacher_path: the ensemble file.
        backbone: the student's timm model name.
        name: the student's name.
        dataset: the experiment the images come from.
        datasets: its ``train``/``val`` (and ``test``) splits.
        root: the experiment's folder.
        folder: ``students/<name>/``.
        output: the student's ensemble file.
        resume: continue from ``folder/last.ckpt``.

    Returns:
        The result; ``None`` on a DDP rank other than 0.

    Raises:
        KeyboardInterrupt: when the fit was interrupted (``last.ckpt`` is kept).
    """
    import lightning.pytorch as pl
    import torch

    from eosfm_cli.data.loaders import make_loader
    from eosfm_cli.data.statistics import band_statistics
    from eosfm_cli.downstream import ensemble_options
    from eosfm_cli.io import atomic_write_json, sha256_file
    from eosfm_cli.models.checkpoints import load_checkpoint_file
    from eosfm_cli.models.ensemble import EosFM
    from eosfm_cli.models.native_file import save_ensemble
    from eosfm_cli.models.spec import SpecialistSpec
    from eosfm_cli.tasks.distill import DistillTask
    from eosfm_cli.training.specialist_fit import fit_specialist
    from eosfm_cli.workspace import package_versions

    cfg = ctx.profile.dataset
    assert cfg is not None  # the stage checked it
    bands = list(cfg.bands)
    tcfg = ctx.profile.trainer
    samples = len(datasets["train"]) * tcfg.max_epochs + len(datasets["val"])
    # The target is the concatenated pyramid: a conv1x1 fusion would be untrained weights.
    options = {**ensemble_options(ctx, samples), "fusion": "concat"}
    teacher = EosFM.from_file(teacher_path, bands, freeze=True, **options)
    mean, std = band_statistics(
        datasets["train"],
        bands,
        ctx.workspace.path("cache", "stats"),
        {
            "dataset": dataset,
            "root": str(root.resolve()),
            "split_seed": ctx.profile.data.split_seed,
            "patch_size": cfg.patch_size,
            "options": cfg.options,
        },
        write=is_rank_zero(),
    )
    pl.seed_everything(ctx.profile.seed, workers=True, verbose=False)
    task = DistillTask(
        teacher,
        teacher.out_channels,
        backbone,
        bands,
        mean,
        std,
        lr=tcfg.lr,
        weight_decay=tcfg.weight_decay,
        max_epochs=tcfg.max_epochs,
    )
    fit = fit_specialist(task, datasets, folder, tcfg, ctx.profile.seed, resume)  # type: ignore[arg-type]
    if fit is None:
        raise KeyboardInterrupt
    if fit.trainer.world_size > 1:
        end_distributed()
    if not is_rank_zero():
        return None
    task.load_state_dict(load_checkpoint_file(fit.best)["state_dict"])
    task.eval()
    cosines: list[list[float]] = []
    with torch.no_grad():
        for batch in make_loader(datasets["val"], tcfg.batch_size, 0, False, ctx.profile.seed):
            cosines.append(task.feature_cosine(batch["image"].float()))
    val_cosine = [round(float(sum(c) / len(c)), 4) for c in zip(*cosines, strict=True)]
    teacher_sha = sha256_file(teacher_path)
    losses = [round(v, 5) for v in task.epoch_losses]
    spec = SpecialistSpec(
        name=name,
        backbone=backbone,
        bands=bands,
        mean=mean,
        std=std,
        dataset=dataset,
        task="distillation",
        metrics={f"val/feature_cosine_{i}": c for i, c in enumerate(val_cosine)},
        versions=package_versions(),
        source="distill",
    )
    state = {k: v.detach().clone() for k, v in task.student.state_dict().items()}
    save_ensemble(output, [spec], [state])
    record: dict[str, Any] = spec.to_dict()
    record.update(
        teacher=str(teacher_path),
        teacher_sha256=teacher_sha,
        teacher_specialists=list(teacher.active_names),
        teacher_channels=list(teacher.out_channels),
        student_channels=list(task.student_channels),
        data={"dataset": dataset, "root": str(root), "train": len(datasets["train"])},
        epoch_losses=losses,
        val_feature_cosine=val_cosine,
        epochs=fit.trainer.current_epoch,
        train_seconds=round(fit.seconds, 2),
        ensemble_file=output.name,
    )
    atomic_write_json(folder / "student.json", record)
    return Distilled(record, losses, val_cosine)
