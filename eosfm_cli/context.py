"""The context every stage runs in: the resolved profile, the workspace, and dry runs."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eosfm_cli.console import console
from eosfm_cli.errors import ProfileError
from eosfm_cli.profile_schema import DatasetConfig, Profile
from eosfm_cli.profiles import dump_yaml, load_profile
from eosfm_cli.workspace import Workspace


def _package_profiles() -> Path:
    """The built-in profiles: inside an installed wheel, else the checkout's ``profiles/``."""
    here = Path(__file__).resolve().parent
    shipped = here / "builtin_profiles"
    return shipped if shipped.is_dir() else here.parent / "profiles"


PACKAGE_PROFILES = _package_profiles()


@dataclass
class StageContext:
    """A resolved profile and workspace, plus the run switches every stage honours.

    Attributes:
        profile: the validated profile.
        workspace: the workspace folder.
        source: where the profile came from (for messages).
        dry_run: print what would be read and written, then stop.
        wait: wait for a locked workspace instead of refusing.
    """

    profile: Profile
    workspace: Workspace
    source: str = ""
    dry_run: bool = False
    wait: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def find_profile(path: str | Path) -> Path:
    """Find a profile file: from the working directory first, then among the built-in ones.

    ``profiles/default.yaml``, ``default.yaml`` and ``default`` all name the built-in default
    profile when the working directory has no such file; ``datasets/eurosat_s2`` names an
    experiment profile.

    Args:
        path: a path relative to the working directory, or a built-in profile's name.

    Returns:
        The first existing candidate (or ``path`` itself so the loader reports it missing).
    """
    p = Path(path)
    if p.is_file() or p.is_absolute():
        return p
    parts = p.parts
    rel = Path(*parts[1:]) if parts and parts[0] == "profiles" and len(parts) > 1 else p
    for cand in (rel, rel.with_name(rel.name + ".yaml")):
        if cand.suffix in (".yaml", ".yml") and (PACKAGE_PROFILES / cand).is_file():
            return PACKAGE_PROFILES / cand
    return p


def find_dataset_profile(name: str, base_profile: Path) -> Path | None:
    """Locate ``datasets/<name>.yaml`` beside the base profile or among the built-in ones."""
    for folder in (base_profile.parent / "datasets", PACKAGE_PROFILES / "datasets"):
        cand = folder / f"{name}.yaml"
        if cand.is_file():
            return cand
    return None


def dataset_section(name: str) -> dict[str, Any]:
    """Build the profile ``dataset:`` section of an experiment from the registry.

    It holds everything the registry states (name, task, bands, classes, loss, ignore index,
    patch size, options); the experiment's profile file and ``--set`` are laid over it. An
    experiment whose task, bands and classes come from the profile (``folder``) leaves those
    keys out, so that a profile without them is refused as before.

    Raises:
        ProfileError: for an unknown experiment, with the closest valid name.
    """
    from eosfm_cli.data.registry import get_experiment
    from eosfm_cli.data.spec import ANY_TASK

    spec = get_experiment(name, where="--dataset")
    section: dict[str, Any] = {"name": spec.name}
    if spec.task != ANY_TASK:
        section["task"] = spec.task
    if spec.bands:
        section["bands"] = list(spec.bands)
    section["classes"] = list(spec.classes)
    section["loss"] = spec.loss
    if spec.ignore_index is not None:
        section["ignore_index"] = spec.ignore_index
    if spec.patch_size is not None:
        section["patch_size"] = spec.patch_size
    if spec.options:
        section["options"] = copy.deepcopy(spec.options)
    return section


def resolve(
    profile_path: str | Path,
    overrides: list[str] | None = None,
    *,
    dataset: str | None = None,
    workspace: str | Path | None = None,
    root: str | Path | None = None,
    dry_run: bool = False,
    wait: bool = False,
) -> StageContext:
    """Resolve the profile a stage runs with.

    Order of precedence (last wins): the base profile and its includes; when ``dataset`` is
    given, the registry's entry of the experiment (which replaces the base's ``dataset``
    section whole) and the experiment's profile ``datasets/<dataset>.yaml`` over it (its
    ``dataset`` keys laid over the registry's); ``--root``; ``--set`` overrides;
    ``--workspace``.

    Args:
        profile_path: the base profile.
        overrides: ``--set KEY=VALUE`` expressions.
        dataset: the experiment to select (``--dataset``).
        workspace: the workspace folder (``--workspace``).
        root: the dataset folder (``--root``).
        dry_run: the stage should only describe what it would do.
        wait: wait for a locked workspace.

    Returns:
        The stage context.
    """
    base = find_profile(profile_path)
    sets = list(overrides or [])
    overlay: Path | None = None
    section: dict[str, Any] | None = None
    if dataset:
        overlay = find_dataset_profile(dataset, base)
        # A profile file of an experiment the registry does not know (a copy of folder.yaml
        # under another name) states its whole dataset section itself.
        if overlay is None or _known(dataset):
            section = dataset_section(dataset)
    if root is not None:
        sets = [f"data.root={_flow(str(root))}", *sets]
    profile = load_profile(base, sets, overlay=overlay, dataset=section)
    source = str(base) + (f" + {overlay}" if overlay else "")
    if profile.dataset is not None:
        check_dataset(profile.dataset, source)
    ws = Workspace(workspace if workspace is not None else profile.workspace)
    if workspace is not None:
        profile.workspace = str(workspace)
    ctx = StageContext(profile=profile, workspace=ws, source=source, dry_run=dry_run, wait=wait)
    # The keys the user set on the command line (``--set KEY=VALUE``), for stages whose
    # defaults depend on whether a key came from the profile or from the user.
    ctx.extra["set_keys"] = sorted({item.split("=", 1)[0].strip() for item in overrides or []})
    return ctx


def _known(name: str) -> bool:
    from eosfm_cli.data.registry import EXPERIMENTS

    return name in EXPERIMENTS


def _flow(value: Any) -> str:
    import json

    return json.dumps(value)


def check_dataset(cfg: DatasetConfig, source: str) -> None:
    """Check a profile's dataset section against the registry.

    Raises:
        ProfileError: for an unknown experiment, a task that disagrees with it, or class names
            that differ from the dataset's (naming the first difference).
    """
    from eosfm_cli.data.registry import get_experiment
    from eosfm_cli.data.spec import ANY_TASK

    spec = get_experiment(cfg.name, where=f"{source}: dataset.name")
    if spec.task != ANY_TASK and cfg.task != spec.task:
        raise ProfileError(
            f"task {cfg.task!r} does not match the {spec.name} dataset ({spec.task!r})",
            where=f"{source}: dataset.task",
            hint=f"set dataset.task to {spec.task}",
        )
    if spec.classes and cfg.classes and tuple(cfg.classes) != spec.classes:
        raise ProfileError(
            _class_difference(cfg.classes, spec.classes, spec.name),
            where=f"{source}: dataset.classes",
            hint="list the dataset's classes in order (`eosfm datasets list "
            f"{spec.name}`), or leave the key out",
        )


def _class_difference(given: Sequence[str], expected: Sequence[str], name: str) -> str:
    """Describe the first place where a profile's class list departs from the dataset's."""
    i = next(
        (k for k, (a, b) in enumerate(zip(given, expected, strict=False)) if a != b),
        min(len(given), len(expected)),
    )
    count = (
        f"{len(given)} classes given, the {name} dataset has {len(expected)}; "
        if len(given) != len(expected)
        else ""
    )
    mine = repr(given[i]) if i < len(given) else "missing"
    theirs = repr(expected[i]) if i < len(expected) else "none"
    return f"{count}class {i} is {mine}, the {name} dataset's is {theirs}"


def dataset_root(ctx: StageContext, name: str | None = None) -> Path | None:
    """The folder of a dataset: ``data.roots[name]`` first, then ``data.root``."""
    from eosfm_cli.data.splits import dataset_root as root_of

    return root_of(ctx.profile.data, name)


def print_dry_run(ctx: StageContext, stage: str, reads: list[str], writes: list[str]) -> None:
    """Print the resolved profile and the artifacts a stage would read and write."""
    console.rule(f"[bold]{stage}[/bold] dry run — {ctx.source}")
    console.print(dump_yaml(ctx.profile), markup=False)
    from eosfm_cli.hardware import describe_auto

    t, e = ctx.profile.trainer, ctx.profile.ensemble
    auto = describe_auto(
        t.accelerator, t.precision, t.compile, e.precision, e.compile, t.channels_last
    )
    if auto:
        console.print("[bold]auto settings here[/bold]")
        for line in auto:
            console.print(f"  {line}", markup=False, soft_wrap=True)
    console.print("[bold]reads[/bold]")
    for r in reads or ["(nothing)"]:
        console.print(f"  {r}", markup=False, soft_wrap=True)
    console.print("[bold]writes[/bold]")
    for w in writes or ["(nothing)"]:
        console.print(f"  {w}", markup=False, soft_wrap=True)
