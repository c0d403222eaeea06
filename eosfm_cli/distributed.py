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


#: Variables that must all be 0 (or absent) for rank 0 when ``RANK`` is not set: the local
#: rank (Lightning, torchrun), the node rank (Lightning's ``NODE_RANK``, torchrun's
#: ``GROUP_RANK``) and srun's task id.
_RANK_PART_VARS = ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 (always true without a launcher).

    ``RANK`` (torchrun, Lightning) gives the global rank and decides alone when set, also over
    ``SLURM_PROCID``. Otherwise every one of ``LOCAL_RANK``, the node rank (``NODE_RANK`` from
    Lightning's launcher, ``GROUP_RANK`` from torchrun) and ``SLURM_PROCID`` (``srun``) must
    be 0: a process that Lightning starts for device 1 inside a SLURM allocation inherits
    ``SLURM_PROCID=0`` but has ``LOCAL_RANK=1``. A value that is not an integer counts as 0.

    This is the one rank rule: the workspace lock, the manifest, the artifacts and the
    emissions tracker all ask it.
    """
    if os.environ.get("RANK", "").strip():
        return _env_int("RANK") == 0
    return all(_env_int(name) == 0 for name in _RANK_PART_VARS)


def end_distributed() -> None:
    """Leave the process group after a distributed ``fit``.

    Lightning keeps the group alive after ``fit``. Rank 0 then scores alone on the whole
    splits; torchmetrics would otherwise wait in a collective for ranks that have left.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
