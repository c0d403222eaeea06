"""`eosfm datasets`: list experiments, print the band catalog, generate synthetic data."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from eosfm_cli.bands import BAND_SETS, all_bands
from eosfm_cli.console import console, info
from eosfm_cli.errors import DataError, ProfileError


def _experiment_root(name: str, profile_path: Path, sets: list[str]) -> str | None:
    from eosfm_cli.stages.common import find_dataset_profile, find_profile, resolve

    base = find_profile(profile_path)
    try:
        if find_dataset_profile(name, base) is None:
            ctx = resolve(base, sets)
            root = ctx.profile.data.roots.get(name) or ctx.profile.data.root
        else:
            ctx = resolve(base, sets, dataset=name)
            root = ctx.profile.data.roots.get(name) or ctx.profile.data.root
    except ProfileError:
        return None
    return root


def list_datasets(profile_path: Path, sets: list[str]) -> None:
    """Print every experiment with its task, bands, classes and whether its root is present.

    Args:
        profile_path: the base profile (its ``data`` section and dataset profiles give roots).
        sets: ``--set`` overrides.
    """
    from eosfm_cli.data.registry import EXPERIMENTS

    table = Table(title="eosfm experiments", show_lines=False)
    for col in ("experiment", "task", "bands", "classes", "loader", "root", "present"):
        table.add_column(col, overflow="fold")
    for spec in EXPERIMENTS.values():
        root = _experiment_root(spec.name, profile_path, sets)
        present = root is not None and Path(root).is_dir()
        table.add_row(
            spec.name,
            spec.task,
            ",".join(spec.bands) if len(spec.bands) <= 4 else f"{len(spec.bands)} bands",
            str(spec.num_classes) if spec.classes else "-",
            "yes" if spec.loader else "[dim]not yet[/dim]",
            root or "-",
            "[green]yes[/green]" if present else "[dim]no[/dim]",
        )
    console.print(table)


def print_band_catalog() -> None:
    """Print the band catalog and the named band sets."""
    table = Table(title="band catalog")
    for col in ("band", "sensor", "kind", "centre nm", "width nm", "pol.", "unit", "aliases"):
        table.add_column(col)
    for b in all_bands():
        table.add_row(
            b.name,
            b.sensor,
            b.kind,
            f"{b.center_nm:g}" if b.center_nm else "-",
            f"{b.width_nm:g}" if b.width_nm else "-",
            b.polarisation or "-",
            b.unit,
            ", ".join(b.aliases),
        )
    console.print(table)
    sets = Table(title="band sets")
    sets.add_column("set")
    sets.add_column("bands")
    for name, bands in BAND_SETS.items():
        sets.add_row(name, ", ".join(bands))
    console.print(sets)


def generate(kind: str, root: Path, n: int, size: int, seed: int, large: int = 0) -> Path:
    """Generate a built-in dataset.

    Args:
        kind: ``synthetic``.
        root: the output folder.
        n: number of scenes.
        size: scene size in pixels.
        seed: random seed.
        large: size of one extra large scene (0 for none).

    Returns:
        The dataset root.
    """
    if kind != "synthetic":
        raise DataError(
            f"unknown generator {kind!r}",
            where="datasets generate",
            hint="use: eosfm datasets generate synthetic --root DIR",
        )
    from rich.progress import Progress

    from eosfm_cli.data.synthetic import generate as gen

    with Progress(transient=True, console=console) as progress:
        task = progress.add_task("generating scenes", total=n)

        def _tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        out = gen(root, n=n, size=size, seed=seed, large=large, progress=_tick)
    info(f"[green]wrote[/green] {n} synthetic scenes ({size}x{size}) to {out}")
    return out
