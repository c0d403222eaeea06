"""The ``eosfm`` command line: a thin Typer shell around the stage functions.

This module builds the app and registers the commands: the pipeline commands live in
:mod:`eosfm_cli.cli_pipeline` (``distill`` and ``export-model`` in :mod:`eosfm_cli.cli_deploy`,
``benchmark`` in :mod:`eosfm_cli.cli_benchmark`), the profile and dataset helpers in
:mod:`eosfm_cli.cli_tools`, and what they share (options, choices, error handling) in
:mod:`eosfm_cli.cli_common`. Torch is imported inside the commands, never at module level, so
``eosfm --help`` stays instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from eosfm_cli import __version__, cli_benchmark, cli_deploy, cli_pipeline, cli_tools
from eosfm_cli.cli_common import PANEL_PIPELINE, PANEL_TOOLS, QuietOpt, VerboseOpt, set_verbosity
from eosfm_cli.console import console

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

PIPELINE: dict[str, Callable[..., Any]] = {
    "train-specialist": cli_pipeline.train_specialist,
    "export-ensemble": cli_pipeline.export_ensemble,
    "distill": cli_deploy.distill,
    "fit-head": cli_pipeline.fit_head,
    "select-encoders": cli_pipeline.select_encoders,
    "evaluate": cli_pipeline.evaluate,
    "predict": cli_pipeline.predict,
    "export-model": cli_deploy.export_model,
    "embed": cli_pipeline.embed,
    "benchmark": cli_benchmark.benchmark,
    "emissions-report": cli_pipeline.emissions_report,
}
for _name, _command in PIPELINE.items():
    app.command(_name, rich_help_panel=PANEL_PIPELINE)(_command)

profile_app.command("show")(cli_tools.profile_show)
profile_app.command("validate")(cli_tools.profile_validate)
datasets_app.command("list")(cli_tools.datasets_list)
datasets_app.command("bands")(cli_tools.datasets_bands)
datasets_app.command("generate")(cli_tools.datasets_generate)
datasets_app.command("fetch")(cli_tools.datasets_fetch)


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
    set_verbosity(verbose, quiet)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:  # keep Typer's exit codes
        sys.exit(exc.code)


if __name__ == "__main__":  # pragma: no cover
    main()
