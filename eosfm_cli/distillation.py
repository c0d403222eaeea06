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
    from eosfm_cli.distill_data import ImageSource


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
    bands: list[str],
    sources: list[ImageSource],
    folder: Path,
    output: Path,
    resume: bool,
    channels: str = "own",
) -> Distilled | None:
    """Distil the ensemble at ``teacher_path`` into a ``backbone`` student.

    Args:
        ctx: the resolved profile and workspace.
        teacher_path: the ensemble file.
        backbone: the student's timm model name.
        name: the student's name.
        bands: the student's (and the teacher's) input bands.
        sources: where the images come from (their splits are mixed).
        folder: ``students/<name>/``.
        output: the student's ensemble file.
        resume: continue from ``folder/last.ckpt``.
        channels: ``own`` writes the student's own pyramid; ``teacher`` keeps its projections
            (on the teacher's scale), so its levels have the teacher's channels.

    Returns:
        The result; ``None`` on a DDP rank other than 0.

    Raises:
        KeyboardInterrupt: when the fit was interrupted (``last.ckpt`` is kept).
    """
    import lightning.pytorch as pl
    import torch

    from eosfm_cli.data.loaders import make_loader
    from eosfm_cli.data.statistics import band_statistics
    from eosfm_cli.distill_data import mixed_splits
    from eosfm_cli.downstream import ensemble_options
    from eosfm_cli.io import atomic_write_json, sha256_file
    from eosfm_cli.models.checkpoints import load_checkpoint_file
    from eosfm_cli.models.ensemble import EosFM
    from eosfm_cli.models.native_file import save_ensemble
    from eosfm_cli.models.spec import SpecialistSpec
    from eosfm_cli.tasks.distill import DistillTask
    from eosfm_cli.training.specialist_fit import fit_specialist
    from eosfm_cli.workspace import package_versions

    tcfg = ctx.profile.trainer
    images = mixed_splits(sources, bands)
    samples = len(images["train"]) * tcfg.max_epochs + len(images["val"])
    # The target is the concatenated pyramid: a conv1x1 fusion would be untrained weights.
    options = {**ensemble_options(ctx, samples), "fusion": "concat"}
    teacher = EosFM.from_file(teacher_path, bands, freeze=True, **options)
    teacher_sha = sha256_file(teacher_path)
    data_key = {
        "sources": [[s.name, str(s.root.resolve())] for s in sources],
        "split_seed": ctx.profile.data.split_seed,
        "patch_size": ctx.profile.dataset.patch_size if ctx.profile.dataset else None,
        "options": ctx.profile.dataset.options if ctx.profile.dataset else {},
    }
    mean, std = band_statistics(
        images["train"], bands, ctx.workspace.path("cache", "stats"), data_key, write=is_rank_zero()
    )
    datasets = teacher_inputs(
        ctx, teacher, images, {**data_key, "bands": bands}, teacher_sha, options
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
            cosines.append(task.feature_cosine(batch["image"].float(), batch.get("features")))
    val_cosine = [round(float(sum(c) / len(c)), 4) for c in zip(*cosines, strict=True)]
    losses = [round(v, 5) for v in task.epoch_losses]
    teacher_channels = channels == "teacher"
    spec = SpecialistSpec(
        name=name,
        backbone=backbone,
        projections=list(teacher.out_channels) if teacher_channels else None,
        bands=bands,
        mean=mean,
        std=std,
        dataset="+".join(s.name for s in sources),
        task="distillation",
        metrics={f"val/feature_cosine_{i}": c for i, c in enumerate(val_cosine)},
        versions=package_versions(),
        source="distill",
    )
    if teacher_channels:
        state = task.teacher_scale_state()
    else:
        state = {k: v.detach().clone() for k, v in task.student.state_dict().items()}
    save_ensemble(output, [spec], [state])
    record: dict[str, Any] = spec.to_dict()
    record.update(
        teacher=str(teacher_path),
        teacher_sha256=teacher_sha,
        teacher_specialists=list(teacher.active_names),
        teacher_channels=list(teacher.out_channels),
        student_channels=list(task.student_channels),
        channels=channels,
        data={
            "sources": [{"name": s.name, "root": str(s.root)} for s in sources],
            "train": len(datasets["train"]),
            "val": len(datasets["val"]),
        },
        epoch_losses=losses,
        val_feature_cosine=val_cosine,
        epochs=fit.trainer.current_epoch,
        train_seconds=round(fit.seconds, 2),
        ensemble_file=output.name,
    )
    atomic_write_json(folder / "student.json", record)
    return Distilled(record, losses, val_cosine)


def teacher_inputs(
    ctx: StageContext,
    teacher: Any,
    images: dict[str, Any],
    key: dict[str, Any],
    sha256: str,
    options: dict[str, Any],
) -> dict[str, Any]:
    """The splits with the teacher's features cached beside the images, when within budget.

    Args:
        ctx: the resolved profile and workspace.
        teacher: the frozen ensemble.
        images: ``{split: images}``.
        key: what identifies the images (sources, split seed, bands).
        sha256: the teacher file's sha256.
        options: the teacher's ensemble options (those that change its features count).

    Returns:
        ``{split: dataset}``: images with ``features`` from the cache, or images alone (the
        teacher then runs on every batch); one line says which and why.
    """
    from eosfm_cli.console import info
    from eosfm_cli.distill_data import IndexedImages, WithTeacherFeatures
    from eosfm_cli.head_features import FEATURE_OPTIONS, cache_datasets

    full_key = {
        **key,
        "ensemble_sha256": sha256,
        "purpose": "distill",
        "options": {k: v for k, v in options.items() if k in FEATURE_OPTIONS},
    }
    indexed = {s: IndexedImages(ds) for s, ds in images.items()}
    cached, reason = cache_datasets(ctx, teacher, indexed, full_key)
    info(reason.replace("features", "teacher features", 1))
    if all(cached[s] is indexed[s] for s in images):
        return images
    return {s: WithTeacherFeatures(images[s], cached[s]) for s in images}
