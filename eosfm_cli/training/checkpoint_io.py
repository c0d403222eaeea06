"""Lightning checkpoint IO: atomic writes (temporary file, fsync, rename) and safe loading."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from eosfm_cli.faults import crash_point
from eosfm_cli.io import disk_error
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
