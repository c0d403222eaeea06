"""The plan of a benchmark: its tasks, models and runs, their cache keys and a time estimate.

A task is ``NAME`` or ``NAME=ROOT`` (an experiment with train, val and test splits); the
models are the ensemble, its baselines (each specialist alone, a K-gated head, the backbone
from scratch) and compared files; a run is one model on one task's label fraction with one
seed and learning rate. :func:`run_key` digests every input that changes a run's outcome.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eosfm_cli.benchmark_runs import file_digest
from eosfm_cli.benchmark_stats import SCORES
from eosfm_cli.context import StageContext
from eosfm_cli.downstream import downstream_spec, downstream_splits, ensemble_file
from eosfm_cli.errors import ProfileError
from eosfm_cli.io import json_digest

#: The baselines ``--baselines`` may name.
BASELINES = ("singles", "scratch", "selected")
#: Prefix of the single-specialist models' names.
SINGLE = "single:"
#: The prefix of a compared file's model name (``compare:<file stem>``).
COMPARED = "compare:"


@dataclass
class Task:
    """A benchmark task: its experiment, folder, bands, splits and the subsets of train."""

    label: str
    spec: Any
    root: Path
    bands: list[str]
    datasets: dict[str, Any]
    active: list[str]
    subsets: dict[tuple[float, int], list[int]] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    """A model of the benchmark: a head over a file (optionally gated), or scratch."""

    name: str
    file: Path | None = None
    k: int | None = None


@dataclass(frozen=True)
class Run:
    """One training run: a model on a task's fraction, with one seed and learning rate."""

    task: str
    fraction: float
    seed: int
    model: Model
    lr: float


def check_options(
    tasks: Sequence[str],
    fractions: Sequence[float],
    seeds: int,
    baselines: Sequence[str],
    head_lrs: Sequence[float],
    scratch_lrs: Sequence[float],
    draws: int,
) -> None:
    """Refuse options that name no task, a bad fraction, seed count, baseline or rate.

    Raises:
        ProfileError: naming the option at fault.
    """
    if not tasks:
        raise ProfileError("no task to benchmark", where="--tasks", hint="e.g. --tasks eurosat_s2")
    if len({t.split("=", 1)[0] for t in tasks}) != len(tasks):
        raise ProfileError("a task is listed twice", where="--tasks", hint="list each task once")
    if not fractions:
        raise ProfileError("no label fraction", where="--fractions", hint="e.g. 0.1,1.0")
    for f in fractions:
        if not 0 < f <= 1:
            raise ProfileError(
                f"label fraction {f:g} is not in (0, 1]", where="--fractions", hint="e.g. 0.1,1.0"
            )
    if seeds < 1:
        raise ProfileError(f"--seeds {seeds} is below 1", where="--seeds", hint="e.g. --seeds 5")
    bad = sorted(set(baselines) - set(BASELINES))
    if bad:
        raise ProfileError(
            f"unknown baseline {bad[0]!r}",
            where="--baselines",
            hint=f"choose among {', '.join(BASELINES)}",
        )
    for opt, rates in (("--head-lrs", head_lrs), ("--scratch-lrs", scratch_lrs)):
        if not rates or any(r <= 0 for r in rates):
            raise ProfileError("learning rates must be positive", where=opt, hint="e.g. 1e-3,1e-2")
    if draws < 100:
        raise ProfileError(f"--draws {draws} is too few", where="--draws", hint="use 1000 or more")


def specialists_of(ens: Path) -> list[Any]:
    """The specialists' metadata of an ensemble file in either format."""
    from eosfm_cli.models.ensemble_file import detect_format, load_any
    from eosfm_cli.models.native_file import read_metadata

    if detect_format(ens) == "native":
        return read_metadata(ens)
    return [e[0] for e in load_any(ens)[0]]


def load_task(ctx: StageContext, item: str, specs: Sequence[Any]) -> Task:
    """A task's experiment, folder, bands, checked splits and the specialists that read it."""
    from eosfm_cli.models.adaptation import active_indices, plan_ensemble

    label, _, root_s = item.partition("=")
    down = ctx.profile.downstream
    update: dict[str, Any] = {"dataset": label}
    if root_s:
        update["root"] = root_s
    elif label != down.dataset:
        update["root"] = None
    if label != down.dataset:
        update["bands"] = None  # the profile's bands are for its own downstream dataset
    profile = ctx.profile.model_copy(update={"downstream": down.model_copy(update=update)})
    task_ctx = dataclasses.replace(ctx, profile=profile)
    spec, root, bands = downstream_spec(task_ctx, label)
    if spec.task not in SCORES:
        raise ProfileError(
            f"task {label!r} is {spec.task}, which the benchmark cannot score",
            where="--tasks",
            hint=f"benchmark tasks of kind {', '.join(SCORES)}",
        )
    e = ctx.profile.ensemble
    plans = plan_ensemble(
        specs,
        bands,
        tolerance_nm=e.substitute_tolerance_nm,
        min_coverage=e.min_coverage,
        force=dict(e.force),
        ablate=list(e.ablate),
    )
    active = [specs[i].name for i in active_indices(plans, bands)]
    datasets = downstream_splits(ctx, spec, root, bands)
    for split in ("train", "val", "test"):
        if len(datasets.get(split, ())) == 0:
            raise ProfileError(
                f"task {label!r} has no {split} samples in {root}",
                where="--tasks",
                hint="every choice is made on val and scores come from test: give a release "
                "with all three splits",
            )
    return Task(label, spec, root, bands, datasets, active)


def plan_models(
    ctx: StageContext,
    ens: Path,
    specs: Sequence[Any],
    baselines: Sequence[str],
    k: int | None,
    compare: Sequence[Path],
    tasks: Sequence[Task],
    folder: Path,
) -> list[Model]:
    """The models to run: the ensemble, its baselines and the compared files."""
    models = [Model("ensemble", ens)]
    if "singles" in baselines:
        for s in specs:
            models.append(Model(f"{SINGLE}{s.name}", folder / "models" / f"{s.name}.safetensors"))
    if "selected" in baselines:
        fewest = min(len(t.active) for t in tasks)
        keep = k if k is not None else max(1, fewest // 2)
        if not 1 <= keep < fewest:
            raise ProfileError(
                f"--k {keep} does not select among the {fewest} specialists that can read "
                "every task's bands",
                where="--k",
                hint=f"choose K between 1 and {fewest - 1}, or drop the 'selected' baseline",
            )
        models.append(Model(f"selected-k{keep}", ens, keep))
    if "scratch" in baselines:
        models.append(Model("scratch"))
    for other in compare:
        models.append(Model(f"{COMPARED}{Path(other).stem}", ensemble_file(ctx, Path(other))))
    return models


def run_key(ctx: StageContext, task: Task, run: Run, specs: Sequence[Any], epochs: int) -> str:
    """A digest of every input that changes a run's outcome."""
    p = ctx.profile
    parts: dict[str, Any] = {
        "task": task.spec.name,
        "root": str(task.root.resolve()),
        "bands": task.bands,
        "split_seed": p.data.split_seed,
        "fraction": run.fraction,
        "subset": json_digest(task.subsets.get((run.fraction, run.seed), [])),
        "seed": run.seed,
        "model": run.model.name,
        "k": run.model.k,
        "lr": run.lr,
        "batch_size": p.trainer.batch_size,
        "weight_decay": p.trainer.weight_decay,
        "precision": p.trainer.precision,
    }
    if run.model.name == "scratch":
        parts.update(backbone=specs[0].backbone, epochs=epochs, recipe=p.model.model_dump())
    else:
        assert run.model.file is not None
        parts.update(
            file=file_digest(run.model.file),
            epochs=p.trainer.max_epochs,
            head=p.model.head,
            hidden_dim=p.model.hidden_dim,
            decoder_channels=p.model.decoder_channels,
            gate=p.downstream.gate,
            sparsity=p.downstream.sparsity,
            ensemble=p.ensemble.model_dump(),
        )
    return json_digest(parts, 24)


def print_plan(
    tasks: Sequence[Task],
    models: Sequence[Model],
    runs: Sequence[Run],
    fractions: Sequence[float],
    seeds: int,
    specs: Sequence[Any],
    epochs: int,
) -> None:
    """The runs a benchmark would make, and a time estimate measured on this machine."""
    from eosfm_cli.console import console

    console.print("[bold]runs[/bold]")
    for t in tasks:
        console.print(
            f"  {t.label} ({t.spec.task}, {len(t.datasets['train'])} train / "
            f"{len(t.datasets['val'])} val / {len(t.datasets['test'])} test): "
            f"fractions {', '.join(f'{f:g}' for f in fractions)} x {seeds} seeds",
            markup=False,
        )
    for m in models:
        n = sum(1 for r in runs if r.model == m)
        console.print(f"  {m.name}: {n} runs", markup=False)
    est = _estimate(tasks, models, runs, specs, epochs)
    console.print(f"{len(runs)} runs, {est}", markup=False)


def _estimate(
    tasks: Sequence[Task],
    models: Sequence[Model],
    runs: Sequence[Run],
    specs: Sequence[Any],
    epochs: int,
) -> str:
    """Time of the runs from one timed forward and backward of the backbone here.

    Encoding: each file encodes every split of every task once (the feature cache), one
    backbone forward per specialist and sample. Scratch: forward and backward per sample and
    epoch over its subset and val. Head training on cached features is left out (small).
    """
    import timm
    import torch

    t = tasks[0]
    x = t.datasets["train"][0]["image"][None].float().repeat(4, 1, 1, 1)
    net = timm.create_model(specs[0].backbone, features_only=True, in_chans=x.shape[1])
    with torch.inference_mode():
        net(x)
        t0 = time.perf_counter()
        net(x)
        fwd = (time.perf_counter() - t0) / 4
    t0 = time.perf_counter()
    sum(f.float().mean() for f in net(x)).backward()
    train = (time.perf_counter() - t0) / 4
    # each head file encodes every split of every task once: one forward per specialist
    per_file = [
        1 if m.name.startswith(SINGLE) else len(specs) for m in models if m.file and not m.k
    ]
    seconds = sum(sum(len(d) for d in t.datasets.values()) for t in tasks) * sum(per_file) * fwd
    for r in runs:
        if r.model.name == "scratch":
            task = next(t for t in tasks if t.label == r.task)
            n = r.fraction * len(task.datasets["train"]) + len(task.datasets["val"])
            seconds += epochs * n * train
    return (
        f"about {seconds / 60:.1f} min here (from one timed forward and backward of "
        f"{specs[0].backbone} on this machine; head training on cached features not counted)"
    )
