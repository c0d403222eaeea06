"""Stage `eosfm distill`: one student encoder trained to do the work of the whole ensemble.

The teacher is the frozen ensemble file (pruned files too) run on an experiment's images; no
labels are read. The student (``--student``, default ``model.backbone``) takes the
experiment's bands and learns, through a 1x1 projection per pyramid level, the teacher's
concatenated features (:class:`~eosfm_cli.tasks.distill.DistillTask`).

Writes ``students/<name>/`` (``last.ckpt`` every epoch, ``best.ckpt`` by val loss,
``student.json`` with the provenance: teacher sha256, data, losses and held-out feature
cosine) and ``ensembles/<name>.safetensors``: a native ensemble file holding the student as its
one specialist (with its own channels, or with ``--channels teacher`` its learned projections
kept so that its levels have the teacher's channels and scale), which ``fit-head``,
``evaluate`` and ``predict`` use like any ensemble. ``student.json`` is written last;
``--resume`` continues from ``last.ckpt``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eosfm_cli.artifact_names import artifact_name
from eosfm_cli.console import info
from eosfm_cli.context import StageContext, dataset_root, print_dry_run
from eosfm_cli.downstream import ensemble_file
from eosfm_cli.errors import ProfileError, WorkspaceError

#: The files of a finished distillation under ``students/<name>/``.
STUDENT_FILES = ("last.ckpt", "best.ckpt", "student.json")
#: What the student's pyramid is written as: its own channels, or the teacher's.
CHANNEL_CHOICES = ("own", "teacher")


@dataclass
class DistillResult:
    """A finished distillation.

    Attributes:
        name: the student's name.
        output: the student's ensemble file.
        epoch_losses: mean training loss of each epoch.
        val_cosine: held-out mean per-pixel cosine to the teacher, per level.
        record: the ``student.json`` content.
    """

    name: str
    output: Path
    epoch_losses: list[float]
    val_cosine: list[float]
    record: dict[str, Any]


def distill(
    ctx: StageContext,
    ensemble: Path | None = None,
    student: str | None = None,
    name: str | None = None,
    data: list[str] | None = None,
    input_bands: list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    channels: str = "own",
) -> DistillResult | None:
    """Run the `distill` stage.

    Args:
        ctx: the resolved profile (its ``dataset`` section names the images to distil on when
            ``data`` is not given).
        ensemble: the teacher file (default: the workspace's ensemble).
        student: the student's timm backbone (default: ``model.backbone``).
        name: the student's name (default: ``<ensemble name>-student``).
        data: experiments or GeoTIFF folders whose images are mixed (default: the profile's
            dataset).
        input_bands: the student's bands (default: the ensemble's bands every source holds).
        resume: continue from ``students/<name>/last.ckpt``.
        overwrite: replace a finished student of the same name.
        channels: ``own`` (the student's pyramid, smaller heads) or ``teacher`` (its learned
            projections kept, so its levels have the teacher's channels and scale).

    Returns:
        The result, or ``None`` for a dry run (and on a DDP rank other than 0).
    """
    if channels not in CHANNEL_CHOICES:
        raise ProfileError(
            f"unknown --channels {channels!r}",
            where="--channels",
            hint=f"use one of {', '.join(CHANNEL_CHOICES)}",
        )
    cfg = ctx.profile.dataset
    if not data and cfg is None:
        raise ProfileError(
            "no images to distil on",
            where=f"{ctx.source}: dataset",
            hint="pass --data NAME|FOLDER or --dataset NAME (labels are not used)",
        )
    sources_named = list(data) if data else [cfg.name] if cfg else []
    name = artifact_name(name or f"{ctx.profile.ensemble.name}-student", "--name")
    backbone = student or ctx.profile.model.backbone
    folder = ctx.workspace.path("students", name)
    output = ctx.workspace.ensemble_path(name)
    if ctx.dry_run:
        ens_s = str(ensemble or f"ensembles/{ctx.profile.ensemble.name}.safetensors")
        reads = [
            f"{dataset_root(ctx, s) if not Path(s).is_dir() else s} ({s}, images only)"
            for s in sources_named
        ]
        print_dry_run(
            ctx,
            "distill",
            [ens_s, *reads],
            [
                *(f"students/{name}/{f}" for f in STUDENT_FILES),
                f"ensembles/{name}.safetensors",
                "manifest.json",
            ],
        )
        return None
    _refuse_to_clobber(folder, name, resume, overwrite)
    teacher_path = ensemble_file(ctx, ensemble)
    from eosfm_cli.bands import expand_bands
    from eosfm_cli.distill_data import open_sources, student_bands
    from eosfm_cli.models.native_file import read_metadata
    from eosfm_cli.tasks.specialist import check_backbone

    check_backbone(backbone, "--student")
    sources = open_sources(ctx, sources_named)
    teacher_bands = [b for spec in read_metadata(teacher_path) for b in spec.bands]
    requested = expand_bands(input_bands) if input_bands else None
    bands = student_bands(sources, teacher_bands, requested)
    from eosfm_cli.distillation import run_distillation

    with ctx.workspace.stage_run(
        "distill", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as run:
        if not resume:
            for stale in ("last.ckpt", "best.ckpt"):
                with contextlib.suppress(FileNotFoundError):
                    (folder / stale).unlink()
        out = run_distillation(
            ctx, teacher_path, backbone, name, bands, sources, folder, output, resume, channels
        )
        if out is None:
            return None
        run.inputs = {ctx.workspace.relative(teacher_path): out.record["teacher_sha256"]}
        run.outputs = [
            *(f"students/{name}/{f}" for f in STUDENT_FILES),
            f"ensembles/{name}.safetensors",
        ]
        run.extra.update(student=name, data=sources_named, val_cosine=out.val_cosine)
    result = DistillResult(name, output, out.epoch_losses, out.val_cosine, out.record)
    losses = " → ".join(f"{v:.3f}" for v in (result.epoch_losses[:1] + result.epoch_losses[-1:]))
    info(
        f"student [bold]{name}[/bold] ({backbone}, {len(bands)} bands): training loss "
        f"{losses}; held-out feature cosine per level "
        f"{', '.join(f'{c:.3f}' for c in result.val_cosine)}"
    )
    info(f"[green]wrote[/green] {ctx.workspace.relative(output)} and students/{name}/")
    return result


def _refuse_to_clobber(folder: Path, name: str, resume: bool, overwrite: bool) -> None:
    """Refuse a resume without ``last.ckpt``, and a second student of the same name."""
    if resume and not (folder / "last.ckpt").is_file():
        raise WorkspaceError(
            "nothing to resume: no last.ckpt",
            where=str(folder),
            hint="run without --resume to start distilling",
        )
    if not resume and (folder / "student.json").is_file() and not overwrite:
        raise WorkspaceError(
            f"student {name!r} already exists",
            where=str(folder),
            hint="pass --overwrite to distil it again, or --name to distil another",
        )
