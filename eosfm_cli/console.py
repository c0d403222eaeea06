"""Shared rich consoles and the verbosity switches set by the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class Verbosity:
    """Process-wide verbosity, set once by the CLI."""

    verbose: bool = False
    quiet: bool = False


@contextlib.contextmanager
def hushed() -> Iterator[None]:
    """Hide progress lines (``info``) inside the block, as ``--quiet`` does; warnings still show."""
    before = Verbosity.quiet
    Verbosity.quiet = True
    try:
        yield
    finally:
        Verbosity.quiet = before


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


@contextlib.contextmanager
def count_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A transient progress bar over ``total`` items (silent with ``--quiet``).

    Args:
        label: what is counted (``tiles``, ``runs``...).
        total: how many.

    Yields:
        A callback that advances the bar by a number of items.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=Verbosity.quiet,
    )
    with progress:
        bar = progress.add_task(label, total=total)
        yield lambda n: progress.advance(bar, n)
        progress.update(bar, completed=total)
