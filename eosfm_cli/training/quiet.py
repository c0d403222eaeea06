"""Lightning's banners, tips and expected warnings, silenced unless ``--verbose``."""

from __future__ import annotations

import os


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
