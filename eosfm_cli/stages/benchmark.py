"""Stage `eosfm benchmark`: does this ensemble act as a generalist on these tasks?

The protocol of PANGAEA-bench and GEO-Bench, on the user's own ensemble: for each task (an
experiment with train, val and test splits, ``NAME`` or ``NAME=ROOT``), each label fraction (a
seeded, class-stratified subset of train, :mod:`eosfm_cli.benchmark_subsets`, the same for every
model) and each seed, it trains and tests

- ``ensemble``: the frozen ensemble with the task's light head;
- ``single:<name>`` (baseline ``singles``): each specialist that can read the task's bands,
  alone, frozen, same head;
- ``selected-k<K>`` (baseline ``selected``): the head with K learned gates over the ensemble;
- ``scratch`` (baseline ``scratch``): the specialists' backbone trained from random weights;
- ``compare:<stem>``: the same head over any other ensemble or student file.

Each head's learning rate and scratch's are chosen on val from a declared list; the best
single specialist is chosen on val; each head keeps its best val epoch. Test scores are the
mean over seeds with a paired bootstrap interval (:mod:`eosfm_cli.benchmark_stats`).

**Outputs** under ``benchmarks/<name>/``: ``runs/<key>.json`` (one per run, keyed by every
input that changes it, so an interrupted benchmark resumes and a finished one re-renders
without training), ``models/`` (the single-specialist files), ``results.json``, ``report.md``
and ``<task>.png``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from eosfm_cli.benchmark_plan import (
    BASELINES,
    SINGLE,
    Model,
    Run,
    Task,
    check_options,
    load_task,
    plan_models,
    print_plan,
    run_key,
    specialists_of,
)
from eosfm_cli.benchmark_report import benchmark_results, write_outputs
from eosfm_cli.benchmark_runs import (
    RunOutcome,
    file_digest,
    head_run,
    scratch_run,
    train_targets,
)
from eosfm_cli.benchmark_subsets import label_subset, present_classes, strata
from eosfm_cli.console import count_progress, hushed, info
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.downstream import ensemble_file
from eosfm_cli.io import atomic_write_json

#: Head learning rates searched on val by default.
HEAD_LRS = (1e-3, 1e-2)
#: Scratch learning rates searched on val by default.
SCRATCH_LRS = (1e-3, 3e-4)


def benchmark(
    ctx: StageContext,
    tasks: Sequence[str],
    *,
    ensemble: Path | None = None,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    seeds: int = 5,
    baselines: Sequence[str] = BASELINES,
    k: int | None = None,
    compare: Sequence[Path] = (),
    name: str | None = None,
    head_lrs: Sequence[float] = HEAD_LRS,
    scratch_lrs: Sequence[float] = SCRATCH_LRS,
    scratch_epochs: int | None = None,
    draws: int = 2000,
) -> dict[str, Any] | None:
    """Run the `benchmark` stage.

    Args:
        ctx: the resolved profile and workspace (the heads' epochs and batch size come from
            its ``trainer`` section, the head kind from ``model.head``).
        tasks: ``NAME`` or ``NAME=ROOT`` per task (experiment names; ``data.roots`` or
            ``downstream.root`` give a folder when none is named).
        ensemble: the ensemble file (default: the workspace's).
        fractions: label fractions of the train split, in (0, 1].
        seeds: seeds per fraction (0 .. seeds-1): the subset's draw and the training seed.
        baselines: any of ``singles``, ``scratch``, ``selected``.
        k: specialists the ``selected`` baseline keeps (default: half, at least 1).
        compare: other ensemble or student files, each with the same head.
        name: the benchmark's folder under ``benchmarks/`` (default: the tasks' names).
        head_lrs: head learning rates, one chosen on val per model and fraction.
        scratch_lrs: scratch learning rates, one chosen on val per fraction.
        scratch_epochs: epochs of a scratch run (default: ``trainer.max_epochs``).
        draws: bootstrap resamples.

    Returns:
        The results (also in ``results.json``), or ``None`` for a dry run.

    Raises:
        ProfileError: for a bad option, a task without val or test samples, a task kind the
            benchmark cannot score, or a fraction that leaves a class empty.
        BandError: when no specialist can use a task's bands.
        ArtifactError: for a missing or unreadable ensemble file.
    """
    check_options(tasks, fractions, seeds, baselines, head_lrs, scratch_lrs, draws)
    ens = ensemble_file(ctx, ensemble)
    specs = specialists_of(ens)
    bench_name = name or "-".join(t.split("=", 1)[0] for t in tasks)
    folder = ctx.workspace.path("benchmarks", bench_name)
    epochs = scratch_epochs or ctx.profile.trainer.max_epochs
    loaded = [load_task(ctx, t, specs) for t in tasks]
    models = plan_models(ctx, ens, specs, baselines, k, compare, loaded, folder)
    seed_list = list(range(seeds))
    runs = [
        Run(t.label, f, s, m, lr)
        for t in loaded
        for f in fractions
        for m in models
        if not m.name.startswith(SINGLE) or m.name.removeprefix(SINGLE) in t.active
        for lr in (scratch_lrs if m.name == "scratch" else head_lrs)
        for s in seed_list
    ]
    for t in loaded:
        targets = train_targets(t.datasets["train"])
        labels = strata(t.spec.task, targets, t.spec.ignore_index)
        dense = t.spec.task in ("segmentation", "change_detection")
        present = present_classes(targets, t.spec.ignore_index) if dense else None
        for f in fractions:
            for s in seed_list:
                where = f"--fractions ({t.label})"
                t.subsets[(f, s)] = label_subset(labels, f, s, t.spec.classes, where, present)
    if ctx.dry_run:
        print_dry_run(
            ctx,
            "benchmark",
            [str(ens), *(f"{t.root} ({t.spec.name})" for t in loaded), *map(str, compare)],
            [f"benchmarks/{bench_name}/{f}" for f in ("runs/", "results.json", "report.md")]
            + [f"benchmarks/{bench_name}/{t.label}.png" for t in loaded],
        )
        print_plan(loaded, models, runs, fractions, seeds, specs, epochs)
        return None
    by_label = {t.label: t for t in loaded}
    outcomes: dict[Run, RunOutcome] = {}
    trained = 0
    start = time.perf_counter()
    with ctx.workspace.stage_run(
        "benchmark", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        _write_single_files(ens, models)
        with count_progress("benchmark runs", len(runs)) as advance, _scratch_space(folder):
            for run in runs:
                task = by_label[run.task]
                path = folder / "runs" / f"{run_key(ctx, task, run, specs, epochs)}.json"
                if path.is_file():
                    outcomes[run] = RunOutcome.from_dict(json.loads(path.read_text()))
                else:
                    with hushed():
                        outcomes[run] = _execute(ctx, task, run, specs, epochs, folder)
                    atomic_write_json(path, outcomes[run].to_dict())
                    trained += 1
                advance(1)
        result = benchmark_results(
            bench_name,
            ens,
            loaded,
            models,
            outcomes,
            fractions,
            seeds,
            draws,
            head_lrs,
            scratch_lrs,
            epochs,
        )
        write_outputs(folder, result)
        result["trained"] = trained
        record.inputs = {str(ens): file_digest(ens)}
        record.outputs = [
            f"benchmarks/{bench_name}/{f}"
            for f in ("results.json", "report.md", *(f"{t.label}.png" for t in loaded))
        ]
        record.extra.update(tasks=[t.label for t in loaded], runs=len(runs), trained=trained)
    info(
        f"[green]wrote[/green] benchmarks/{bench_name}/ (report.md, results.json, plots): "
        f"{len(runs)} runs, {trained} trained now, {time.perf_counter() - start:.0f} s"
    )
    for t in result["tasks"].values():
        info(t["verdict"])
    return result


@contextlib.contextmanager
def _scratch_space(folder: Path) -> Iterator[None]:
    """Remove the runs' scratch folder (their checkpoints) when the runs end, however."""
    try:
        yield
    finally:
        shutil.rmtree(folder / "tmp", ignore_errors=True)


def _write_single_files(ens: Path, models: Sequence[Model]) -> None:
    """Write each single-specialist file that is not there yet."""
    from eosfm_cli.models.ensemble_file import load_any
    from eosfm_cli.models.native_file import save_ensemble

    wanted = [m for m in models if m.name.startswith(SINGLE) and m.file is not None]
    if all(m.file is not None and m.file.is_file() for m in wanted):
        return
    entries = {e[0].name: e for e in load_any(ens)[0]}
    for m in wanted:
        assert m.file is not None
        if not m.file.is_file():
            spec, state = entries[m.name.removeprefix(SINGLE)]
            m.file.parent.mkdir(parents=True, exist_ok=True)
            save_ensemble(m.file, [spec], [state])


def _execute(
    ctx: StageContext, task: Task, run: Run, specs: Sequence[Any], epochs: int, folder: Path
) -> RunOutcome:
    """Train and score one run."""
    indices = task.subsets[(run.fraction, run.seed)]
    if run.model.name == "scratch":
        return scratch_run(
            ctx,
            task.spec,
            specs[0].backbone,
            task.bands,
            task.datasets,
            indices,
            run.seed,
            run.lr,
            epochs,
            folder / "tmp" / f"scratch-{run.task}-{run.fraction:g}-{run.seed}",
        )
    assert run.model.file is not None
    return head_run(
        ctx,
        task.spec,
        task.root,
        run.model.file,
        task.bands,
        task.datasets,
        indices,
        run.seed,
        run.lr,
        run.model.k,
    )
