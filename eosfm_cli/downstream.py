"""The downstream task of a stage context: its dataset, its ensemble, and the generalist over both.

A head is fitted (``fit-head``, ``select-encoders``) on a downstream experiment read from the
profile's ``downstream`` section, over an ensemble file read from ``ensemble`` (or
``--ensemble``). This module resolves both from a :class:`~eosfm_cli.context.StageContext` and
builds the :class:`~eosfm_cli.models.generalist.Generalist` they describe, checking on the way
that the file is an ensemble and that the K specialists asked for exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.console import info
from eosfm_cli.context import StageContext, dataset_root
from eosfm_cli.errors import ArtifactError, ProfileError
from eosfm_cli.hardware import Resolved

if TYPE_CHECKING:
    from eosfm_cli.data.spec import ExperimentSpec
    from eosfm_cli.models.generalist import Generalist, HeadConfig


def ensemble_file(ctx: StageContext, ensemble: Path | None) -> Path:
    """The ensemble to use: ``--ensemble`` or the workspace's ``ensembles/<name>.safetensors``.

    Raises:
        ArtifactError: when the file is missing, or is not a readable ensemble.
    """
    path = Path(ensemble) if ensemble else ctx.workspace.ensemble_path(ctx.profile.ensemble.name)
    if not path.is_file():
        raise ArtifactError(
            "ensemble file not found",
            where=str(path),
            hint="run `eosfm export-ensemble` first, or pass --ensemble FILE",
        )
    from eosfm_cli.models.ensemble_file import detect_format
    from eosfm_cli.models.native_file import read_metadata

    # Cheap checks first (no tensor is read): a wrong or truncated file fails in milliseconds.
    if detect_format(path) == "native":
        read_metadata(path)
    return path


def ensemble_options(
    ctx: StageContext, samples: int | None = None, frozen: bool = True
) -> dict[str, Any]:
    """EosFM keyword options from the profile's ``ensemble`` section, ``auto`` resolved.

    Args:
        ctx: the resolved profile and workspace.
        samples: inputs the ensemble will encode in this job (``auto`` compile needs it).
        frozen: whether the specialists stay frozen (precision and compile apply only then).
    """
    from eosfm_cli.hardware import resolve_ensemble_compile, resolve_ensemble_precision

    e = ctx.profile.ensemble
    accelerator = ctx.profile.trainer.accelerator
    precision = resolve_ensemble_precision(e.precision, accelerator)
    compiled = resolve_ensemble_compile(e.compile, samples)
    if not frozen and e.precision == "auto":
        precision = Resolved("fp32", "the specialists train")
    if not frozen and e.compile == "auto":
        compiled = Resolved(False, "the specialists train")
    if e.precision == "auto" or e.compile == "auto":
        info(
            f"frozen ensemble: {precision.value} ({precision.why}); "
            f"{'compiled' if compiled.value else 'eager'} ({compiled.why})"
        )
    return {
        "normalize_features": e.normalize_features,
        "normalization_type": e.normalization_type,
        "fusion": e.fusion,
        "fuse_to_mult": e.fuse_to_mult,
        "ablate": list(e.ablate),
        "min_coverage": e.min_coverage,
        "tolerance_nm": e.substitute_tolerance_nm,
        "force": dict(e.force),
        "compile": compiled.value,
        "precision": precision.value,
    }


def downstream_spec(
    ctx: StageContext, dataset: str | None
) -> tuple[ExperimentSpec, Path, list[str]]:
    """The downstream experiment, its folder and its input bands.

    Args:
        ctx: the resolved profile and workspace.
        dataset: the experiment (``--dataset``); ``downstream.dataset`` when ``None``.

    Raises:
        ProfileError: when no dataset or no folder for it is given.
    """
    from eosfm_cli.bands import expand_bands
    from eosfm_cli.data.registry import get_experiment

    name = dataset or ctx.profile.downstream.dataset
    if not name:
        raise ProfileError(
            "no downstream dataset",
            where=f"{ctx.source}: downstream.dataset",
            hint="set downstream.dataset or pass --dataset NAME",
        )
    spec = get_experiment(name, where=f"{ctx.source}: downstream.dataset")
    root_s = ctx.profile.downstream.root
    root = Path(root_s) if root_s else dataset_root(ctx, name)
    if root is None:
        raise ProfileError(
            "no folder for the downstream dataset",
            where=f"{ctx.source}: downstream.root",
            hint="pass --root DIR",
        )
    bands = ctx.profile.downstream.bands
    profile_dataset = ctx.profile.downstream.dataset
    if (
        bands
        and dataset
        and dataset != profile_dataset
        and "downstream.bands" not in ctx.extra.get("set_keys", ())
    ):
        # The profile's bands were chosen for its own downstream dataset, not this one.
        info(
            f"--dataset {name}: using its bands {','.join(spec.bands)} (the profile's "
            f"downstream.bands are for {profile_dataset}; --set downstream.bands=[...] to choose)"
        )
        bands = None
    return spec, root, expand_bands(bands or list(spec.bands))


def downstream_splits(
    ctx: StageContext, spec: ExperimentSpec, root: Path, bands: list[str]
) -> dict[str, Any]:
    """The checked ``{split: dataset}`` of a downstream experiment, drawn with ``data.split_seed``.

    Args:
        ctx: the resolved profile and workspace.
        spec: the downstream experiment.
        root: its folder.
        bands: the input bands the head reads.
    """
    from eosfm_cli.data.splits import load_splits

    return load_splits(
        spec,
        root,
        bands,
        list(spec.classes),
        seed=ctx.profile.data.split_seed,
        patch_size=spec.patch_size,
        ignore_index=spec.ignore_index,
    )


def head_module(spec: ExperimentSpec, model: Generalist, **hparams: Any) -> Any:
    """The Lightning module that trains or scores a generalist's head on ``spec``.

    Args:
        spec: the downstream experiment (its task, classes, loss and ignored label).
        model: the generalist.
        **hparams: the optimiser settings (``lr``, ``weight_decay``, ``max_epochs``) and any
            task option (``sparsity``).
    """
    from eosfm_cli.tasks import head_task

    return head_task(
        spec.task,
        model,
        classes=list(spec.classes),
        loss=spec.loss,
        ignore_index=spec.ignore_index,
        **hparams,
    )


def head_config(
    ctx: StageContext,
    spec: ExperimentSpec,
    bands: list[str],
    freeze: bool,
    k: int | None = None,
    samples: int | None = None,
) -> HeadConfig:
    """The :class:`~eosfm_cli.models.generalist.HeadConfig` of a head on ``spec``.

    Args:
        ctx: the resolved profile and workspace.
        spec: the downstream experiment.
        bands: its input bands.
        freeze: keep the specialists frozen.
        k: number of specialists to keep (default: ``ensemble.max_encoders``).
        samples: inputs the frozen ensemble will encode (for ``ensemble.compile: auto``).
    """
    from eosfm_cli.models.generalist import HeadConfig

    return HeadConfig(
        task=spec.task,
        classes=list(spec.classes),
        input_bands=bands,
        head=ctx.profile.model.head if ctx.profile.model.head in ("linear", "mlp") else "linear",
        hidden_dim=ctx.profile.model.hidden_dim,
        decoder_channels=ctx.profile.model.decoder_channels,
        k=k if k is not None else ctx.profile.ensemble.max_encoders,
        gate=ctx.profile.downstream.gate,
        freeze=freeze,
        ensemble_options=ensemble_options(ctx, samples, frozen=freeze),
    )


def build_checked_generalist(ctx: StageContext, ens: Path, cfg: HeadConfig) -> Generalist:
    """Build the generalist of ``cfg`` over the ensemble ``ens``, checking that K is possible.

    Raises:
        ProfileError: when K exceeds the specialists of the file, or those that can use the
            input bands.
    """
    from eosfm_cli.models.generalist import build_generalist

    if cfg.k is not None:
        from eosfm_cli.models.ensemble_file import detect_format, load_any
        from eosfm_cli.models.native_file import read_metadata

        specs = (
            read_metadata(ens)
            if detect_format(ens) == "native"
            else [e[0] for e in load_any(ens)[0]]
        )
        if cfg.k > len(specs):
            raise ProfileError(
                f"cannot keep K={cfg.k} specialists: the ensemble has {len(specs)}",
                where=f"{ctx.source}: ensemble.max_encoders",
                hint=f"choose K between 1 and {len(specs)}",
            )
    model = build_generalist(ens, cfg)
    if cfg.k is not None and cfg.k > len(model.active_names):
        raise ProfileError(
            f"cannot keep K={cfg.k} specialists: only {len(model.active_names)} can use the "
            f"bands {','.join(cfg.input_bands)}",
            where=f"{ctx.source}: ensemble.max_encoders",
            hint=f"choose K between 1 and {len(model.active_names)}",
        )
    return model
