"""Stage `eosfm fit-head`: train a light head on a downstream task over the frozen ensemble.

The EosFM encoder is built from the workspace ensemble (or ``--ensemble FILE``) for the
downstream dataset's bands, so band adaptation happens by name. With frozen specialists and the
cache enabled, features are computed once per sample and read back from ``cache/features/``
(see :mod:`eosfm_cli.features`); otherwise they stream, with one line saying why. With
``ensemble.max_encoders: K`` the head learns one gate per specialist (``downstream.gate``).

Outputs go to ``heads/<run>/``: ``head.safetensors``, ``head.json``, ``metrics.json`` (val and
test of the best epoch), and ``gates.json`` (gate scores per epoch).
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eosfm_cli.console import Verbosity, console, info
from eosfm_cli.context import StageContext, dataset_root, print_dry_run
from eosfm_cli.distributed import end_distributed, is_rank_zero
from eosfm_cli.errors import ArtifactError, ProfileError, WorkspaceError
from eosfm_cli.profiles import artifact_name
from eosfm_cli.summaries import print_metrics, scalar_metrics


@dataclass
class HeadResult:
    """What a fit-head run produced."""

    run: str
    folder: Path
    metrics: dict[str, dict[str, Any]]
    gates: dict[str, Any] = field(default_factory=dict)
    cache: str = ""
    seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)


def ensemble_file(ctx: StageContext, ensemble: Path | None) -> Path:
    """The ensemble to use: ``--ensemble`` or the workspace's ``ensembles/<name>.safetensors``."""
    path = Path(ensemble) if ensemble else ctx.workspace.ensemble_path(ctx.profile.ensemble.name)
    if not path.is_file():
        raise ArtifactError(
            "ensemble file not found",
            where=str(path),
            hint="run `eosfm export-ensemble` first, or pass --ensemble FILE",
        )
    from eosfm_cli.models.ensemble_file import detect_format, read_metadata

    # Cheap checks first (no tensor is read): a wrong or truncated file fails in milliseconds.
    if detect_format(path) == "native":
        read_metadata(path)
    return path


def ensemble_options(ctx: StageContext) -> dict[str, Any]:
    """EosFM keyword options from the profile's ``ensemble`` section."""
    e = ctx.profile.ensemble
    return {
        "normalize_features": e.normalize_features,
        "normalization_type": e.normalization_type,
        "fusion": e.fusion,
        "fuse_to_mult": e.fuse_to_mult,
        "ablate": list(e.ablate),
        "min_coverage": e.min_coverage,
        "tolerance_nm": e.substitute_tolerance_nm,
        "force": dict(e.force),
        "compile": e.compile,
        "precision": e.precision,
    }


def downstream_spec(ctx: StageContext, dataset: str | None) -> tuple[Any, Path, list[str]]:
    """The downstream experiment, its folder and its input bands."""
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


def head_config(
    ctx: StageContext, spec: Any, bands: list[str], freeze: bool, k: int | None = None
) -> Any:
    """The :class:`~eosfm_cli.models.generalist.HeadConfig` of this run."""
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
        ensemble_options=ensemble_options(ctx),
    )


def build_model(ctx: StageContext, ens: Path, cfg: Any) -> Any:
    """Build the generalist, checking that K is possible."""
    from eosfm_cli.models.generalist import build_generalist

    if cfg.k is not None:
        from eosfm_cli.models.ensemble_file import detect_format, load_any, read_metadata

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


def prepare_features(
    ctx: StageContext, model: Any, datasets: dict[str, Any], key: dict[str, Any], use_cache: bool
) -> tuple[dict[str, Any], str]:
    """Cached feature datasets when allowed and within budget, else the raw datasets."""
    from rich.progress import Progress

    from eosfm_cli.features import FeatureCache

    if not use_cache:
        return datasets, "features stream: specialists are trained (--no-freeze)"
    if model.cfg.task == "detection":
        return datasets, "features stream: a detection head runs on whole images"
    if not ctx.profile.cache.enabled:
        return datasets, "features stream: cache.enabled is false"
    caches = {
        s: FeatureCache(ctx.workspace.path("cache", "features"), {**key, "split": s})
        for s in datasets
    }
    total = sum(
        c.estimate_bytes(model, datasets[s][0], len(datasets[s])) for s, c in caches.items()
    )
    budget = ctx.profile.cache.max_gb * 1e9
    if total > budget:
        return datasets, (
            f"features stream: the cache would take {total / 1e9:.2f} GB > "
            f"cache.max_gb {ctx.profile.cache.max_gb}"
        )
    out: dict[str, Any] = {}
    built = []
    for split, cache in caches.items():
        got = cache.load()
        if got is None and not is_rank_zero():
            got = _wait_for_cache(cache)
        if got is None:
            with Progress(console=console, transient=True, disable=Verbosity.quiet) as progress:
                task = progress.add_task(f"caching {split} features", total=len(datasets[split]))
                got = cache.build(
                    model,
                    datasets[split],
                    ctx.profile.trainer.batch_size,
                    functools.partial(_advance, progress, task),
                )
            built.append(split)
        out[split] = got
    reason = (
        f"feature cache built for {', '.join(built)} ({total / 1e6:.1f} MB)"
        if built
        else f"feature cache reused ({total / 1e6:.1f} MB)"
    )
    return out, reason


def _wait_for_cache(cache: Any, timeout: float = 3600.0) -> Any:
    """On a DDP rank other than 0: wait until rank 0 has built a cache entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cache.load()
        if got is not None:
            return got
        time.sleep(1.0)
    raise WorkspaceError(
        "rank 0 did not build the feature cache in time",
        where=str(cache.folder),
        hint="check rank 0's output, or set cache.enabled: false",
    )


def _advance(progress: Any, task: Any, done: int, total: int) -> None:
    progress.update(task, completed=done, total=total)


def fit_head(
    ctx: StageContext,
    freeze: bool = True,
    ensemble: Path | None = None,
    dataset: str | None = None,
    run: str | None = None,
    k: int | None = None,
) -> HeadResult | None:
    """Run the `fit-head` stage.

    Args:
        ctx: the resolved profile and workspace.
        freeze: keep the specialists frozen (``--no-freeze`` fine-tunes them too).
        ensemble: the ensemble file (default: the workspace's).
        dataset: the downstream experiment (default: ``downstream.dataset``).
        run: the run name under ``heads/``.
        k: number of specialists to keep (default: ``ensemble.max_encoders``).

    Returns:
        The result, or ``None`` for a dry run.
    """
    spec, root, bands = downstream_spec(ctx, dataset)
    k = k if k is not None else ctx.profile.ensemble.max_encoders
    run_name = artifact_name(run or (spec.name + (f"-k{k}" if k else "")), "--run")
    folder = ctx.workspace.path("heads", run_name)
    if ctx.dry_run:
        ens_s = str(ensemble or f"ensembles/{ctx.profile.ensemble.name}.safetensors")
        print_dry_run(
            ctx,
            "fit-head",
            [ens_s, f"{root} ({spec.name})"],
            [
                "cache/features/",
                f"heads/{run_name}/head.safetensors",
                f"heads/{run_name}/head.json",
                f"heads/{run_name}/metrics.json",
                f"heads/{run_name}/gates.json",
                "manifest.json",
            ],
        )
        return None
    ens = ensemble_file(ctx, ensemble)
    from eosfm_cli.data.splits import load_splits

    datasets = load_splits(
        spec,
        root,
        bands,
        list(spec.classes),
        seed=ctx.profile.data.split_seed,
        patch_size=spec.patch_size,
        ignore_index=spec.ignore_index,
    )
    import lightning.pytorch as pl

    from eosfm_cli.io import sha256_file

    # The ensemble is read and K checked before the workspace is touched: a bad file or an
    # impossible K leaves no trace in it.
    pl.seed_everything(ctx.profile.seed, workers=True, verbose=False)
    ens_sha = sha256_file(ens)
    cfg = head_config(ctx, spec, bands, freeze, k)
    model = build_model(ctx, ens, cfg)
    with ctx.workspace.stage_run(
        "fit-head", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        if Verbosity.verbose:
            console.print(model.encoder.explain(), markup=False)
        else:
            info(
                f"ensemble {ens.name}: {len(model.active_names)} specialists active for "
                f"{','.join(bands)}: {', '.join(model.active_names)}"
            )
        key = {
            "ensemble_sha256": ens_sha,
            "dataset": spec.name,
            "root": str(root.resolve()),
            "bands": bands,
            "split_seed": ctx.profile.data.split_seed,
            "levels": model.levels,
            "options": {
                k2: v
                for k2, v in cfg.ensemble_options.items()
                if k2 in ("min_coverage", "tolerance_nm", "force", "ablate", "precision")
            },
        }
        data, cache_reason = prepare_features(ctx, model, datasets, key, use_cache=freeze)
        info(cache_reason)
        result = train_head(ctx, model, spec, data, folder)
        if result is None:
            return None  # a DDP rank other than 0: rank 0 writes
        result.cache = cache_reason
        from eosfm_cli.io import atomic_write_json
        from eosfm_cli.models.generalist import save_head_run

        # head.json, written last, marks a finished run (as specialist.json does).
        atomic_write_json(folder / "metrics.json", result.metrics)
        atomic_write_json(folder / "gates.json", result.gates)
        save_head_run(
            folder,
            model,
            ens.resolve(),
            ens_sha,
            {"dataset": spec.name, "root": str(root), "metrics": _scalars(result)},
        )
        record.inputs = {ctx.workspace.relative(ens): ens_sha}
        record.outputs = [
            f"heads/{run_name}/{f}"
            for f in ("head.safetensors", "head.json", "metrics.json", "gates.json")
        ]
        record.extra.update(
            dataset=spec.name,
            head=run_name,
            metrics={s: scalar_metrics(m) for s, m in result.metrics.items()},
        )
    result.run = run_name
    _summary(result, ctx)
    return result


def feature_loader(ds: Any, batch_size: int, num_workers: int, shuffle: bool, seed: int) -> Any:
    """A loader over cached features (whole batches per read) or raw samples."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    from eosfm_cli.data.loaders import make_loader

    if not hasattr(ds, "get_batch"):
        return make_loader(ds, batch_size, num_workers, shuffle, seed)

    class _Batches(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(ds)

        def __getitem__(self, indices: list[int]) -> dict[str, Any]:
            return ds.get_batch(indices)  # type: ignore[no-any-return]

    gen = torch.Generator().manual_seed(seed)
    base = (
        RandomSampler(range(len(ds)), generator=gen)
        if shuffle
        else SequentialSampler(range(len(ds)))
    )
    return DataLoader(
        _Batches(), batch_size=None, sampler=BatchSampler(base, batch_size, drop_last=False)
    )


def _scalars(res: HeadResult) -> dict[str, dict[str, float]]:
    return {s: scalar_metrics(m) for s, m in res.metrics.items()}


def train_head(
    ctx: StageContext, model: Any, spec: Any, data: dict[str, Any], folder: Path
) -> HeadResult | None:
    """Train the head with Lightning, keep the best epoch by the task's monitor metric.

    Returns:
        The result; ``None`` on a DDP rank other than 0, which neither scores nor writes.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import RichProgressBar

    from eosfm_cli.tasks import head_task
    from eosfm_cli.training.quiet import quiet_lightning
    from eosfm_cli.training.trainer import crash_points_callback, make_trainer

    quiet_lightning(Verbosity.verbose)
    t = ctx.profile.trainer
    module = head_task(
        spec.task,
        model,
        classes=list(spec.classes),
        loss=spec.loss,
        ignore_index=spec.ignore_index,
        lr=t.lr,
        weight_decay=t.weight_decay,
        max_epochs=t.max_epochs,
        sparsity=ctx.profile.downstream.sparsity,
    )
    monitor = module.monitor.split("/", 1)[1]
    sign = 1.0 if module.monitor_mode == "max" else -1.0
    best: dict[str, Any] = {"score": None, "state": None, "epoch": -1}
    epoch_times: list[float] = []

    class KeepBest(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            epoch_times.append(time.perf_counter() - self.t0)

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            score = pl_module.epoch_metrics.get("val", {}).get(monitor)
            if score is None or trainer.sanity_checking:
                return
            if best["score"] is None or sign * score > sign * best["score"]:
                best.update(
                    score=score,
                    epoch=trainer.current_epoch,
                    state=copy.deepcopy(model.trainable_state()),
                )

    callbacks: list[Any] = [KeepBest(), crash_points_callback()]
    if not Verbosity.quiet:
        callbacks.append(RichProgressBar(leave=False))
    trainer = make_trainer(t, callbacks, Verbosity.quiet, logger=False, enable_checkpointing=False)
    seed = ctx.profile.seed
    bs, nw = t.batch_size, t.num_workers
    start = time.perf_counter()
    trainer.fit(
        module,
        feature_loader(data["train"], bs, nw, True, seed),
        feature_loader(data["val"], bs, nw, False, seed),
    )
    if trainer.interrupted:
        raise KeyboardInterrupt
    seconds = time.perf_counter() - start
    if trainer.world_size > 1:
        # Score the best head once, on rank 0 over the whole splits; the others are done.
        end_distributed()
        if not trainer.is_global_zero:
            return None
        trainer = make_trainer(
            t.model_copy(update={"devices": 1, "num_nodes": 1, "strategy": "auto"}),
            [],
            True,
            logger=False,
            enable_checkpointing=False,
        )
    if best["state"] is not None:
        model.load_state_dict(best["state"], strict=False)
    metrics = {}
    for split in ("val", "test"):
        fn = trainer.validate if split == "val" else trainer.test
        fn(module, feature_loader(data[split], bs, nw, False, seed), verbose=False)
        metrics[split] = dict(module.epoch_metrics.get(split, {}))
    gates: dict[str, Any] = {}
    if model.gates is not None:
        gates = {
            "names": model.active_names,
            "k": model.cfg.k,
            "kind": model.cfg.gate,
            "per_epoch": module.gate_history,
            "final": model.gates.values(),
            "selected": [model.active_names[i] for i in model.gates.selected()],
            "ranking": [model.active_names[i] for i in model.gates.ranking()],
        }
    gates["best_epoch"] = best["epoch"]
    return HeadResult(
        run=folder.name,
        folder=folder,
        metrics=metrics,
        gates=gates,
        seconds=seconds,
        epoch_seconds=epoch_times,
    )


def _summary(res: HeadResult, ctx: StageContext) -> None:
    print_metrics(
        f"head [bold]{res.run}[/bold] — {res.seconds:.1f} s",
        {"val": res.metrics["val"], "test": res.metrics["test"]},
    )
    if res.gates.get("selected"):
        info(f"selected specialists: {', '.join(res.gates['selected'])}")
    info(f"[green]wrote[/green] heads/{res.run}/ (head.safetensors, head.json, metrics.json)")
