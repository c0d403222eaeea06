"""Training plumbing shared by the stages that train.

Atomic, safely-loaded checkpoints; per-band statistics; seeded data loaders.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from eosfm_cli.errors import DataError
from eosfm_cli.faults import crash_point
from eosfm_cli.io import atomic_write_json, disk_error, json_digest
from eosfm_cli.models.checkpoints import load_checkpoint_file


def atomic_checkpoint_io() -> Any:
    """A Lightning CheckpointIO that writes atomically and loads with ``weights_only=True``."""
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Checkpoint IO: temporary file + fsync + rename; safe loading."""

        def save_checkpoint(
            self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
        ) -> None:
            final = Path(path)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
            # Serialise in memory first: torch.save reports a failed write (a full disk)
            # as an opaque "unexpected pos" RuntimeError, a plain write as an OSError.
            buf = io.BytesIO()
            torch.save(checkpoint, buf)
            try:
                with open(tmp, "wb") as fh:
                    fh.write(buf.getbuffer())
                    fh.flush()
                    os.fsync(fh.fileno())
                crash_point(f"rename:{final.name}")
                os.replace(tmp, final)
            except OSError as err:
                raise disk_error(err, final) from None
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

        def load_checkpoint(
            self, path: Any, map_location: Any = None, weights_only: bool | None = None
        ) -> dict[str, Any]:
            return load_checkpoint_file(path)

    return AtomicCheckpointIO()


def make_trainer(tcfg: Any, callbacks: list[Any], quiet: bool, **extra: Any) -> Any:
    """A Lightning Trainer from the profile's ``trainer`` section.

    Args:
        tcfg: the :class:`~eosfm_cli.profile_schema.TrainerConfig`.
        callbacks: Lightning callbacks.
        quiet: hide the progress bar.
        **extra: further Trainer arguments (logger, plugins, checkpointing...).
    """
    import lightning.pytorch as pl

    return pl.Trainer(
        max_epochs=tcfg.max_epochs,
        accelerator=tcfg.accelerator,
        devices=tcfg.devices,
        precision=tcfg.precision,
        strategy=tcfg.strategy,
        num_nodes=tcfg.num_nodes,
        callbacks=callbacks,
        enable_model_summary=False,
        enable_progress_bar=not quiet,
        log_every_n_steps=tcfg.log_every_n_steps,
        num_sanity_val_steps=0,
        **extra,
    )


def make_loader(
    ds: Dataset[Any], batch_size: int, num_workers: int, shuffle: bool, seed: int
) -> DataLoader[Any]:
    """A DataLoader with a seeded shuffle.

    A dataset whose samples do not stack (detection: one box list per image) provides its own
    batching as a ``collate_fn`` attribute; the default collation is used otherwise.
    """
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=getattr(ds, "collate_fn", None),
        generator=gen if shuffle else None,
        persistent_workers=num_workers > 0,
        drop_last=False,
    )


def _stats_key(parts: Mapping[str, Any]) -> str:
    return json_digest(dict(parts), 16)


def band_statistics(
    ds: Dataset[Any],
    bands: Sequence[str],
    cache_dir: Path | None,
    key_parts: Mapping[str, Any],
    max_samples: int = 5000,
    seed: int = 0,
    write: bool = True,
) -> tuple[list[float], list[float]]:
    """Per-band mean and std of raw values over a dataset, in one streaming pass, cached.

    Sums and sums of squares are accumulated in float64 per band, over all pixels of at most
    ``max_samples`` samples (a seeded subset of larger datasets); non-finite pixels are left
    out. Change-detection samples contribute both dates.

    Args:
        ds: the training split.
        bands: band names (for the cache record).
        cache_dir: folder of the JSON cache (``None``: no caching).
        key_parts: what identifies the data (dataset, root, bands, split seed...).
        max_samples: cap on the number of samples read.
        seed: seed of the subset.
        write: store a computed result in the cache (off on DDP ranks other than 0).

    Returns:
        ``(mean, std)`` per band.
    """
    key = _stats_key({**key_parts, "bands": list(bands), "max_samples": max_samples})
    path = cache_dir / f"{key}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        with contextlib.suppress(ValueError, KeyError, OSError):
            data = json.loads(path.read_text())
            if data.get("bands") == list(bands):
                return [float(v) for v in data["mean"]], [float(v) for v in data["std"]]
    n = len(ds)  # type: ignore[arg-type]
    if n == 0:
        raise DataError(
            "the training split is empty",
            where=str(key_parts.get("root")),
            hint="check the dataset folder and its split files",
        )
    idx = list(range(n))
    if n > max_samples:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=g)[:max_samples].tolist()
    c = len(bands)
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    count = torch.zeros(c, dtype=torch.float64)
    for i in idx:
        sample = ds[i]
        for key_img in ("image", "image2"):
            img = sample.get(key_img)
            if img is None:
                continue
            x = img.reshape(c, -1).to(torch.float64)
            finite = torch.isfinite(x)
            x = torch.where(finite, x, torch.zeros_like(x))
            total += x.sum(1)
            total_sq += (x * x).sum(1)
            count += finite.sum(1)
    if bool((count == 0).any()):
        raise DataError(
            "some bands have no finite pixel in the training split",
            where=str(key_parts.get("root")),
            hint="check for nodata-only images",
        )
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0)
    std = var.sqrt().clamp_min(1e-6)
    out_mean, out_std = mean.tolist(), std.tolist()
    if path is not None and write:
        atomic_write_json(
            path,
            {
                "bands": list(bands),
                "mean": out_mean,
                "std": out_std,
                "samples": len(idx),
                "key": dict(key_parts),
            },
        )
    return out_mean, out_std


def crash_points_callback() -> Any:
    """A callback with the ``<stage>:epoch<N>`` crash points of :mod:`eosfm_cli.faults`.

    It fires at the start of training epoch N, when the checkpoints of epoch N-1 exist.
    """
    import lightning.pytorch as pl

    class CrashPoints(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            crash_point(f"train:epoch{trainer.current_epoch}")

    return CrashPoints()


def quiet_lightning(verbose: bool = False) -> None:
    """Silence Lightning's banners and tips; keep its warnings only under ``--verbose``."""
    import logging
    import warnings

    level = logging.INFO if verbose else logging.WARNING
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "pytorch_lightning"):
        logging.getLogger(name).setLevel(level)
    if not verbose:
        for pattern in (
            ".*exists and is not empty.*",
            ".*LeafSpec.*",
            ".*log_every_n_steps.*",
            ".*does not have many workers.*",
            ".*litlogger.*",
            ".*is smaller than the logging interval.*",
            ".*Checkpoint directory.*",
            r".*module\(s\) in eval mode.*",
            # DDP: epoch metrics come from torchmetrics, already reduced over the ranks.
            ".*sync_dist=True.*",
            ".*Grad strides do not match bucket view strides.*",
        ):
            warnings.filterwarnings("ignore", message=pattern)
        os.environ.setdefault("LIGHTNING_DISABLE_TIPS", "1")
