"""The inputs of a downstream head: frozen features from the cache, or streamed samples.

With frozen specialists and the cache enabled, features are computed once per sample and read
back from ``cache/features/`` (see :mod:`eosfm_cli.features`); otherwise the head trains on the
raw datasets and the specialists run on every batch, with one line saying why. fit-head and
select-encoders both read their features here, under the same cache key, so a selection reuses
the features of the run that learnt its gates.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from eosfm_cli.console import Verbosity, console
from eosfm_cli.context import StageContext
from eosfm_cli.distributed import is_rank_zero
from eosfm_cli.errors import WorkspaceError

#: The ensemble options that change the cached features (the others act after the cache).
FEATURE_OPTIONS = ("min_coverage", "tolerance_nm", "force", "ablate", "precision")


def feature_key(
    ctx: StageContext, model: Any, ensemble_sha256: str, dataset: str, root: Path
) -> dict[str, Any]:
    """The cache key parts of a generalist's features on a downstream dataset.

    Args:
        ctx: the resolved profile and workspace.
        model: the generalist (its input bands, pyramid levels and ensemble options count).
        ensemble_sha256: the sha256 of its ensemble file.
        dataset: the downstream experiment's name.
        root: the dataset's folder.

    Returns:
        The key of every split (the split name is added per split).
    """
    return {
        "ensemble_sha256": ensemble_sha256,
        "dataset": dataset,
        "root": str(root.resolve()),
        "bands": model.cfg.input_bands,
        "split_seed": ctx.profile.data.split_seed,
        "levels": model.levels,
        "options": {k: v for k, v in model.cfg.ensemble_options.items() if k in FEATURE_OPTIONS},
    }


def prepare_features(
    ctx: StageContext, model: Any, datasets: dict[str, Any], key: dict[str, Any], use_cache: bool
) -> tuple[dict[str, Any], str]:
    """Cached feature datasets when allowed and within budget, else the raw datasets.

    Args:
        ctx: the resolved profile and workspace.
        model: the generalist whose frozen specialists compute the features.
        datasets: ``{split: dataset}``.
        key: what :func:`feature_key` returned.
        use_cache: the specialists are frozen (trained ones cannot be cached).

    Returns:
        ``({split: dataset}, the reason line)``.
    """
    if not use_cache:
        return datasets, "features stream: specialists are trained (--no-freeze)"
    if model.cfg.task == "detection":
        return datasets, "features stream: a detection head runs on whole images"
    return cache_datasets(ctx, model, datasets, key)


def cache_datasets(
    ctx: StageContext, model: Any, datasets: dict[str, Any], key: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Each split's frozen features from the cache (built if absent), when within budget.

    Args:
        ctx: the resolved profile and workspace (``cache.enabled``, ``cache.max_gb``).
        model: anything with the frozen ``specialist_features(x)`` of a raw batch.
        datasets: ``{split: dataset}`` of samples with an ``image`` and a ``label``/``mask``.
        key: the cache key parts of every split (the split name is added per split).

    Returns:
        ``({split: cached features}, the reason line)``, or the raw datasets and why they
        stream.
    """
    from rich.progress import Progress

    from eosfm_cli.features import FeatureCache

    if not ctx.profile.cache.enabled:
        return datasets, "features stream: cache.enabled is false"
    caches = {
        s: FeatureCache(ctx.workspace.path("cache", "features"), {**key, "split": s})
        for s in datasets
    }
    total = sum(
        c.estimate_bytes(model, datasets[s][0], len(datasets[s])) for s, c in caches.items()
    )
    budget = ctx.profile.cache.max_gb * 1e9
    if total > budget:
        return datasets, (
            f"features stream: the cache would take {total / 1e9:.2f} GB > "
            f"cache.max_gb {ctx.profile.cache.max_gb}"
        )
    out: dict[str, Any] = {}
    built = []
    for split, cache in caches.items():
        got = cache.load()
        if got is None and not is_rank_zero():
            got = _wait_for_cache(cache)
        if got is None:
            with Progress(console=console, transient=True, disable=Verbosity.quiet) as progress:
                task = progress.add_task(f"caching {split} features", total=len(datasets[split]))
                got = cache.build(
                    model,
                    datasets[split],
                    ctx.profile.trainer.batch_size,
                    functools.partial(_advance, progress, task),
                )
            built.append(split)
        out[split] = got
    reason = (
        f"feature cache built for {', '.join(built)} ({total / 1e6:.1f} MB)"
        if built
        else f"feature cache reused ({total / 1e6:.1f} MB)"
    )
    return out, reason


def _wait_for_cache(cache: Any, timeout: float = 3600.0) -> Any:
    """On a DDP rank other than 0: wait until rank 0 has built a cache entry."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cache.load()
        if got is not None:
            return got
        time.sleep(1.0)
    raise WorkspaceError(
        "rank 0 did not build the feature cache in time",
        where=str(cache.folder),
        hint="check rank 0's output, or set cache.enabled: false",
    )


def _advance(progress: Any, task: Any, done: int, total: int) -> None:
    progress.update(task, completed=done, total=total)


def feature_loader(ds: Any, batch_size: int, num_workers: int, shuffle: bool, seed: int) -> Any:
    """A loader over cached features (whole batches per read) or raw samples."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    from eosfm_cli.data.loaders import make_loader

    if not hasattr(ds, "get_batch"):
        return make_loader(ds, batch_size, num_workers, shuffle, seed)

    class _Batches(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(ds)

        def __getitem__(self, indices: list[int]) -> dict[str, Any]:
            return ds.get_batch(indices)  # type: ignore[no-any-return]

    gen = torch.Generator().manual_seed(seed)
    base = (
        RandomSampler(range(len(ds)), generator=gen)
        if shuffle
        else SequentialSampler(range(len(ds)))
    )
    return DataLoader(
        _Batches(), batch_size=None, sampler=BatchSampler(base, batch_size, drop_last=False)
    )
