"""Shared rich consoles and the verbosity switches set by the CLI."""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class Verbosity:
    """Process-wide verbosity, set once by the CLI."""

    verbose: bool = False
    quiet: bool = False


def info(message: str) -> None:
    """Print a progress line unless ``--quiet``."""
    if not Verbosity.quiet:
        console.print(message)


def debug(message: str) -> None:
    """Print a detail line only with ``--verbose``."""
    if Verbosity.verbose:
        err_console.print(f"[dim]{message}[/dim]")


def warn(message: str) -> None:
    """Print a warning line on stderr (also with ``--quiet``), never wrapped: it stays greppable."""
    err_console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
