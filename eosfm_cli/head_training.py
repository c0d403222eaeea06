"""Fitting a downstream head over the frozen ensemble: the training loop and a whole head run.

:func:`fit_head_run` is what ``fit-head`` does once its arguments are resolved, and what
``select-encoders`` does to learn its gates: load the splits, build the generalist, prepare the
features, train the head keeping the best epoch, and write ``heads/<run>/`` (``metrics.json``,
``gates.json``, then ``head.safetensors`` and ``head.json``) under a ``fit-head`` manifest
entry.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.console import Verbosity, console, info
from eosfm_cli.context import StageContext
from eosfm_cli.distributed import end_distributed
from eosfm_cli.downstream import (
    build_checked_generalist,
    downstream_splits,
    head_config,
    head_module,
)
from eosfm_cli.head_features import feature_key, feature_loader, prepare_features
from eosfm_cli.summaries import print_metrics, scalar_metrics

if TYPE_CHECKING:
    from eosfm_cli.data.spec import ExperimentSpec

#: The files of a head run, ``head.json`` (written last) marking it finished.
HEAD_RUN_FILES = ("head.safetensors", "head.json", "metrics.json", "gates.json")


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


def fit_head_run(
    ctx: StageContext,
    spec: ExperimentSpec,
    root: Path,
    bands: list[str],
    ens: Path,
    run_name: str,
    freeze: bool,
    k: int | None,
) -> HeadResult | None:
    """Fit a head on a downstream experiment and write its run, recorded as ``fit-head``.

    Args:
        ctx: the resolved profile and workspace.
        spec: the downstream experiment.
        root: its folder.
        bands: its input bands.
        ens: the checked ensemble file.
        run_name: the run's name under ``heads/``.
        freeze: keep the specialists frozen.
        k: number of specialists to keep (``None``: all, no gates).

    Returns:
        The result; ``None`` on a DDP rank other than 0, which neither scores nor writes.
    """
    import lightning.pytorch as pl

    from eosfm_cli.io import atomic_write_json, sha256_file
    from eosfm_cli.models.head_file import save_head_run

    folder = ctx.workspace.path("heads", run_name)
    datasets = downstream_splits(ctx, spec, root, bands)
    # The ensemble is read and K checked before the workspace is touched: a bad file or an
    # impossible K leaves no trace in it. The seed comes first: building draws random weights.
    pl.seed_everything(ctx.profile.seed, workers=True, verbose=False)
    ens_sha = sha256_file(ens)
    samples = sum(len(d) for d in datasets.values())
    if not (freeze and ctx.profile.cache.enabled):
        samples *= ctx.profile.trainer.max_epochs  # encoded again every epoch
    cfg = head_config(ctx, spec, bands, freeze, k, samples)
    model = build_checked_generalist(ctx, ens, cfg)
    with ctx.workspace.stage_run(
        "fit-head", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        if Verbosity.verbose:
            # The generalist types its encoder as a plain module; it is an EosFM.
            console.print(model.encoder.explain(), markup=False)  # type: ignore[operator]
        else:
            info(
                f"ensemble {ens.name}: {len(model.active_names)} specialists active for "
                f"{','.join(bands)}: {', '.join(model.active_names)}"
            )
        key = feature_key(ctx, model, ens_sha, spec.name, root)
        data, cache_reason = prepare_features(ctx, model, datasets, key, use_cache=freeze)
        info(cache_reason)
        result = train_head(ctx, model, spec, data, folder)
        if result is None:
            return None  # a DDP rank other than 0: rank 0 writes
        result.cache = cache_reason
        scalars = {s: scalar_metrics(m) for s, m in result.metrics.items()}
        # head.json, written last, marks a finished run (as specialist.json does).
        atomic_write_json(folder / "metrics.json", result.metrics)
        atomic_write_json(folder / "gates.json", result.gates)
        save_head_run(
            folder,
            model,
            ens.resolve(),
            ens_sha,
            {"dataset": spec.name, "root": str(root), "metrics": scalars},
        )
        record.inputs = {ctx.workspace.relative(ens): ens_sha}
        record.outputs = [f"heads/{run_name}/{f}" for f in HEAD_RUN_FILES]
        record.extra.update(dataset=spec.name, head=run_name, metrics=scalars)
    result.run = run_name
    return result


def train_head(
    ctx: StageContext, model: Any, spec: ExperimentSpec, data: dict[str, Any], folder: Path
) -> HeadResult | None:
    """Train the head with Lightning, keep the best epoch by the task's monitor metric.

    Args:
        ctx: the resolved profile and workspace.
        model: the generalist whose head (and gates) train.
        spec: the downstream experiment.
        data: ``{split: dataset}`` of cached features or raw samples.
        folder: the run's folder (named in the result; nothing is written).

    Returns:
        The result; ``None`` on a DDP rank other than 0, which neither scores nor writes.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import RichProgressBar

    from eosfm_cli.training.quiet import quiet_lightning
    from eosfm_cli.training.trainer import crash_points_callback, make_trainer

    quiet_lightning(Verbosity.verbose)
    t = ctx.profile.trainer
    module = head_module(
        spec,
        model,
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


def print_head_result(res: HeadResult) -> None:
    """Print a head run's val and test metrics, its selected specialists and what it wrote."""
    print_metrics(
        f"head [bold]{res.run}[/bold] — {res.seconds:.1f} s",
        {"val": res.metrics["val"], "test": res.metrics["test"]},
    )
    if res.gates.get("selected"):
        info(f"selected specialists: {', '.join(res.gates['selected'])}")
    info(f"[green]wrote[/green] heads/{res.run}/ (head.safetensors, head.json, metrics.json)")
