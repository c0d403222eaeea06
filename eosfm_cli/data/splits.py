"""An experiment's train, val and test datasets, built and checked.

:func:`load_splits` is the one place where a loader is called for the three splits: every
stage that needs data (train-specialist, fit-head, evaluate, select-encoders) goes through it,
so the same profile always gives the same samples. :func:`build_splits` resolves the
experiment, bands, classes and root from a profile's ``dataset`` section first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.errors import DataError, ProfileError

if TYPE_CHECKING:
    from eosfm_cli.data.spec import ExperimentSpec
    from eosfm_cli.profile_schema import DataConfig, Profile

SPLITS = ("train", "val", "test")


def dataset_root(data: DataConfig, name: str | None = None) -> Path | None:
    """The folder of a dataset: ``data.roots[name]`` first, then ``data.root``."""
    if name and name in data.roots:
        return Path(data.roots[name])
    return Path(data.root) if data.root else None


def build_splits(profile: Profile, source: str) -> tuple[ExperimentSpec, dict[str, Any], Path]:
    """Resolve the profile's experiment and build its train/val/test datasets.

    Args:
        profile: the resolved profile (its ``dataset`` section names the experiment).
        source: where the profile came from, for messages.

    Returns:
        ``(experiment spec, {split: dataset}, root)``.

    Raises:
        ProfileError: when the profile names no dataset or no dataset folder.
        DataError: as :func:`load_splits`.
    """
    from eosfm_cli.data.registry import get_experiment
    from eosfm_cli.data.spec import ANY_TASK

    cfg = profile.dataset
    if cfg is None:
        raise ProfileError(
            "no dataset to train on",
            where=f"{source}: dataset",
            hint="pass --dataset NAME (see `eosfm datasets list`)",
        )
    spec = get_experiment(cfg.name, where=f"{source}: dataset.name")
    root = dataset_root(profile.data, cfg.name)
    if root is None:
        raise ProfileError(
            "no dataset folder given", where=f"{source}: data.root", hint="pass --root DIR"
        )
    datasets = load_splits(
        spec,
        root,
        cfg.bands,
        cfg.classes or list(spec.classes),
        seed=profile.data.split_seed,
        patch_size=cfg.patch_size,
        ignore_index=cfg.ignore_index,
        # an experiment of any task (folder) learns it from the profile
        options={**cfg.options, "task": cfg.task} if spec.task == ANY_TASK else cfg.options,
    )
    return spec, datasets, root


def load_splits(
    spec: ExperimentSpec,
    root: Path,
    bands: list[str],
    classes: list[str],
    *,
    seed: int,
    patch_size: int | None = None,
    ignore_index: int | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the train, val and test datasets of an experiment, each checked before use.

    Args:
        spec: the experiment.
        root: the dataset folder.
        bands: band names fed to the model, in order.
        classes: class names.
        seed: seed of any split the loader draws itself.
        patch_size: crop or tile size.
        ignore_index: label value to ignore.
        options: dataset options, laid over the experiment's defaults.

    Returns:
        ``{split: dataset}`` for ``train``, ``val`` and ``test``.

    Raises:
        DataError: when the root is missing, a split is empty or its samples are malformed.
    """
    from eosfm_cli.data.base import DatasetRequest
    from eosfm_cli.data.checks import check_split

    if not root.exists():
        raise DataError(
            "dataset folder not found",
            where=str(root),
            hint=f"expected {spec.layout}; set the folder with --root",
        )
    build = spec.load_function()
    datasets = {}
    for split in SPLITS:
        req = DatasetRequest(
            name=spec.name,
            root=root,
            split=split,  # type: ignore[arg-type]
            bands=tuple(bands),
            classes=tuple(classes),
            seed=seed,
            patch_size=patch_size,
            ignore_index=ignore_index,
            options={**spec.options, **(options or {})},
        )
        ds = build(req)
        if len(ds) == 0:
            raise DataError(
                f"the {split} split is empty", where=str(root), hint=f"expected {spec.layout}"
            )
        check_split(ds, split, root, bands, spec.task, len(classes), ignore_index)
        datasets[split] = ds
    return datasets
