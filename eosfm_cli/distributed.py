"""Which process of a distributed run this is, read from the launcher's environment.

Lightning's own launcher (``devices: 2`` on one machine), ``torchrun`` and SLURM all start one
process per device and tell each its rank through environment variables. Only the first
process (global rank 0) may take the workspace lock, write the manifest, write artifacts and
track emissions; the others train and stay silent. The rank is needed *before* a Trainer
exists (the lock is taken first), so it is read from the environment, not from Lightning.
"""

from __future__ import annotations

import os


def _env_int(name: str) -> int:
    try:
        return int(os.environ.get(name, "0") or 0)
    except ValueError:
        return 0


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 (always true without a launcher).

    ``RANK`` (torchrun) gives the global rank and decides alone when set. Otherwise every one
    of ``LOCAL_RANK``, ``NODE_RANK`` (Lightning's launcher) and ``SLURM_PROCID`` (``srun``)
    must be 0: a process that Lightning starts for device 1 inside a SLURM allocation
    inherits ``SLURM_PROCID=0`` but has ``LOCAL_RANK=1``.
    """
    if os.environ.get("RANK", "").strip():
        return _env_int("RANK") == 0
    return all(_env_int(name) == 0 for name in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def end_distributed() -> None:
    """Leave the process group after a distributed ``fit``.

    Lightning keeps the group alive after ``fit``. Rank 0 then scores alone on the whole
    splits; torchmetrics would otherwise wait in a collective for ranks that have left.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
